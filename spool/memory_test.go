//go:build !race

// The race detector multiplies memory use, so this test runs without it:
// CI runs it with `go test -run Memory ./spool` (no -race), beside the
// -race run of everything else.

package spool_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/recsink/recsink/spool"
)

// TestMemory checks the budget of 256 KiB of heap per recording with 500
// recordings receiving at once.
func TestMemory(t *testing.T) {
	const recordings = 500
	s := MustOpen(t, t.TempDir(), 0)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	pws := make([]*io.PipeWriter, recordings)
	done := make(chan error, recordings)
	files := make([]*spool.File, recordings)
	chunk := randomBytes(10_000)
	for i := range recordings {
		f := MustCreate(t, s, fmt.Sprint("rec", i), spool.NewLayout(0))
		files[i] = f
		pr, pw := io.Pipe()
		pws[i] = pw
		go func() {
			_, err := f.Append(context.Background(), pr, 0)
			done <- err
		}()
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	// Every Append is now blocked in a read, holding its buffer.
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	per := (int64(during.HeapAlloc) - int64(before.HeapAlloc)) / recordings
	t.Logf("heap per receiving recording: %d bytes", per)
	if per > 256<<10 {
		t.Errorf("heap per receiving recording = %d bytes, over 256 KiB", per)
	}
	for _, pw := range pws {
		pw.Close()
	}
	for range recordings {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC() // the second empties the buffer pool's victim cache
	var idle runtime.MemStats
	runtime.ReadMemStats(&idle)
	t.Logf("heap per idle open recording: %d bytes", (int64(idle.HeapAlloc)-int64(before.HeapAlloc))/recordings)
	runtime.KeepAlive(files)
}
