package mkv_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/recsink/recsink/media/internal/mediatest"
	"github.com/recsink/recsink/media/mkv"
)

// elem encodes an EBML element with an 8-byte size, or of unknown size when
// size is -1 (data is then appended after the header as it is).
func elem(id []byte, size int, data ...[]byte) []byte {
	b := append([]byte(nil), id...)
	if size == -1 {
		b = append(b, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	} else {
		n := 0
		for _, d := range data {
			n += len(d)
		}
		b = append(b, 0x01)
		b = append(b, binary.BigEndian.AppendUint64(nil, uint64(n))[1:]...)
	}
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

func uintElem(id []byte, v uint64) []byte {
	return elem(id, 0, binary.BigEndian.AppendUint64(nil, v))
}

var (
	idCluster = []byte{0x1F, 0x43, 0xB6, 0x75}
	idSimple  = []byte{0xA3}
)

// synth makes Matroska streams like a live recorder's.
type synth struct {
	unknownClusters bool // Clusters of unknown size, as MediaRecorder writes
	video           bool // a video track 1 with a keyframe at each cluster's start
	groups          bool // video in BlockGroups with ReferenceBlock instead of SimpleBlocks
	clusterMs       int
	bytesPerSec     int
}

func (s synth) header() []byte {
	ebml := elem([]byte{0x1A, 0x45, 0xDF, 0xA3}, 0, elem([]byte{0x42, 0x82}, 0, []byte("matroska")))
	info := elem([]byte{0x15, 0x49, 0xA9, 0x66}, 0, uintElem([]byte{0x2A, 0xD7, 0xB1}, 1_000_000), elem([]byte{0x4D, 0x80}, 0, []byte("synth")))
	var entries [][]byte
	if s.video {
		entries = append(entries, elem([]byte{0xAE}, 0, uintElem([]byte{0xD7}, 1), uintElem([]byte{0x83}, 1), uintElem([]byte{0x23, 0xE3, 0x83}, 40_000_000)))
	}
	entries = append(entries, elem([]byte{0xAE}, 0, uintElem([]byte{0xD7}, 2), uintElem([]byte{0x83}, 2)))
	tracks := elem([]byte{0x16, 0x54, 0xAE, 0x6B}, 0, entries...)
	return append(append(ebml, elem([]byte{0x18, 0x53, 0x80, 0x67}, -1)...), append(info, tracks...)...)
}

// cluster returns cluster i: video blocks every 40 ms, audio blocks every
// 20 ms, payloads sized for bytesPerSec.
func (s synth) cluster(i int) []byte {
	t0 := uint64(i * s.clusterMs)
	blocks := [][]byte{uintElem([]byte{0xE7}, t0)}
	per := s.bytesPerSec * s.clusterMs / 1000 / (s.clusterMs/40 + s.clusterMs/20)
	payload := make([]byte, max(per, 1))
	block := func(track byte, rel int, key bool) []byte {
		flags := byte(0)
		if key {
			flags = 0x80
		}
		return append([]byte{0x80 | track, byte(rel >> 8), byte(rel), flags}, payload...)
	}
	for ms := 0; ms < s.clusterMs; ms += 20 {
		if s.video && ms%40 == 0 {
			key := ms == 0
			switch {
			case s.groups && key:
				blocks = append(blocks, elem([]byte{0xA0}, 0, elem([]byte{0xA1}, 0, block(1, ms, false))))
			case s.groups:
				blocks = append(blocks, elem([]byte{0xA0}, 0, elem([]byte{0xA1}, 0, block(1, ms, false)), elem([]byte{0xFB}, 0, []byte{0xD8})))
			default:
				blocks = append(blocks, elem(idSimple, 0, block(1, ms, key)))
			}
		}
		blocks = append(blocks, elem(idSimple, 0, block(2, ms, true)))
	}
	if s.unknownClusters {
		return append(elem(idCluster, -1), bytes.Join(blocks, nil)...)
	}
	return elem(idCluster, 0, blocks...)
}

func (s synth) stream(clusters int) []byte {
	b := s.header()
	for i := range clusters {
		b = append(b, s.cluster(i)...)
	}
	return b
}

func TestIndexer(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]synth{
		"KnownSize":     {video: true, clusterMs: 1000, bytesPerSec: 20_000},
		"UnknownSize":   {video: true, unknownClusters: true, clusterMs: 1000, bytesPerSec: 20_000},
		"BlockGroups":   {video: true, groups: true, unknownClusters: true, clusterMs: 500, bytesPerSec: 20_000},
		"AudioOnly":     {clusterMs: 2000, bytesPerSec: 8_000},
		"AudioOnlyLong": {unknownClusters: true, clusterMs: 5000, bytesPerSec: 8_000},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n = 20
			stream := s.stream(n)
			index, headerEnd := MustIndex(t, stream, 1)
			if want := int64(len(s.header())); headerEnd != want {
				t.Errorf("HeaderEnd = %d, want %d", headerEnd, want)
			}
			// One byte at a time gives the same index.
			var one bytes.Buffer
			x := mkv.NewIndexer(&one)
			for i := range stream {
				x.Write(stream[i : i+1])
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			all, _ := io.ReadAll(io.NewSectionReader(index, 0, index.Size()))
			if !bytes.Equal(one.Bytes(), all) {
				t.Fatal("byte-at-a-time index differs")
			}
			var recs []mkv.Record
			mkv.ReadIndex(index, func(r mkv.Record) error { recs = append(recs, r); return nil })
			if len(recs) != n {
				t.Fatalf("%d records, want %d", len(recs), n)
			}
			at := headerEnd
			for i, r := range recs {
				want := mkv.Record{Offset: at, Time: int64(i * s.clusterMs), Flags: mkv.FlagBlocks, KeyTime: int64(i * s.clusterMs), KeyTrack: 2}
				want.End = want.Time + int64(s.clusterMs) - 20
				if s.video {
					want.Flags |= mkv.FlagKey
					want.KeyTrack = 1
					// The last video frame lasts DefaultDuration.
					want.End = want.Time + max(int64((s.clusterMs-1)/40*40+40), int64(s.clusterMs-20))
				}
				if r != want {
					t.Errorf("record %d = %+v, want %+v", i, r, want)
				}
				at += int64(len(s.cluster(i)))
			}

			first, tail, err := mkv.Finalize(stream[:headerEnd+100], index, int64(len(stream)))
			if err != nil {
				t.Fatal(err)
			}
			out := append(append(append([]byte(nil), first...), stream[headerEnd+100:]...), tail...)
			dur, cues := readFile(t, out)
			if want := float64(n*s.clusterMs) / 1000; math.Abs(dur-want) > 0.05 {
				t.Errorf("Duration %v, want %v", dur, want)
			}
			if len(cues) != n {
				t.Errorf("%d cue points, want one per cluster: %d", len(cues), n)
			}
			if d := mediatest.ProbeDuration(t, out, "synth.mkv"); math.Abs(d-dur) > 0.05 {
				t.Errorf("ffprobe duration %v, want %v", d, dur)
			}
		})
	}
}

