package mp4_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/recsink/recsink/internal/browsertest"
	"github.com/recsink/recsink/internal/mediatest"
	"github.com/recsink/recsink/media"
	"github.com/recsink/recsink/media/mp4"
)

// container is this package's Indexer and Finalize for mediatest's
// MustIndex and MustFinalize.
var container = mediatest.Container{
	NewIndexer: func(index io.Writer) mediatest.Indexer { return mp4.NewIndexer(index) },
	Finalize:   mp4.Finalize,
}

type box struct {
	typ  string
	at   int
	data []byte
}

func children(b []byte, base int) []box {
	var out []box
	for p := 0; p+8 <= len(b); {
		size := int(binary.BigEndian.Uint32(b[p:]))
		hl := 8
		if size == 1 {
			size, hl = int(binary.BigEndian.Uint64(b[p+8:])), 16
		}
		out = append(out, box{typ: string(b[p+4 : p+8]), at: base + p, data: b[p+hl : p+size]})
		p += size
	}
	return out
}

func find(bs []box, typ string) box {
	for _, b := range bs {
		if b.typ == typ {
			return b
		}
	}
	return box{}
}

// readFile reads back what Finalize wrote: the mehd duration in seconds and
// each track's tfra entries (time in seconds), checking that mfro finds the
// mfra and each entry points at a moof.
func readFile(tb testing.TB, b []byte) (mehd float64, tfra map[uint32][]float64) {
	tb.Helper()
	top := children(b, 0)
	moov := find(top, "moov")
	kids := children(moov.data, 0)
	mvhd := find(kids, "mvhd").data
	movieTS := binary.BigEndian.Uint32(mvhd[12:])
	if mvhd[0] == 1 {
		movieTS = binary.BigEndian.Uint32(mvhd[20:])
	}
	if m := find(children(find(kids, "mvex").data, 0), "mehd").data; m != nil {
		if m[0] == 1 {
			mehd = float64(binary.BigEndian.Uint64(m[4:])) / float64(movieTS)
		} else {
			mehd = float64(binary.BigEndian.Uint32(m[4:])) / float64(movieTS)
		}
	}
	ts := map[uint32]uint32{}
	for _, k := range kids {
		if k.typ != "trak" {
			continue
		}
		tk := children(k.data, 0)
		id := binary.BigEndian.Uint32(find(tk, "tkhd").data[12:])
		mdhd := find(children(find(tk, "mdia").data, 0), "mdhd").data
		ts[id] = binary.BigEndian.Uint32(mdhd[12:])
	}
	mfraLen := int(binary.BigEndian.Uint32(b[len(b)-4:]))
	mfra := b[len(b)-mfraLen:]
	if string(mfra[4:8]) != "mfra" {
		tb.Fatalf("mfro points at %q, not mfra", mfra[4:8])
	}
	tfra = map[uint32][]float64{}
	for _, t := range children(mfra[8:], 0) {
		if t.typ != "tfra" {
			continue
		}
		id := binary.BigEndian.Uint32(t.data[4:])
		n := int(binary.BigEndian.Uint32(t.data[12:]))
		for i := range n {
			e := t.data[16+28*i:]
			at := binary.BigEndian.Uint64(e)
			moof := binary.BigEndian.Uint64(e[8:])
			if string(b[moof+4:moof+8]) != "moof" {
				tb.Errorf("tfra entry of track %d at %d points at %q, not a moof", id, at, b[moof+4:moof+8])
			}
			tfra[id] = append(tfra[id], float64(at)/float64(ts[id]))
		}
	}
	return mehd, tfra
}

