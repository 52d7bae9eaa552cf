package mkv_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/recsink/recsink/internal/mediatest"
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
			index, headerEnd := container.MustIndex(t, stream, 1)
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
			mkv.ReadIndex(index, func(r mkv.Record) error {
				if r.Flags&mkv.FlagEnd == 0 {
					recs = append(recs, r)
				}
				return nil
			})
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
	want, _ := container.MustIndex(t, stream, 7)
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
		// Cut inside the header of the last cluster's last block.
		x := mkv.NewIndexer(io.Discard)
		x.Write(stream[:len(stream)-len(s.cluster(2))+12+17+2])
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
		index, _ := container.MustIndex(t, stream, 1)
		if _, _, err := mkv.Finalize(stream[:len(s.header())-5], index, int64(len(stream))); !errors.Is(err, mkv.ErrShortHeader) {
			t.Errorf("Finalize = %v, want ErrShortHeader", err)
		}
	})
	t.Run("IndexOutsideStream", func(t *testing.T) {
		index, _ := container.MustIndex(t, stream, 1)
		if _, _, err := mkv.Finalize(stream[:len(s.header())], index, int64(len(s.header())+10)); !errors.Is(err, mkv.ErrCorrupt) {
			t.Errorf("Finalize = %v, want ErrCorrupt", err)
		}
	})
}

// feed30Minutes feeds 30 minutes of 2 Mbit/s clusters (one a second, known
// or unknown size) to an Indexer writing to a file, and returns the bytes and
// allocations allocated while feeding: a bound of the heap it holds.
func feed30Minutes(tb testing.TB, unknown bool) (heap int64, mallocs uint64, records int64) {
	s := synth{video: true, unknownClusters: unknown, clusterMs: 1000, bytesPerSec: 2_000_000 / 8}
	f, err := os.Create(tb.TempDir() + "/index")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	header, cluster := s.header(), s.cluster(0)
	tpos := 12 + 1 + 8 // after the Cluster header (4 + 8) and the Timecode header (1 + 8)
	x, heap, mallocs := mediatest.MeasureFeed(tb, func() mediatest.Indexer { return mkv.NewIndexer(f) }, func(x mediatest.Indexer) {
		x.Write(header)
		for i := range 30 * 60 {
			binary.BigEndian.PutUint64(cluster[tpos:], uint64(i*1000))
			for p := 0; p < len(cluster); p += 32 << 10 { // as the ingest handler's reads arrive
				x.Write(cluster[p:min(p+32<<10, len(cluster))])
			}
		}
	})
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
		t.Logf("unknown-size clusters %v: %d records, %d bytes in %d allocations while feeding 450 MB", unknown, records, heap, mallocs)
		if records != 1800+1 {
			t.Errorf("%d records, want 1800 and the end record", records)
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

// TestCut cuts streams at every byte after the header, as a stop in the
// middle of a recorder's write does: the finished file is well-formed
// Matroska (the cut element completed in the tail), or Close says it cannot
// be (a cut inside an element header).
func TestCut(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]synth{
		"KnownSize":   {video: true, clusterMs: 200, bytesPerSec: 2000},
		"BlockGroups": {video: true, groups: true, clusterMs: 200, bytesPerSec: 2000},
		"UnknownSize": {video: true, unknownClusters: true, clusterMs: 200, bytesPerSec: 2000},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			full := s.stream(4)
			header := len(s.header())
			var ok, refused int
			for cut := header + 1; cut <= len(full); cut++ {
				stream := full[:cut]
				out, _, fin := container.FinalizeCut(t, stream, header, mkv.ErrTruncated, func(x mediatest.Indexer) { x.Write(stream) })
				if !fin {
					refused++
					continue
				}
				if err := checkStructure(out); err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				readFile(t, out)
				ok++
			}
			// Tiny synthetic blocks make headers a third of the
			// bytes; in real streams they are well under 1%.
			t.Logf("%d cuts finalized, %d refused (inside an element header)", ok, refused)
		})
	}
}

