package spool_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink/spool"
)

// BenchmarkAppend appends 1 MiB bodies (one fsync each, the SyncBytes
// cadence) with 5 MiB parts, releasing parts as they complete, as the
// uploader would.
func BenchmarkAppend(b *testing.B) {
	s := MustOpen(b, b.TempDir(), 0)
	f := MustCreate(b, s, "rec", spool.NewLayout(0))
	body := randomBytes(spool.SyncBytes)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Append(context.Background(), &chunkReader{data: body, max: 64 << 10}, -1); err != nil {
			b.Fatal(err)
		}
		for _, n := range f.CompleteParts() {
			if err := f.Release(n); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBaselineWriteSync is what Append costs at least: plain writes of
// the same sizes to 5 MiB files with an fsync every 1 MiB, deleting each
// full file.
func BenchmarkBaselineWriteSync(b *testing.B) {
	dir := b.TempDir()
	body := randomBytes(spool.SyncBytes)
	b.SetBytes(int64(len(body)))
	var w *os.File
	var part, inPart int
	buf := make([]byte, 64<<10)
	b.ResetTimer()
	for b.Loop() {
		if w == nil {
			part++
			var err error
			if w, err = os.Create(filepath.Join(dir, fmt.Sprintf("part-%06d", part))); err != nil {
				b.Fatal(err)
			}
		}
		for r := (&chunkReader{data: body, max: 64 << 10}); len(r.data) > 0; {
			n, _ := r.Read(buf)
			if _, err := w.Write(buf[:n]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
		if inPart++; inPart == 5 {
			w.Close()
			os.Remove(w.Name())
			w, inPart = nil, 0
		}
	}
	if w != nil {
		w.Close()
	}
}

// BenchmarkAppendConcurrent is the spool's share of a node carrying many
// real-time recordings: 64 recordings appending 62.5 KB bodies (a 2 Mbit/s
// recorder's tus PATCH) at once, each Append synced before it returns,
// parts released as they complete. Beside it, "baseline" does plain
// write+fsync of the same sizes to 64 files. Each reports the process's CPU
// time per write (getrusage), the figure that decides how many recordings a
// node carries.
func BenchmarkAppendConcurrent(b *testing.B) {
	const writers = 64
	body := randomBytes(62_500)
	b.Run("spool", func(b *testing.B) {
		s := MustOpen(b, b.TempDir(), 0)
		files := make([]*spool.File, writers)
		for i := range files {
			files[i] = MustCreate(b, s, fmt.Sprintf("rec%d", i), spool.NewLayout(0))
		}
		concurrentWrites(b, writers, len(body), func(i int) error {
			f := files[i]
			if _, err := f.Append(context.Background(), &chunkReader{data: body, max: 64 << 10}, -1); err != nil {
				return err
			}
			for _, n := range f.CompleteParts() {
				if err := f.Release(n); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("baseline", func(b *testing.B) {
		dir := b.TempDir()
		ws := make([]*os.File, writers)
		sizes := make([]int, writers)
		for i := range ws {
			w, err := os.Create(filepath.Join(dir, fmt.Sprintf("w%d", i)))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ws[i] = w
		}
		concurrentWrites(b, writers, len(body), func(i int) error {
			w := ws[i]
			if sizes[i] >= spool.MinPartSize {
				if err := w.Truncate(0); err != nil {
					return err
				}
				if _, err := w.Seek(0, 0); err != nil {
					return err
				}
				sizes[i] = 0
			}
			if _, err := w.Write(body); err != nil {
				return err
			}
			sizes[i] += len(body)
			return w.Sync()
		})
	})
}

// concurrentWrites runs b.N writes spread over writers goroutines, write(i)
// by goroutine i, and reports the CPU time per write.
func concurrentWrites(b *testing.B, writers, size int, write func(i int) error) {
	b.SetBytes(int64(size))
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := write(i); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/write")
}

// cpuTime returns the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendStream is one full-speed streamed PUT: Appends of 64 MiB
// bodies read in 32 KiB chunks, synced every SyncBytes, parts released as
// they complete. It reports the process's CPU time per GiB.
func BenchmarkAppendStream(b *testing.B) {
	s := MustOpen(b, b.TempDir(), 0)
	f := MustCreate(b, s, "rec", spool.NewLayout(0))
	body := randomBytes(64 << 20)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := f.Append(context.Background(), &chunkReader{data: body, max: 32 << 10}, -1); err != nil {
			b.Fatal(err)
		}
		for _, n := range f.CompleteParts() {
			if err := f.Release(n); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*float64(len(body))/(1<<30)), "cpu-s/GiB")
}
