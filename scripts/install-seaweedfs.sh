#!/usr/bin/env bash
# Installs the pinned SeaweedFS (`weed`: the second S3 server of the tests, and
# the only one with a real STS for role-based access) into the cache folder
# beside versitygw, and prints its path. `go install weed@VERSION` is refused
# (the module has replace directives), so it is built from the module source
# the Go module proxy serves. Skips the ~4 min build when the binary is there.
# See ../shared/s3test/seaweedfs.md.
set -euo pipefail
VERSION=v0.0.0-20261109003541-7506e5f91cd6
DIR="${RECSINK_TOOLS:-$HOME/.cache/recsink-tools}/seaweedfs-$VERSION"
if [ ! -x "$DIR/bin/weed" ]; then
  mkdir -p "$DIR"
  echo "installing seaweedfs $VERSION into $DIR (takes about 4 min once)" >&2
  SRC=$(go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$SRC" ] || { echo "install-seaweedfs: go mod download gave no Dir" >&2; exit 1; }
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  cp -r "$SRC" "$WORK/src" && chmod -R u+w "$WORK/src"
  (cd "$WORK/src" && go build -o "$DIR/weed.tmp" ./weed) >&2
  mkdir -p "$DIR/bin" && mv "$DIR/weed.tmp" "$DIR/bin/weed"
fi
echo "$DIR/bin/weed"