// checkStructure walks a finished file's elements as a strict parser does:
// each child inside its parent, an unknown-size Cluster ended by a
// top-level element, and nothing left over.
func checkStructure(b []byte) error {
	type el struct {
		id   uint32
		size int64
		n    int
	}
	read := func(p int) (el, error) {
		if p >= len(b) {
			return el{}, fmt.Errorf("element header past the end at %d", p)
		}
		l := 1
		for m := byte(0x80); l <= 4 && b[p]&m == 0; m >>= 1 {
			l++
		}
		if l > 4 || p+l >= len(b) {
			return el{}, fmt.Errorf("bad ID at %d", p)
		}
		var id uint32
		for _, c := range b[p : p+l] {
			id = id<<8 | uint32(c)
		}
		q := p + l
		sl := 1
		for m := byte(0x80); sl <= 8 && b[q]&m == 0; m >>= 1 {
			sl++
		}
		if sl > 8 || q+sl > len(b) {
			return el{}, fmt.Errorf("bad size at %d", q)
		}
		v := uint64(b[q] & (0xFF >> sl))
		for _, c := range b[q+1 : q+sl] {
			v = v<<8 | uint64(c)
		}
		if v == 1<<(7*sl)-1 {
			return el{id, -1, l + sl}, nil
		}
		return el{id, int64(v), l + sl}, nil
	}
	var walk func(p, end int, master uint32) (int, error)
	walk = func(p, end int, master uint32) (int, error) {
		for p < end {
			e, err := read(p)
			if err != nil {
				return 0, err
			}
			if master == 0x1F43B675 && (e.id == 0x1F43B675 || e.id == 0x1C53BB6B) {
				return p, nil // ends an unknown-size Cluster
			}
			if e.size == -1 {
				if e.id != 0x1F43B675 {
					return 0, fmt.Errorf("element %X at %d of unknown size", e.id, p)
				}
				q, err := walk(p+e.n, end, e.id)
				if err != nil {
					return 0, err
				}
				p = q
				continue
			}
			cend := p + e.n + int(e.size)
			if cend > end {
				return 0, fmt.Errorf("element %X at %d ends at %d, past its parent's end %d", e.id, p, cend, end)
			}
			if e.id == 0x1F43B675 || e.id == 0xA0 {
				if _, err := walk(p+e.n, cend, e.id); err != nil {
					return 0, err
				}
			}
			p = cend
		}
		return p, nil
	}
	e, err := read(0)
	if err != nil {
		return err
	}
	p := e.n + int(e.size)
	seg, err := read(p)
	if err != nil {
		return err
	}
	if int(seg.size) != len(b)-p-seg.n {
		return fmt.Errorf("Segment size %d, %d bytes follow", seg.size, len(b)-p-seg.n)
	}
	_, err = walk(p+seg.n, len(b), seg.id)
	return err
}

// TestFirstPartLength puts Voids of every size from 9 to 209 bytes in the
// header, as muxers reserve room there: the new first part takes the room
// and keeps the header's length, or grows; it never shrinks, since S3
// refuses a first part under 5 MiB.
func TestFirstPartLength(t *testing.T) {
	t.Parallel()
	s := synth{video: true, clusterMs: 500, bytesPerSec: 4000}
	var same int
	for n := 0; n <= 200; n++ {
		void := append([]byte{0xEC, 0x01, 0, 0, 0, 0, 0, 0, byte(n)}, make([]byte, n)...)
		v := len(void)
		header := append(s.header(), void...)
		stream := append([]byte(nil), header...)
		for i := range 3 {
			stream = append(stream, s.cluster(i)...)
		}
		var index bytes.Buffer
		x := mkv.NewIndexer(&index)
		x.Write(stream)
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		first, tail, err := mkv.Finalize(stream[:len(header)], bytes.NewReader(index.Bytes()), int64(len(stream)))
		if err != nil {
			t.Fatal(err)
		}
		if len(first) < len(header) {
			t.Errorf("Void of %d bytes: first part %d bytes, header %d", v, len(first), len(header))
		}
		if len(first) == len(header) {
			same++
		}
		out := append(append(append([]byte(nil), first...), stream[len(header):]...), tail...)
		if err := checkStructure(out); err != nil {
			t.Fatalf("Void of %d bytes: %v", v, err)
		}
		if _, cues := readFile(t, out); len(cues) != 3 {
			t.Errorf("Void of %d bytes: %d cues", v, len(cues))
		}
	}
	t.Logf("the first part kept its length with %d of 201 Void sizes", same)
	if same == 0 {
		t.Error("the header's Void was never used")
	}
}
