package mp4_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/recsink/recsink/internal/mediatest"
	"github.com/recsink/recsink/media/mp4"
)

func mkbox(typ string, data ...[]byte) []byte {
	n := 8
	for _, d := range data {
		n += len(d)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(n))
	b = append(b, typ...)
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

func u32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// synth makes fragmented MP4 streams like ffmpeg's: a video track 1
// (timescale 12800, 25 fps, a sync sample first in each fragment) and an
// audio track 2 (timescale 48000, 1024-sample frames).
type synth struct {
	absolute    bool // tfhd base-data-offset, as ffmpeg without default_base_moof
	udta        int  // bytes of udta in the moov, 0 for none
	fragMs      int
	bytesPerSec int
}

func (s synth) header() []byte {
	mvhd := mkbox("mvhd", u32(0, 0, 0, 1000, 0), make([]byte, 80))
	trak := func(id, ts uint32, handler string) []byte {
		tkhd := mkbox("tkhd", u32(3, 0, 0, id, 0, 0), make([]byte, 60))
		mdhd := mkbox("mdhd", u32(0, 0, 0, ts, 0), []byte{0x55, 0xc4, 0, 0})
		hdlr := mkbox("hdlr", u32(0, 0), []byte(handler), make([]byte, 13))
		return mkbox("trak", tkhd, mkbox("mdia", mdhd, hdlr))
	}
	mvex := mkbox("mvex", mkbox("trex", u32(0, 1, 1, 0, 0, 0)), mkbox("trex", u32(0, 2, 1, 0, 0, 0)))
	var udta []byte
	if s.udta > 0 {
		udta = mkbox("udta", make([]byte, s.udta-8))
	}
	return append(mkbox("ftyp", []byte("isom"), u32(0x200), []byte("isomiso6")), mkbox("moov", mvhd, trak(1, 12800, "vide"), trak(2, 48000, "soun"), mvex, udta)...)
}

// fragment returns fragment i, starting at stream offset at.
func (s synth) fragment(i int, at int64) []byte {
	nv := s.fragMs / 40
	na := s.fragMs * 48 / 1024
	per := max(s.bytesPerSec*s.fragMs/1000/(nv+na), 1)
	traf := func(id, ts uint32, n, dur int, video bool) []byte {
		flags := uint32(0x38) // default duration, size, flags
		hd := []uint32{flags, id}
		if s.absolute {
			hd[0] |= 1
		}
		tfhd := u32(hd...)
		if s.absolute {
			tfhd = binary.BigEndian.AppendUint64(tfhd, uint64(at))
		}
		defFlags := uint32(0x02000000)
		if video {
			defFlags = 0x01010000 // non-sync
		}
		tfhd = append(tfhd, u32(uint32(dur), uint32(per), defFlags)...)
		tfdt := mkbox("tfdt", []byte{1, 0, 0, 0}, binary.BigEndian.AppendUint64(nil, uint64(i*s.fragMs)*uint64(ts)/1000))
		trunFlags := uint32(0x201) // data offset, sizes
		opt := []uint32{0}
		if video {
			trunFlags |= 0x004 // first sample flags: sync
			opt = append(opt, 0x02000000)
		}
		trun := u32(append([]uint32{trunFlags, uint32(n)}, opt...)...)
		for range n {
			trun = append(trun, u32(uint32(per))...)
		}
		return mkbox("traf", mkbox("tfhd", tfhd), tfdt, mkbox("trun", trun))
	}
	moof := mkbox("moof", mkbox("mfhd", u32(0, uint32(i+1))), traf(1, 12800, nv, 512, true), traf(2, 48000, na, 1024, false))
	return append(moof, mkbox("mdat", make([]byte, per*(nv+na)))...)
}

func (s synth) stream(n int) []byte {
	b := s.header()
	for i := range n {
		b = append(b, s.fragment(i, int64(len(b)))...)
	}
	return b
}

func TestIndexerSynthetic(t *testing.T) {
	t.Parallel()
	s := synth{absolute: true, udta: 40, fragMs: 1000, bytesPerSec: 10_000}
	stream := s.stream(5)
	index, headerEnd := container.MustIndex(t, stream, 1)
	if headerEnd != int64(len(s.header())) {
		t.Errorf("HeaderEnd %d, want %d", headerEnd, len(s.header()))
	}
	var recs []mp4.Record
	mp4.ReadIndex(index, func(r mp4.Record) error {
		if r.Flags&mp4.FlagEnd == 0 {
			recs = append(recs, r)
		}
		return nil
	})
	if len(recs) != 10 {
		t.Fatalf("%d records, want 10", len(recs))
	}
	for i, r := range recs {
		frag := int64(i / 2)
		want := mp4.Record{Traf: uint32(i%2 + 1), Trun: 1, Sample: 1, Flags: mp4.FlagSync | mp4.FlagAbsolute}
		if i%2 == 0 {
			want.TrackID, want.Time, want.End = 1, frag*12800, frag*12800+25*512
		} else {
			want.TrackID, want.Time, want.End = 2, frag*48000, frag*48000+46*1024
		}
		want.SyncTime = want.Time
		want.MoofOffset = r.MoofOffset
		if r != want {
			t.Errorf("record %d = %+v, want %+v", i, r, want)
		}
	}
}

func TestFinalizeRoom(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		s        synth
		wantMehd bool
		wantGrow int
	}{
		{"AbsoluteUdta", synth{absolute: true, udta: 40, fragMs: 1000, bytesPerSec: 10_000}, true, 0},
		{"AbsoluteUdtaExact", synth{absolute: true, udta: 16, fragMs: 1000, bytesPerSec: 10_000}, true, 0},
		{"AbsoluteNoRoom", synth{absolute: true, fragMs: 1000, bytesPerSec: 10_000}, false, 0},
		{"AbsoluteUdtaTooSmall", synth{absolute: true, udta: 12, fragMs: 1000, bytesPerSec: 10_000}, false, 0},
		{"Relative", synth{udta: 40, fragMs: 1000, bytesPerSec: 10_000}, true, 16},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.s.stream(5)
			out, grew := container.MustFinalize(t, stream, 0, 1)
			if grew != tt.wantGrow {
				t.Errorf("first part grew by %d, want %d", grew, tt.wantGrow)
			}
			mehd, tfra := readFile(t, out)
			if tt.wantMehd != (mehd != 0) {
				t.Errorf("mehd %v, want one: %v", mehd, tt.wantMehd)
			}
			if tt.wantMehd && mehd != 5 {
				t.Errorf("mehd %v, want 5", mehd)
			}
			if len(tfra[1]) != 5 || len(tfra[2]) != 5 {
				t.Errorf("tfra entries %v, want 5 per track", tfra)
			}
		})
	}
}

