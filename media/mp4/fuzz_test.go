package mp4_test

import (
	"bytes"
	"testing"

	"github.com/recsink/recsink/media/mp4"
)

// FuzzIndexer feeds garbage and damaged streams through the Indexer and
// Finalize: they may refuse them, never panic.
func FuzzIndexer(f *testing.F) {
	f.Add(synth{absolute: true, udta: 20, fragMs: 200, bytesPerSec: 1000}.stream(3), uint16(7), uint16(0))
	f.Add(synth{fragMs: 200, bytesPerSec: 1000}.stream(2), uint16(100), uint16(50))
	f.Fuzz(func(t *testing.T, stream []byte, chunk, firstLen uint16) {
		var index bytes.Buffer
		x := mp4.NewIndexer(&index)
		step := int(chunk%512) + 1
		for p := 0; p < len(stream); p += step {
			x.Write(stream[p:min(p+step, len(stream))])
		}
		x.Close()
		if cp, err := x.MarshalBinary(); err == nil {
			if _, err := mp4.Resume(cp, &index); err != nil {
				t.Fatalf("Resume of own checkpoint: %v", err)
			}
		}
		// A damaged stream may declare a huge element and stop in it:
		// completing it is correct but slow to fuzz.
		var pad int64
		mp4.ReadIndex(bytes.NewReader(index.Bytes()), func(r mp4.Record) error {
			pad = max(pad, r.Pad)
			return nil
		})
		if pad > 1<<20 {
			return
		}
		n := min(int(x.HeaderEnd())+int(firstLen), len(stream))
		mp4.Finalize(stream[:n], bytes.NewReader(index.Bytes()), int64(len(stream)))
	})
}

// FuzzFinalize gives Finalize an arbitrary header region and a valid index.
func FuzzFinalize(f *testing.F) {
	s := synth{absolute: true, udta: 20, fragMs: 200, bytesPerSec: 1000}
	stream := s.stream(3)
	var index bytes.Buffer
	x := mp4.NewIndexer(&index)
	x.Write(stream)
	x.Close()
	f.Add(stream[:len(s.header())], index.Bytes())
	f.Fuzz(func(t *testing.T, header, index []byte) {
		mp4.Finalize(header, bytes.NewReader(index), int64(len(stream)))
	})
}

func FuzzResume(f *testing.F) {
	var index bytes.Buffer
	x := mp4.NewIndexer(&index)
	x.Write(synth{fragMs: 200, bytesPerSec: 1000}.stream(2)[:700])
	cp, _ := x.MarshalBinary()
	f.Add(cp, []byte{0, 0, 0, 16, 't', 'r', 'u', 'n', 0, 0, 1, 1, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, cp, more []byte) {
		x, err := mp4.Resume(cp, &index)
		if err != nil {
			return
		}
		x.Write(more)
		x.Close()
	})
}
