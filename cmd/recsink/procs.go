package main

import (
	"log/slog"
	"os"
	"runtime"
)

// minProcs is the fewest Ps (GOMAXPROCS) that recsink serve runs with.
//
// A goroutine in a spool write, an fsync or a syncfs keeps its P while the
// kernel holds it, until the runtime's monitor takes the P back for
// another goroutine, and on a small node these calls come by the
// thousand a second. With GOMAXPROCS=2 on a 2-core VM and 620 real-time
// recordings, the goroutines' scheduling latency p99 was 50–84 ms while
// the process used about one of its two cores, and acknowledgements had a
// p99 of 0.27–1.0 s (4 windows); with 8 Ps, 5–10 ms and 0.14–0.31 s
// (BenchmarkConcurrentRecordings with RECSINK_BENCH_AT=620). Extra Ps cost
// only their run queues: the kernel shares the cores among the threads
// that run.
const minProcs = 8

// raiseProcs sets GOMAXPROCS to minProcs when it is lower and the GOMAXPROCS
// variable does not set it; it returns the value before.
func raiseProcs(log *slog.Logger) int {
	n := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" || n >= minProcs {
		return n
	}
	runtime.GOMAXPROCS(minProcs)
	log.Info("GOMAXPROCS raised, as goroutines blocked in the spool's disk calls hold their Ps (set GOMAXPROCS to choose)", "from", n, "to", minProcs)
	return n
}