func TestIndexerResume(t *testing.T) {
	t.Parallel()
	stream := synth{absolute: true, fragMs: 500, bytesPerSec: 10_000}.stream(10)
	want, _ := container.MustIndex(t, stream, 7)
	all, _ := io.ReadAll(io.NewSectionReader(want, 0, want.Size()))
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		cut := r.IntN(len(stream))
		var index bytes.Buffer
		x := mp4.NewIndexer(&index)
		x.Write(stream[:cut])
		cp, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		x.Write(stream[cut:min(cut+3000, len(stream))])
		kept := new(bytes.Buffer)
		y, err := mp4.Resume(cp, kept)
		if err != nil {
			t.Fatal(err)
		}
		kept.Write(index.Bytes()[:y.IndexLen()])
		y.Write(stream[y.Offset():])
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kept.Bytes(), all) {
			t.Fatalf("cut at %d: resumed index differs", cut)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := synth{absolute: true, fragMs: 1000, bytesPerSec: 10_000}
	stream := s.stream(3)
	t.Run("ErrTruncated", func(t *testing.T) {
		x := mp4.NewIndexer(io.Discard)
		x.Write(stream[:len(s.header())+40]) // inside the first moof
		if err := x.Close(); !errors.Is(err, mp4.ErrTruncated) {
			t.Errorf("Close = %v, want ErrTruncated", err)
		}
	})
	t.Run("ErrCorrupt", func(t *testing.T) {
		x := mp4.NewIndexer(io.Discard)
		if _, err := x.Write(append(s.header(), 0, 0, 0, 4, 'm', 'o', 'o', 'f')); !errors.Is(err, mp4.ErrCorrupt) {
			t.Errorf("Write = %v, want ErrCorrupt", err)
		}
	})
	t.Run("ErrShortHeader", func(t *testing.T) {
		index, _ := container.MustIndex(t, stream, 1)
		if _, _, err := mp4.Finalize(stream[:len(s.header())-5], index, int64(len(stream))); !errors.Is(err, mp4.ErrShortHeader) {
			t.Errorf("Finalize = %v, want ErrShortHeader", err)
		}
	})
	t.Run("ErrNoRoom", func(t *testing.T) {
		// 2^32 ms: the mvhd's duration needs 64 bits, and there is no udta to give way.
		long := synth{absolute: true, fragMs: 1000, bytesPerSec: 1000}
		b := long.header()
		b = append(b, long.fragment(1<<32/1000+1, int64(len(b)))...)
		index, _ := container.MustIndex(t, b, 1)
		if _, _, err := mp4.Finalize(b[:len(long.header())], index, int64(len(b))); !errors.Is(err, mp4.ErrNoRoom) {
			t.Errorf("Finalize = %v, want ErrNoRoom", err)
		}
	})
}

