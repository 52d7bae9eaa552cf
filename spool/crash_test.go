package spool_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// TestCrash runs random appends, releases, disk faults and crashes (a
// SIGKILL, which keeps the page cache, or a power cut, which keeps only what
// was fsynced) on a StrictMemFS, crashing also in the middle of operations.
// After every recovery the offset must be at least every offset the spool
// ever reported (by Append, with or without an error, and by Offset, which
// HEAD answers), and the bytes up to it exactly those appended.
//
// Even seeds commit in groups (one syncfs for every waiting write), odd
// seeds fsync each part file on its own.
//
// RECSINK_CRASH_ITERATIONS sets the number of runs (default 1000, 200 with -short); each run's
// seed is in its failure message.
func TestCrash(t *testing.T) {
	t.Parallel()
	iterations := 1000
	if testing.Short() {
		iterations = 200
	}
	if v, err := strconv.Atoi(os.Getenv("RECSINK_CRASH_ITERATIONS")); err == nil {
		iterations = v
	}
	var stats crashStats
	stream := randomBytes(200 << 10) // the recording: a recorder resends the same bytes at an offset
	first := 0
	if v, err := strconv.Atoi(os.Getenv("RECSINK_CRASH_SEED")); err == nil {
		first, iterations = v, 1
	}
	for i := range iterations {
		seed := uint64(first + i)
		if err := crashRun(seed, stream, &stats); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	t.Logf("%d runs: %d appends (%d failed), %d releases, %d power cuts, %d SIGKILLs (%d in the middle of an operation), %d transient disk faults, %d full disks, %d recoveries checked",
		iterations, stats.appends, stats.appendErrs, stats.releases, stats.powerCuts, stats.kills, stats.midOp, stats.faults, stats.full, stats.recoveries)
}

// tracef prints a run's steps when RECSINK_CRASH_TRACE is set, to debug one
// seed (RECSINK_CRASH_SEED).
func tracef(format string, args ...any) {
	if os.Getenv("RECSINK_CRASH_TRACE") != "" {
		fmt.Printf(format+"\n", args...)
	}
}

type crashStats struct {
	appends, appendErrs, releases, powerCuts, kills, midOp, faults, full, recoveries int
}

// crashRun is one random run; it returns what broke the promise.
func crashRun(seed uint64, stream []byte, stats *crashStats) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	fsys := spool.NewStrictMemFS()
	const dir, id = "/data/spool", "rec"
	l := small
	var (
		sent     int64 // the end of the bytes sent so far
		acked    int64 // the highest offset ever reported
		finished bool  // Finish returned nil
		s        *spool.Spool
		f        *spool.File
	)
	ack := func(off int64) { acked = max(acked, off) }
	cfg := spool.Config{Dir: dir, FS: fsys, SyncEachFile: seed%2 == 1}

	// open (re)starts the spool as a new process would.
	open := func() error {
		var err error
		if s, err = spool.OpenConfig(cfg); err != nil {
			return fmt.Errorf("open spool: %w", err)
		}
		if f, err = s.Open(id, l); err != nil {
			return fmt.Errorf("open recording: %w", err)
		}
		return nil
	}
	// check verifies the promise after a recovery.
	check := func() error {
		stats.recoveries++
		off := f.Offset()
		tracef("recovered: offset %d finished %v parts %v (acked %d, sent %d)", off, f.Finished(), f.CompleteParts(), acked, sent)
		switch {
		case off < acked:
			return fmt.Errorf("offset %d after recovery is below the acknowledged %d", off, acked)
		case off > sent:
			return fmt.Errorf("offset %d after recovery is beyond the %d bytes sent", off, sent)
		case f.SHA256() != sha(stream[:off]):
			return fmt.Errorf("the %d bytes recovered differ from those sent", off)
		case finished && !f.Finished():
			return fmt.Errorf("the recording lost its Finish")
		}
		ack(off) // HEAD reports it now
		// A Finish that failed may have been durable all the same.
		finished = f.Finished()
		return nil
	}
	crash := func(keepUnsynced bool) error {
		if keepUnsynced {
			stats.kills++
		} else {
			stats.powerCuts++
		}
		// The old process is gone: its handles fail, its Files are dropped
		// unclosed.
		tracef("crash keepUnsynced=%v", keepUnsynced)
		fsys.Crash(keepUnsynced)
		fsys.SetCapacity(0)
		for {
			if err := open(); err != nil {
				return err
			}
			if err := check(); err != nil {
				return err
			}
			// A crash may hit recovery too.
			if rng.IntN(8) != 0 {
				return nil
			}
			fsys.FailAfter(rng.IntN(6))
			_ = open()
			fsys.Crash(rng.IntN(2) == 0)
		}
	}

	// The data folder exists, durably, before the spool starts.
	if err := fsys.MkdirAll("/data", 0o700); err != nil {
		return err
	}
	if d, err := fsys.OpenFile("/", os.O_RDONLY, 0); err != nil || d.Sync() != nil {
		return fmt.Errorf("sync /: %v", err)
	}
	s, err := spool.OpenConfig(cfg)
	if err != nil {
		return err
	}
	if f, err = s.Create(id, l); err != nil {
		return err
	}
	for step := 0; step < 60; step++ {
		// Maybe fail the disk part way into the next operation, then crash
		// (power cut or SIGKILL) or let it come back.
		fault := rng.IntN(6)
		switch fault {
		case 0:
			n := rng.IntN(12)
			tracef("fail after %d", n)
			fsys.FailAfter(n)
		case 1:
			stats.full++
			c := fsys.Used() + int64(rng.IntN(3000))
			tracef("capacity %d", c)
			fsys.SetCapacity(c)
		}
		switch op := rng.IntN(10); {
		case op < 6 && !finished:
			stats.appends++
			start := f.Offset()
			body := stream[start:min(start+1+int64(rng.IntN(2500)), int64(len(stream)))]
			sent = max(sent, start+int64(len(body)))
			off, err := f.Append(context.Background(), &chunkReader{data: body, max: 700}, start)
			ack(off)
			tracef("append %d at %d: %d, %v", len(body), start, off, err)
			if err != nil {
				stats.appendErrs++
				if c := recsink.ErrorCode(err); c != recsink.EUNAVAILABLE {
					return fmt.Errorf("append: %v, want EUNAVAILABLE", err)
				}
			} else if off != start+int64(len(body)) {
				return fmt.Errorf("append at %d of %d bytes returned %d", start, len(body), off)
			}
			if off != f.Offset() {
				return fmt.Errorf("append returned %d, Offset is %d", off, f.Offset())
			}
		case op < 8:
			if parts := f.CompleteParts(); len(parts) > 0 {
				stats.releases++
				n := parts[rng.IntN(len(parts))]
				tracef("release %d: %v", n, f.Release(n))
			}
		case op < 9 && rng.IntN(4) == 0:
			err := f.Finish()
			tracef("finish: %v", err)
			if err == nil {
				finished = true
			}
		default:
			ack(f.Offset())
		}
		ack(f.Offset())
		switch {
		case fault == 0 && rng.IntN(3) == 0:
			stats.faults++
			tracef("revive")
			fsys.Revive()
		case fault == 0:
			stats.midOp++
			if err := crash(rng.IntN(2) == 0); err != nil {
				return err
			}
		case rng.IntN(5) == 0:
			if err := crash(rng.IntN(2) == 0); err != nil {
				return err
			}
		}
		fsys.SetCapacity(0)
	}

	// At the end, every byte up to the offset is readable and identical.
	if err := crash(false); err != nil {
		return err
	}
	if err := f.Finish(); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	end := f.Offset()
	for _, n := range f.CompleteParts() {
		off, size := l.Part(n)
		size = min(size, end-off)
		r, err := f.Part(n)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, stream[off:off+size]) {
			return fmt.Errorf("part %d differs from the bytes sent", n)
		}
	}
	return nil
}
