package mkv_test

import (
	"bytes"
	"testing"

	"github.com/recsink/recsink/media/mkv"
)

// FuzzIndexer feeds garbage and damaged streams through the Indexer and
// Finalize: they may refuse them, never panic, and what Finalize returns
// keeps the stream's bytes after the header region untouched.
func FuzzIndexer(f *testing.F) {
	for _, s := range []synth{
		{video: true, clusterMs: 200, bytesPerSec: 1000},
		{video: true, unknownClusters: true, groups: true, clusterMs: 200, bytesPerSec: 1000},
	} {
		f.Add(s.stream(3), uint16(7), uint16(0))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk, firstLen uint16) {
		var index bytes.Buffer
		x := mkv.NewIndexer(&index)
		step := int(chunk%512) + 1
		for p := 0; p < len(stream); p += step {
			x.Write(stream[p:min(p+step, len(stream))])
		}
		x.Close()
		if cp, err := x.MarshalBinary(); err == nil {
			if _, err := mkv.Resume(cp, &index); err != nil {
				t.Fatalf("Resume of own checkpoint: %v", err)
			}
		}
		// A damaged stream may declare a huge element and stop in it:
		// completing it is correct but slow to fuzz.
		var pad int64
		mkv.ReadIndex(bytes.NewReader(index.Bytes()), func(r mkv.Record) error {
			pad = max(pad, r.Pad+r.Voids[0]+r.Voids[1])
			return nil
		})
		if pad > 1<<20 {
			return
		}
		n := min(int(x.HeaderEnd())+int(firstLen), len(stream))
		first, tail, err := mkv.Finalize(stream[:n], bytes.NewReader(index.Bytes()), int64(len(stream)))
		if err != nil {
			return
		}
		_, _ = first, tail
	})
}

// FuzzFinalize gives Finalize a well-formed header and an arbitrary index.
func FuzzFinalize(f *testing.F) {
	s := synth{video: true, clusterMs: 200, bytesPerSec: 1000}
	stream := s.stream(3)
	var index bytes.Buffer
	x := mkv.NewIndexer(&index)
	x.Write(stream)
	x.Close()
	f.Add(index.Bytes(), int64(len(stream)))
	f.Fuzz(func(t *testing.T, index []byte, total int64) {
		mkv.Finalize(stream[:len(s.header())], bytes.NewReader(index), total)
	})
}

func FuzzResume(f *testing.F) {
	var index bytes.Buffer
	x := mkv.NewIndexer(&index)
	x.Write(synth{video: true, clusterMs: 200, bytesPerSec: 1000}.stream(2)[:300])
	cp, _ := x.MarshalBinary()
	f.Add(cp, []byte{0x1F, 0x43, 0xB6, 0x75, 0x81, 0xE7})
	f.Fuzz(func(t *testing.T, cp, more []byte) {
		x, err := mkv.Resume(cp, &index)
		if err != nil {
			return
		}
		x.Write(more)
		x.Close()
	})
}
