package main_test

import (
	"io"
	"log/slog"
	"runtime"
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
