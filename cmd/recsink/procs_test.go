package main_test

import (
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	main "github.com/recsink/recsink/cmd/recsink"
)

// TestRaiseProcs: recsink serve runs with at least MinProcs Ps unless the
// GOMAXPROCS variable says otherwise, and never lowers a higher number.
// Not parallel: GOMAXPROCS is the process's.
func TestRaiseProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(2)
	if before := main.RaiseProcs(log); before != 2 {
		t.Errorf("RaiseProcs returned %d, want the 2 it found", before)
	}
	if n := runtime.GOMAXPROCS(0); n != main.MinProcs {
		t.Errorf("GOMAXPROCS = %d after RaiseProcs from 2, want %d", n, main.MinProcs)
	}

	runtime.GOMAXPROCS(main.MinProcs + 4)
	main.RaiseProcs(log)
	if n := runtime.GOMAXPROCS(0); n != main.MinProcs+4 {
		t.Errorf("GOMAXPROCS = %d, want %d kept: RaiseProcs does not lower it", n, main.MinProcs+4)
	}

	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	main.RaiseProcs(log)
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("GOMAXPROCS = %d with the variable set to 2, want 2 kept", n)
	}
}

// TestTuneGC: recsink serve runs the GC at GCPercent and with a soft memory
// limit of MemoryShare of the memory, unless GOGC or GOMEMLIMIT says
// otherwise. Not parallel: the GC's settings are the process's.
func TestTuneGC(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	percent, limit := main.TuneGC(log, 8<<30)
	if percent != main.GCPercent || debug.SetGCPercent(-1) != main.GCPercent {
		t.Errorf("GC percent %d after TuneGC, want %d", percent, main.GCPercent)
	}
	debug.SetGCPercent(main.GCPercent)
	if want := int64(float64(8<<30) * main.MemoryShare); limit != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("memory limit %d after TuneGC with 8 GiB, want %d", limit, want)
	}

	// The variables choose; so does an unknown total for the limit.
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "50")
	if percent, limit := main.TuneGC(log, 0); percent != 50 || limit != math.MaxInt64 {
		t.Errorf("TuneGC with GOGC=50 and no total = %d, %d; want 50 and no limit", percent, limit)
	}
	debug.SetMemoryLimit(1 << 30)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if _, limit := main.TuneGC(log, 8<<30); limit != 1<<30 {
		t.Errorf("TuneGC with GOMEMLIMIT=1GiB set the limit to %d, want it kept", limit)
	}
}

func TestMemoryTotal(t *testing.T) {
	if runtime.GOOS == "linux" && main.MemoryTotal() <= 0 {
		t.Errorf("MemoryTotal() = %d on Linux, want the memory's bytes", main.MemoryTotal())
	}
	n, err := main.ParseMemTotal([]byte("MemFree: 1 kB\nMemTotal:       24683584 kB\n"))
	if err != nil || n != 24683584<<10 {
		t.Errorf("ParseMemTotal = %d, %v; want %d", n, err, int64(24683584)<<10)
	}
	for _, bad := range []string{"MemFree: 1 kB\n", "MemTotal: 12 MB\n", "MemTotal: -3 kB\n", "MemTotal: x kB\n"} {
		if _, err := main.ParseMemTotal([]byte(bad)); err == nil || !strings.Contains(err.Error(), "MemTotal") {
			t.Errorf("ParseMemTotal(%q) error = %v, want one naming MemTotal", bad, err)
		}
	}
}
