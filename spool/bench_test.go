package spool_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