func TestFinalizeFFmpeg(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"fmp4", "fmp4+default_base_moof"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs(format, 12)...)
			if got := media.Sniff(stream[:media.SniffLen]); got != media.MP4 {
				t.Fatalf("Sniff = %v, want MP4", got)
			}
			browser := browsertest.MustBrowser(t)
			for i, firstLen := range []int{0, 100_000, 5 << 20} {
				t.Run(fmt.Sprintf("First%d", firstLen), func(t *testing.T) {
					out, grew := container.MustFinalize(t, stream, firstLen, uint64(i))
					if format == "fmp4" && grew != 0 {
						t.Errorf("first part grew by %d bytes; absolute offsets need it unchanged", grew)
					}
					d := mediatest.ProbeDuration(t, out, "out.mp4")
					t.Logf("ffprobe duration %.3f", d)
					if math.Abs(d-12) > 0.5 {
						t.Errorf("ffprobe duration %v, want 12±0.5", d)
					}
					// Through a pipe ffprobe cannot scan the fragments:
					// it reports what the header says.
					if d := mediatest.ProbeDurationPipe(t, out); math.Abs(d-12) > 0.5 {
						t.Errorf("ffprobe duration through a pipe %v, want 12±0.5", d)
					} else {
						t.Logf("ffprobe duration through a pipe %.3f", d)
					}
					mehd, tfra := readFile(t, out)
					t.Logf("mehd %.3fs, tfra entries %v", mehd, tfra)
					if math.Abs(mehd-12) > 0.5 {
						t.Errorf("mehd %v, want 12±0.5", mehd)
					}
					for id, times := range tfra {
						last := 0.0
						for _, at := range append(times, mehd) {
							if at-last > 5 {
								t.Errorf("track %d: gap of %.2fs in the tfra before %.2f", id, at-last, at)
							}
							last = at
						}
					}
					if i > 0 {
						return
					}
					pb := browsertest.CheckPlayback(t, browser, out, "video/mp4")
					t.Logf("Chromium: %+v", pb)
					if math.Abs(pb.Duration-12) > 0.5 || pb.SeekableEnd != pb.Duration {
						t.Errorf("Chromium duration %v, seekable end %v; want 12±0.5 and equal", pb.Duration, pb.SeekableEnd)
					}
					if !pb.Seeked || math.Abs(pb.SeekedAt-pb.Duration/2) > 1 {
						t.Errorf("Chromium did not seek to the middle: %+v", pb)
					}
					if pb.Played <= pb.SeekedAt {
						t.Errorf("Chromium did not play on from the middle: %+v", pb)
					}
				})
			}
		})
	}
}

func TestIndexerFFmpeg(t *testing.T) {
	t.Parallel()
	stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs("fmp4", 6)...)
	index, headerEnd := container.MustIndex(t, stream, 5)
	var one bytes.Buffer
	x := mp4.NewIndexer(&one)
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
	// Each record matches its traf's tfdt, and each fragment of a track
	// starts where the previous one ended.
	moofs := 0
	for _, b := range children(stream, 0) {
		if b.typ == "moof" {
			moofs++
			if moofs == 1 && int64(b.at) != headerEnd {
				t.Errorf("HeaderEnd %d, first moof at %d", headerEnd, b.at)
			}
		}
	}
	var recs []mp4.Record
	mp4.ReadIndex(index, func(r mp4.Record) error {
		if r.Flags&mp4.FlagEnd == 0 {
			recs = append(recs, r)
		}
		return nil
	})
	if len(recs) != 2*moofs {
		t.Fatalf("%d records for %d moofs of 2 tracks", len(recs), moofs)
	}
	next := map[uint32]int64{}
	for i, r := range recs {
		moof := children(stream[r.MoofOffset:], int(r.MoofOffset))[0]
		traf := children(moof.data, 0)[r.Traf] // [0] is mfhd
		tfdt := find(children(traf.data, 0), "tfdt").data
		if want := int64(binary.BigEndian.Uint64(tfdt[4:])); r.Time != want {
			t.Errorf("record %d: time %d, tfdt %d", i, r.Time, want)
		}
		if n, ok := next[r.TrackID]; ok && n != r.Time {
			t.Errorf("record %d: track %d starts at %d, previous fragment ended at %d", i, r.TrackID, r.Time, n)
		}
		next[r.TrackID] = r.End
		if r.Flags&mp4.FlagSync == 0 || r.Sample != 1 || r.SyncTime != r.Time || r.Flags&mp4.FlagAbsolute == 0 {
			t.Errorf("record %d: %+v; want the first sample a sync sample, an absolute offset", i, r)
		}
	}
	t.Logf("%d records; track ends %v", len(recs), next)
}