func TestIndexerResume(t *testing.T) {
	t.Parallel()
	stream := synth{video: true, unknownClusters: true, clusterMs: 1000, bytesPerSec: 10_000}.stream(10)
	want, _ := MustIndex(t, stream, 7)
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		cut := r.IntN(len(stream))
		var index bytes.Buffer
		x := mkv.NewIndexer(&index)
		mediatest.Feed(t, x, stream[:cut], uint64(cut))
		cp, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		// A crash: the index file may hold records written after the checkpoint.
		mediatest.Feed(t, x, stream[cut:min(cut+5000, len(stream))], 1)
		kept := bytes.NewBuffer(index.Bytes()[:0:0])
		y, err := mkv.Resume(cp, kept)
		if err != nil {
			t.Fatal(err)
		}
		kept.Write(index.Bytes()[:y.IndexLen()])
		if y.Offset() != int64(cut) {
			t.Fatalf("resumed at %d, want %d", y.Offset(), cut)
		}
		mediatest.Feed(t, y, stream[y.Offset():], 2)
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}
		all, _ := io.ReadAll(io.NewSectionReader(want, 0, want.Size()))
		if !bytes.Equal(kept.Bytes(), all) {
			t.Fatalf("cut at %d: resumed index differs", cut)
		}
	}
}

func TestIndexerErrors(t *testing.T) {
	t.Parallel()
	s := synth{video: true, clusterMs: 1000, bytesPerSec: 10_000}
	stream := s.stream(3)
	t.Run("ErrTruncated", func(t *testing.T) {
		x := mkv.NewIndexer(io.Discard)
		x.Write(stream[:len(stream)-10])
		if err := x.Close(); !errors.Is(err, mkv.ErrTruncated) {
			t.Errorf("Close = %v, want ErrTruncated", err)
		}
	})
	t.Run("ErrCorrupt", func(t *testing.T) {
		bad := append(append([]byte(nil), stream[:len(s.header())]...), 0x00, 0x00, 0x00)
		x := mkv.NewIndexer(io.Discard)
		if _, err := x.Write(bad); !errors.Is(err, mkv.ErrCorrupt) {
			t.Errorf("Write = %v, want ErrCorrupt", err)
		}
		if _, err := x.Write(stream); !errors.Is(err, mkv.ErrCorrupt) {
			t.Errorf("second Write = %v, want ErrCorrupt", err)
		}
	})
	t.Run("ErrShortHeader", func(t *testing.T) {
		index, _ := MustIndex(t, stream, 1)
		if _, _, err := mkv.Finalize(stream[:len(s.header())-5], index, int64(len(stream))); !errors.Is(err, mkv.ErrShortHeader) {
			t.Errorf("Finalize = %v, want ErrShortHeader", err)
		}
	})
	t.Run("IndexOutsideStream", func(t *testing.T) {
		index, _ := MustIndex(t, stream, 1)
		if _, _, err := mkv.Finalize(stream[:len(s.header())], index, int64(len(s.header())+10)); !errors.Is(err, mkv.ErrCorrupt) {
			t.Errorf("Finalize = %v, want ErrCorrupt", err)
		}
	})
}

