package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// gcPercent is the GC's target growth of the heap (GOGC) that recsink serve
// runs with, where Go's default is 100.
//
// A live recording keeps 30–40 KiB of heap, while every request it makes
// allocates anew: at 1,000 real-time recordings on a 2-core VM the GC took
// 10–11 % of the process's CPU time with GOGC=100 and 2 % with 400, the
// process used 1.13–1.21 cores instead of 1.28–1.40, and the p99 of
// acknowledgements fell from 0.6–1.8 s to 0.29–0.59 s (2 windows each,
// BenchmarkConcurrentRecordings with RECSINK_BENCH_AT=1000, its recorders
// then still in its process). The heap grows
// to about five times the live heap between collections instead of two:
// 150–200 MiB at 1,000 recordings. memoryShare bounds it.
const gcPercent = 400

// memoryShare is the share of the machine's (or its cgroup's) memory that
// recsink serve sets as the GC's soft memory limit (GOMEMLIMIT): above it
// the GC collects more often than gcPercent asks, so that the larger
// gcPercent never costs more memory than the node has.
const memoryShare = 0.5

// tuneGC sets the GC's percent to gcPercent unless the GOGC variable sets
// it, and its soft memory limit to memoryShare of total bytes unless the
// GOMEMLIMIT variable sets it (or total is unknown: 0). It returns the
// percent and the limit it leaves.
func tuneGC(log *slog.Logger, total int64) (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	if os.Getenv("GOGC") == "" && percent == 100 {
		debug.SetGCPercent(gcPercent)
		percent = gcPercent
	}
	limit = debug.SetMemoryLimit(-1)
	if os.Getenv("GOMEMLIMIT") == "" && limit == math.MaxInt64 && total > 0 {
		limit = int64(float64(total) * memoryShare)
		debug.SetMemoryLimit(limit)
	}
	log.Info("GC tuned for many live recordings (set GOGC or GOMEMLIMIT to choose)", "gogc", percent, "memory_limit_bytes", limit)
	return percent, limit
}

// memoryTotal returns the bytes of memory that the process may use: its
// cgroup's limit (cgroup v2 memory.max) when it has one, or else the
// machine's MemTotal; 0 when neither can be read.
func memoryTotal() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	n, err := parseMemTotal(b)
	if err != nil {
		return 0
	}
	return n
}

// parseMemTotal returns the bytes of the MemTotal line of /proc/meminfo
// ("MemTotal:       24683584 kB").
func parseMemTotal(meminfo []byte) (int64, error) {
	s := bufio.NewScanner(bytes.NewReader(meminfo))
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo: MemTotal %q: want a number of kB", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, fmt.Errorf("meminfo: MemTotal %q: want a positive number of kB", f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("meminfo: no MemTotal line")
}