// feed30Minutes feeds 30 minutes of 2 Mbit/s fragments (one a second) to an
// Indexer writing to a file, and returns the bytes and allocations
// allocated while feeding: a bound of the heap it holds.
func feed30Minutes(tb testing.TB) (heap int64, mallocs uint64, records int64) {
	s := synth{fragMs: 1000, bytesPerSec: 2_000_000 / 8}
	f, err := os.Create(tb.TempDir() + "/index")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	header := s.header()
	frag := s.fragment(0, 0)
	x, heap, mallocs := mediatest.MeasureFeed(tb, func() mediatest.Indexer { return mp4.NewIndexer(f) }, func(x mediatest.Indexer) {
		x.Write(header)
		for range 30 * 60 {
			for p := 0; p < len(frag); p += 32 << 10 {
				x.Write(frag[p:min(p+32<<10, len(frag))])
			}
		}
	})
	runtime.KeepAlive(header)
	runtime.KeepAlive(frag)
	return heap, mallocs, x.IndexLen() / mp4.RecordSize
}

func TestHeap30Minutes(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 450 MB")
	}
	heap, mallocs, records := feed30Minutes(t)
	t.Logf("%d records, %d bytes in %d allocations while feeding 450 MB", records, heap, mallocs)
	if records != 2*1800+1 {
		t.Errorf("%d records, want 3600 and the end record", records)
	}
	if heap > 256<<10 {
		t.Errorf("heap %d bytes, want ≤ 256 KiB", heap)
	}
}

// BenchmarkIndexer30Minutes reports the heap an Indexer holds after 30
// minutes of 2 Mbit/s media and its throughput.
func BenchmarkIndexer30Minutes(b *testing.B) {
	for b.Loop() {
		heap, mallocs, _ := feed30Minutes(b)
		b.ReportMetric(float64(heap), "heap-bytes")
		b.ReportMetric(float64(mallocs), "mallocs")
	}
	b.SetBytes(30 * 60 * 2_000_000 / 8)
}

// TestCut cuts a stream at every byte after the header, as a stop in the
// middle of a recorder's write does: the finished file's boxes are whole
// (the cut mdat completed in the tail), or Close says it cannot be (a cut
// inside a moof or a box header).
func TestCut(t *testing.T) {
	t.Parallel()
	s := synth{absolute: true, udta: 40, fragMs: 500, bytesPerSec: 20_000}
	full := s.stream(4)
	header := len(s.header())
	var ok, refused int
	for cut := header + 1; cut <= len(full); cut++ {
		stream := full[:cut]
		out, _, fin := container.FinalizeCut(t, stream, header, mp4.ErrTruncated, func(x mediatest.Indexer) { x.Write(stream) })
		if !fin {
			refused++
			continue
		}
		p := 0
		for p < len(out) {
			size := int(binary.BigEndian.Uint32(out[p:]))
			if size < 8 || p+size > len(out) {
				t.Fatalf("cut at %d: box %q at %d of size %d in a file of %d bytes", cut, out[p+4:p+8], p, size, len(out))
			}
			p += size
		}
		readFile(t, out)
		ok++
	}
	t.Logf("%d cuts finalized, %d refused (inside a moof or a box header)", ok, refused)
}
