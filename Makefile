# recsink: run `make help` for the targets.
GO ?= go

.PHONY: help run build test lint bench deps demo fuzz chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run recsink on its embedded defaults (SQLite, ./recsink-data, 127.0.0.1:8080)
	$(GO) run ./cmd/recsink serve

build: ## build bin/recsink
	$(GO) build -o bin/recsink ./cmd/recsink

deps: ## install the test tools: versitygw and SeaweedFS (cached), ffmpeg, chromium and PostgreSQL 15 (Debian)
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null && [ -x /usr/lib/postgresql/15/bin/initdb ] || \
		apt-get install -y --no-install-recommends ffmpeg chromium postgresql-15 || \
		{ apt-get update && apt-get install -y --no-install-recommends ffmpeg chromium postgresql-15; }
	@./scripts/install-versitygw.sh >/dev/null
	@./scripts/install-seaweedfs.sh >/dev/null

test: deps lint ## the whole test suite: -race against real versitygw, PostgreSQL, ffmpeg and chromium (make chaos included), the memory checks without -race, and the fuzz targets for FUZZTIME each
	RECSINK_VERSITYGW=$${RECSINK_VERSITYGW:-$$(./scripts/install-versitygw.sh)} RECSINK_SEAWEEDFS=$${RECSINK_SEAWEEDFS:-$$(./scripts/install-seaweedfs.sh)} $(GO) test -race -timeout 30m ./...
	# The per-recording heap checks: the race detector would inflate what they measure.
	$(GO) test -count=1 -run Memory ./spool
	$(MAKE) fuzz

# chaos: the same tests run in `make test` too; this target runs only them, verbosely.
chaos: deps ## the fault tests of issue 10 (also part of make test)
	RECSINK_VERSITYGW=$${RECSINK_VERSITYGW:-$$(./scripts/install-versitygw.sh)} $(GO) test -race -run 'TestChaos_' -count=1 -v -timeout 10m ./cmd/recsink

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# A count, not a duration: a duration -fuzztime can end in a spurious
# "context deadline exceeded" with no crasher on a loaded machine (Go's fuzz
# coordinator, golang/go#75804, fixed in Go 1.27). 60,000 runs is about 10 s
# of either target here.
FUZZTIME ?= 60000x

fuzz: ## run each Go fuzz target for FUZZTIME (default 60000x: runs, about 10 s): the JSON body decoder and the tus headers
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) ./http
	$(GO) test -run '^$$' -fuzz '^FuzzTusHeaders$$' -fuzztime $(FUZZTIME) ./http

bench: ## benchmarks, each beside its baseline
	RECSINK_VERSITYGW=$${RECSINK_VERSITYGW:-$$(./scripts/install-versitygw.sh)} $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

demo: build ## tell the key-rotation story on this machine: versitygw, recsink, ffmpeg, a key rotated mid-recording
	@command -v ffmpeg >/dev/null || apt-get install -y --no-install-recommends ffmpeg
	$(GO) run ./internal/demo --recsink bin/recsink --versitygw $$(./scripts/install-versitygw.sh)