func TestLiveStreamBaseline(t *testing.T) {
	// What players make of the raw live stream, for comparison.
	t.Parallel()
	stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs("fmp4", 12)...)
	d := mediatest.ProbeDuration(t, stream, "live.mp4")
	dp := mediatest.ProbeDurationPipe(t, stream)
	pb := browsertest.CheckPlayback(t, browsertest.MustBrowser(t), stream, "video/mp4")
	// ffmpeg, in ffprobe and in Chromium, scans every moof of a seekable
	// file: the raw stream's duration is found that way. Through a pipe
	// only the header counts, and it says nothing: ffprobe gives the length
	// of the first fragment it read.
	t.Logf("raw live fMP4: ffprobe duration %v (file), %v (pipe); Chromium %+v", d, dp, pb)
	if dp > 6 {
		t.Errorf("ffprobe through a pipe found a duration (%v) in the raw stream's header", dp)
	}
}

// TestCutFFmpeg stops ffmpeg's live fMP4 at random bytes, as a stop through
// the API while the recorder writes does.
func TestCutFFmpeg(t *testing.T) {
	t.Parallel()
	full := mediatest.MustFFmpeg(t, mediatest.LiveArgs("fmp4", 12)...)
	browser := browsertest.MustBrowser(t)
	r := rand.New(rand.NewPCG(12, 12))
	var refused int
	for i := range 12 {
		cut := len(full)/3 + r.IntN(len(full)*2/3)
		stream := full[:cut]
		out, tail, ok := container.FinalizeCut(t, stream, 0, mp4.ErrTruncated, func(x mediatest.Indexer) { mediatest.Feed(t, x, stream, uint64(i)) })
		if !ok {
			refused++
			continue
		}
		mehd, _ := readFile(t, out)
		d := mediatest.ProbeDurationPipe(t, out)
		t.Logf("cut at %d of %d: mehd %.3f, ffprobe (pipe) %.3f, tail %d bytes", cut, len(full), mehd, d, len(tail))
		if math.Abs(d-mehd) > 0.1 || mehd < 12*float64(cut)/float64(len(full))-1.5 {
			t.Errorf("cut at %d: mehd %v, ffprobe %v", cut, mehd, d)
		}
		if i == 0 {
			pb := browsertest.CheckPlayback(t, browser, out, "video/mp4")
			t.Logf("Chromium: %+v", pb)
			if math.Abs(pb.Duration-mehd) > 0.1 || pb.SeekableEnd != pb.Duration || !pb.Seeked {
				t.Errorf("Chromium: %+v", pb)
			}
		}
	}
	if refused > 2 {
		t.Errorf("%d of 12 cuts refused", refused)
	}
}

// TestResumeFFmpeg crashes the Indexer at random bytes of ffmpeg's live fMP4
// and resumes it from its checkpoint: the index comes out the same as
// without the crash.
func TestResumeFFmpeg(t *testing.T) {
	t.Parallel()
	stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs("fmp4+default_base_moof", 6)...)
	want, _ := container.MustIndex(t, stream, 1)
	all := make([]byte, want.Size())
	want.ReadAt(all, 0)
	r := rand.New(rand.NewPCG(6, 6))
	for range 20 {
		cut := r.IntN(len(stream))
		var index bytes.Buffer
		x := mp4.NewIndexer(&index)
		mediatest.Feed(t, x, stream[:cut], uint64(cut))
		cp, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		x.Write(stream[cut:min(cut+100_000, len(stream))]) // written before the crash, lost with it
		kept := new(bytes.Buffer)
		y, err := mp4.Resume(cp, kept)
		if err != nil {
			t.Fatal(err)
		}
		kept.Write(index.Bytes()[:y.IndexLen()])
		mediatest.Feed(t, y, stream[y.Offset():], 2)
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kept.Bytes(), all) {
			t.Fatalf("crash at %d: resumed index differs", cut)
		}
	}
}