// feed30Minutes feeds 30 minutes of 2 Mbit/s clusters (one a second, known
// or unknown size) to an Indexer writing to a file, and returns the heap the
// Indexer holds and the allocations made while feeding.
func feed30Minutes(tb testing.TB, unknown bool) (heap int64, mallocs uint64, records int64) {
	s := synth{video: true, unknownClusters: unknown, clusterMs: 1000, bytesPerSec: 2_000_000 / 8}
	f, err := os.Create(tb.TempDir() + "/index")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	header, cluster := s.header(), s.cluster(0)
	tpos := 12 + 1 + 8 // after the Cluster header (4 + 8) and the Timecode header (1 + 8)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	x := mkv.NewIndexer(f)
	x.Write(header)
	for i := range 30 * 60 {
		binary.BigEndian.PutUint64(cluster[tpos:], uint64(i*1000))
		for p := 0; p < len(cluster); p += 32 << 10 { // as the ingest handler's reads arrive
			x.Write(cluster[p:min(p+32<<10, len(cluster))])
		}
	}
	if err := x.Close(); err != nil {
		tb.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	mallocs = m1.Mallocs - m0.Mallocs
	runtime.GC()
	runtime.ReadMemStats(&m1)
	heap = int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	if cp, err := x.MarshalBinary(); err == nil {
		tb.Logf("the Indexer's state: %d bytes (its checkpoint)", len(cp))
	}
	runtime.KeepAlive(x)
	runtime.KeepAlive(header)
	runtime.KeepAlive(cluster)
	return heap, mallocs, x.IndexLen() / mkv.RecordSize
}

func TestHeap30Minutes(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 450 MB")
	}
	for _, unknown := range []bool{false, true} {
		heap, mallocs, records := feed30Minutes(t, unknown)
		t.Logf("unknown-size clusters %v: %d records, heap held %d bytes, %d allocations while feeding 450 MB", unknown, records, heap, mallocs)
		if records != 1800 {
			t.Errorf("%d records, want 1800", records)
		}
		if heap > 256<<10 {
			t.Errorf("heap %d bytes, want ≤ 256 KiB", heap)
		}
	}
}

// BenchmarkIndexer30Minutes reports the heap an Indexer holds after 30
// minutes of 2 Mbit/s media and its throughput.
func BenchmarkIndexer30Minutes(b *testing.B) {
	for b.Loop() {
		heap, mallocs, _ := feed30Minutes(b, true)
		b.ReportMetric(float64(heap), "heap-bytes")
		b.ReportMetric(float64(mallocs), "mallocs")
	}
	b.SetBytes(30 * 60 * 2_000_000 / 8)
}

// BenchmarkFinalize times Finalize at the stop for a recording of 1 GiB
// and one of 24 hours, with ffmpeg's live cluster rate (a cluster per 32 KiB
// at 2 Mbit/s: about 8 a second) and an index file on disk.
func BenchmarkFinalize(b *testing.B) {
	for _, bc := range []struct {
		name     string
		clusters int
	}{{"1GiB", 1 << 30 / (32 << 10)}, {"24h", 24 * 3600 * 8}} {
		b.Run(bc.name, func(b *testing.B) {
			s := synth{video: true, clusterMs: 125, bytesPerSec: 8}
			f, err := os.Create(b.TempDir() + "/index")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			x := mkv.NewIndexer(f)
			header := s.header()
			x.Write(header)
			cluster := s.cluster(0)
			tpos := 12 + 1 + 8
			for i := range bc.clusters {
				binary.BigEndian.PutUint64(cluster[tpos:], uint64(i*s.clusterMs))
				x.Write(cluster)
			}
			if err := x.Close(); err != nil {
				b.Fatal(err)
			}
			total := x.Offset()
			b.ResetTimer()
			for b.Loop() {
				first, tail, err := mkv.Finalize(header, f, total)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(tail)), "tail-bytes")
				b.ReportMetric(float64(x.IndexLen()), "index-bytes")
				_ = first
			}
		})
	}
}
