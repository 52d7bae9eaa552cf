package mediatest

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// Indexer is what these helpers need of mkv.Indexer and mp4.Indexer.
type Indexer interface {
	io.Writer
	Close() error
	Offset() int64
	IndexLen() int64
	HeaderEnd() int64
	MarshalBinary() ([]byte, error)
}

// Container is one container package's Indexer and Finalize, as the
// helpers below take them: mkv or mp4.
type Container struct {
	NewIndexer func(index io.Writer) Indexer
	Finalize   func(header []byte, index io.ReaderAt, total int64) (first, tail []byte, err error)
}

// MustIndex feeds stream through an Indexer of c in random chunks and
// returns the index it wrote and its header end.
func (c Container) MustIndex(tb testing.TB, stream []byte, seed uint64) (*bytes.Reader, int64) {
	tb.Helper()
	var index bytes.Buffer
	x := c.NewIndexer(&index)
	Feed(tb, x, stream, seed)
	if err := x.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	if x.Offset() != int64(len(stream)) || x.IndexLen() != int64(index.Len()) {
		tb.Fatalf("Offset, IndexLen = %d, %d; want %d, %d", x.Offset(), x.IndexLen(), len(stream), index.Len())
	}
	return bytes.NewReader(index.Bytes()), x.HeaderEnd()
}

// MustFinalize indexes stream, holds back its first firstLen bytes (at least
// the header region) and returns the finished file and how many bytes the
// first part grew by. Only the first part and the tail may differ from the
// stream.
func (c Container) MustFinalize(tb testing.TB, stream []byte, firstLen int, seed uint64) (out []byte, firstGrew int) {
	tb.Helper()
	index, headerEnd := c.MustIndex(tb, stream, seed)
	firstLen = min(max(firstLen, int(headerEnd)), len(stream))
	first, tail, err := c.Finalize(stream[:firstLen], index, int64(len(stream)))
	if err != nil {
		tb.Fatalf("Finalize: %v", err)
	}
	if len(first) < firstLen {
		tb.Fatalf("first part shrank from %d to %d bytes", firstLen, len(first))
	}
	out = append(append(append([]byte(nil), first...), stream[firstLen:]...), tail...)
	if !bytes.Equal(out[len(first):len(first)+len(stream)-firstLen], stream[firstLen:]) {
		tb.Fatal("bytes after the first part changed")
	}
	tb.Logf("first part %d → %d bytes, tail %d bytes", firstLen, len(first), len(tail))
	return out, len(first) - firstLen
}

// MeasureFeed makes an Indexer with start, runs feed, which writes a long
// stream to it, closes it, and returns it with the bytes and allocations
// allocated from start to Close: an upper bound of the heap the Indexer
// holds that, unlike HeapAlloc, other goroutines' garbage does not blur.
func MeasureFeed(tb testing.TB, start func() Indexer, feed func(x Indexer)) (x Indexer, heap int64, mallocs uint64) {
	tb.Helper()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	x = start()
	feed(x)
	if err := x.Close(); err != nil {
		tb.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	mallocs = m1.Mallocs - m0.Mallocs
	heap = int64(m1.TotalAlloc - m0.TotalAlloc)
	if cp, err := x.MarshalBinary(); err == nil {
		tb.Logf("the Indexer's state: %d bytes (its checkpoint)", len(cp))
	}
	runtime.KeepAlive(x)
	return x, heap, mallocs
}

// FinalizeCut indexes stream, a live stream cut short at a random byte as
// a stop mid-write leaves it, with feed writing it to the Indexer, and
// finalizes it holding back its first header bytes (the Indexer's
// HeaderEnd when header is 0). It returns the finished file and its tail,
// or ok false when Close refuses the cut with errTruncated (the
// container's ErrTruncated).
func (c Container) FinalizeCut(tb testing.TB, stream []byte, header int, errTruncated error, feed func(x Indexer)) (out, tail []byte, ok bool) {
	tb.Helper()
	var index bytes.Buffer
	x := c.NewIndexer(&index)
	feed(x)
	if err := x.Close(); errors.Is(err, errTruncated) {
		return nil, nil, false
	} else if err != nil {
		tb.Fatalf("cut at %d: Close: %v", len(stream), err)
	}
	if header == 0 {
		header = int(x.HeaderEnd())
	}
	first, tail, err := c.Finalize(stream[:header], bytes.NewReader(index.Bytes()), int64(len(stream)))
	if err != nil {
		tb.Fatalf("cut at %d: Finalize: %v", len(stream), err)
	}
	return append(append(append([]byte(nil), first...), stream[header:]...), tail...), tail, true
}
