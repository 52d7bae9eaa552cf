package mkv_test

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
	"github.com/recsink/recsink/media/mkv"
)

// container is this package's Indexer and Finalize for mediatest's
// MustIndex and MustFinalize.
var container = mediatest.Container{
	NewIndexer: func(index io.Writer) mediatest.Indexer { return mkv.NewIndexer(index) },
	Finalize:   mkv.Finalize,
}

// cue is a CuePoint as read back from a finished file.
type cue struct {
	time, cluster int64 // cluster: absolute file offset
}

// readFile parses a finished file the way a player does: it returns the
// Duration in seconds, the cue points (checking that each points at a
// Cluster), and whether the SeekHead's Cues entry points at the Cues.
func readFile(tb testing.TB, b []byte) (dur float64, cues []cue) {
	tb.Helper()
	el := func(p int) (id uint32, size int64, n int) {
		l := 0
		for m := byte(0x80); l < 4 && b[p]&m == 0; m >>= 1 {
			l++
		}
		l++
		for _, c := range b[p : p+l] {
			id = id<<8 | uint32(c)
		}
		s := 0
		for m := byte(0x80); b[p+l]&m == 0; m >>= 1 {
			s++
		}
		s++
		v := uint64(b[p+l] & (0xFF >> s))
		for _, c := range b[p+l+1 : p+l+s] {
			v = v<<8 | uint64(c)
		}
		if v == 1<<(7*s)-1 {
			return id, -1, l + s // unknown size
		}
		return id, int64(v), l + s
	}
	uint := func(d []byte) int64 {
		var v int64
		for _, c := range d {
			v = v<<8 | int64(c)
		}
		return v
	}
	_, size, n := el(0)
	p := n + int(size)
	id, segSize, n := el(p)
	if id != 0x18538067 {
		tb.Fatalf("no Segment at %d", p)
	}
	seg := p + n
	if int64(seg)+segSize != int64(len(b)) {
		tb.Errorf("Segment size %d, file has %d bytes after its header", segSize, len(b)-seg)
	}
	scale := 1e6
	seekCues := int64(-1)
	for p = seg; p < len(b); {
		id, size, n := el(p)
		if size == -1 { // a Cluster of unknown size: step into it
			size = 0
			for q := p + n; q < len(b); {
				cid, csize, cn := el(q)
				if cid == 0x1F43B675 || cid == 0x1C53BB6B {
					break
				}
				q += cn + int(csize)
				size = int64(q - p - n)
			}
		}
		data := b[p+n : p+n+int(size)]
		switch id {
		case 0x114D9B74: // SeekHead
			for q := 0; q < len(data); {
				_, ssize, sn := el(p + n + q)
				seek := data[q+sn : q+sn+int(ssize)]
				var sid, spos int64
				for r := 0; r < len(seek); {
					cid, csize, cn := el(p + n + q + sn + r)
					v := uint(seek[r+cn : r+cn+int(csize)])
					if cid == 0x53AB {
						sid = v
					} else if cid == 0x53AC {
						spos = v
					}
					r += cn + int(csize)
				}
				if sid == 0x1C53BB6B {
					seekCues = spos
				}
				q += sn + int(ssize)
			}
		case 0x1549A966: // Info
			for q := 0; q < len(data); {
				cid, csize, cn := el(p + n + q)
				d := data[q+cn : q+cn+int(csize)]
				switch cid {
				case 0x2AD7B1:
					scale = float64(uint(d))
				case 0x4489:
					dur = math.Float64frombits(binary.BigEndian.Uint64(d))
				}
				q += cn + int(csize)
			}
		case 0x1C53BB6B: // Cues
			if seekCues != int64(p-seg) {
				tb.Errorf("SeekHead points at Cues at %d, they are at %d", seekCues, p-seg)
			}
			for q := 0; q < len(data); {
				_, psize, pn := el(p + n + q)
				var c cue
				for r := q + pn; r < q+pn+int(psize); {
					cid, csize, cn := el(p + n + r)
					d := data[r+cn : r+cn+int(csize)]
					switch cid {
					case 0xB3:
						c.time = uint(d)
					case 0xB7:
						for s := r + cn; s < r+cn+int(csize); {
							gid, gsize, gn := el(p + n + s)
							if gid == 0xF1 {
								c.cluster = int64(seg) + uint(data[s+gn:s+gn+int(gsize)])
							}
							s += gn + int(gsize)
						}
					}
					r += cn + int(csize)
				}
				if !bytes.HasPrefix(b[c.cluster:], []byte{0x1F, 0x43, 0xB6, 0x75}) {
					tb.Errorf("cue at %d points at %d, not a Cluster", c.time, c.cluster)
				}
				cues = append(cues, c)
				q += pn + int(psize)
			}
		}
		p += n + int(size)
	}
	return dur * scale / 1e9, cues
}

// checkCues fails tb unless there is a cue point at least every maxGap
// seconds over dur.
func checkCues(tb testing.TB, cues []cue, dur, maxGap float64) {
	tb.Helper()
	if len(cues) == 0 {
		tb.Fatal("no cue points")
	}
	last := 0.0
	for _, c := range append(cues, cue{time: int64(dur * 1000)}) {
		if gap := float64(c.time)/1000 - last; gap > maxGap {
			tb.Errorf("cue gap of %.2fs before %dms", gap, c.time)
		}
		last = float64(c.time) / 1000
	}
	tb.Logf("%d cue points over %.2fs: one every %.2fs", len(cues), dur, dur/float64(len(cues)))
}

func TestFinalizeFFmpeg(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, format string
		kind         media.Kind
		unknown      bool
	}{
		{"Matroska", "matroska", media.Matroska, false},
		{"WebM", "webm", media.WebM, false},
		// MediaRecorder writes Clusters of unknown size.
		{"WebMUnknownClusters", "webm", media.WebM, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs(tt.format, 12)...)
			if tt.unknown {
				unknownClusters(t, stream)
			}
			if got := media.Sniff(stream[:media.SniffLen]); got != tt.kind {
				t.Fatalf("Sniff = %v, want %v", got, tt.kind)
			}
			if d := mediatest.ProbeDuration(t, stream, "live."+tt.kind.Ext()); !math.IsNaN(d) {
				t.Fatalf("the live stream already has a duration (%v): ffmpeg's output was seekable", d)
			}
			if d := mediatest.ProbeDurationPipe(t, stream); !math.IsNaN(d) {
				t.Fatalf("the live stream has a duration through a pipe (%v)", d)
			}
			browser := browsertest.MustBrowser(t)
			for i, firstLen := range []int{0, 100_000, 5 << 20} {
				t.Run(fmt.Sprintf("First%d", firstLen), func(t *testing.T) {
					out, _ := container.MustFinalize(t, stream, firstLen, uint64(i))
					d := mediatest.ProbeDuration(t, out, "out."+tt.kind.Ext())
					t.Logf("ffprobe duration %.3f", d)
					if math.Abs(d-12) > 0.5 {
						t.Errorf("ffprobe duration %v, want 12±0.5", d)
					}
					if d := mediatest.ProbeDurationPipe(t, out); math.Abs(d-12) > 0.5 {
						t.Errorf("ffprobe duration through a pipe %v, want 12±0.5", d)
					}
					dur, cues := readFile(t, out)
					checkCues(t, cues, dur, 5)
					if i > 0 {
						return // Chromium once per format is enough for the time it takes
					}
					pb := browsertest.CheckPlayback(t, browser, out, tt.kind.ContentType())
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

func TestLiveStreamIsInfinite(t *testing.T) {
	// What issue 12 measured, as a baseline: the raw stream has no duration in Chromium.
	t.Parallel()
	stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs("webm", 4)...)
	pb := browsertest.CheckPlayback(t, browsertest.MustBrowser(t), stream, "video/webm")
	t.Logf("Chromium on the raw live stream: %+v", pb)
	if !math.IsInf(pb.Duration, 1) {
		t.Errorf("duration %v, want +Inf", pb.Duration)
	}
}

// unknownClusters sets the size of each Cluster of stream to "unknown", as
// a live muxer that cannot buffer its clusters writes them.
func unknownClusters(tb testing.TB, stream []byte) {
	tb.Helper()
	n := 0
	for p := 0; ; {
		i := bytes.Index(stream[p:], []byte{0x1F, 0x43, 0xB6, 0x75})
		if i < 0 {
			break
		}
		p += i + 4
		l := 1
		for m := byte(0x80); stream[p]&m == 0; m >>= 1 {
			l++
		}
		size := int64(stream[p] & (0xFF >> l))
		for _, c := range stream[p+1 : p+l] {
			size = size<<8 | int64(c)
		}
		stream[p] |= 0xFF >> l
		for j := 1; j < l; j++ {
			stream[p+j] = 0xFF
		}
		p += l + int(size)
		n++
	}
	if n < 10 {
		tb.Fatalf("only %d clusters found", n)
	}
}

// TestCutFFmpeg stops ffmpeg's live Matroska at random bytes, as a stop
// through the API while the recorder writes does: the finished files are
// well-formed, and ffprobe and Chromium read their duration and seek.
func TestCutFFmpeg(t *testing.T) {
	t.Parallel()
	full := mediatest.MustFFmpeg(t, mediatest.LiveArgs("matroska", 12)...)
	browser := browsertest.MustBrowser(t)
	r := rand.New(rand.NewPCG(12, 12))
	var refused int
	for i := range 12 {
		cut := len(full)/3 + r.IntN(len(full)*2/3)
		stream := full[:cut]
		out, tail, ok := container.FinalizeCut(t, stream, 0, mkv.ErrTruncated, func(x mediatest.Indexer) { mediatest.Feed(t, x, stream, uint64(i)) })
		if !ok {
			refused++
			continue
		}
		if err := checkStructure(out); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		dur, cues := readFile(t, out)
		d := mediatest.ProbeDuration(t, out, "cut.mkv")
		t.Logf("cut at %d of %d: Duration %.3f, ffprobe %.3f, %d cues, tail %d bytes", cut, len(full), dur, d, len(cues), len(tail))
		if math.Abs(d-dur) > 0.01 || dur < 12*float64(cut)/float64(len(full))-1.5 {
			t.Errorf("cut at %d: Duration %v, ffprobe %v", cut, dur, d)
		}
		if i == 0 {
			pb := browsertest.CheckPlayback(t, browser, out, "video/x-matroska")
			t.Logf("Chromium: %+v", pb)
			if math.Abs(pb.Duration-dur) > 0.1 || pb.SeekableEnd != pb.Duration || !pb.Seeked {
				t.Errorf("Chromium: %+v", pb)
			}
		}
	}
	if refused > 2 {
		t.Errorf("%d of 12 cuts refused", refused)
	}
}

// TestResumeFFmpeg crashes the Indexer at random bytes of ffmpeg's live
// WebM (clusters of unknown size) and resumes it from its checkpoint: the
// index comes out the same as without the crash.
func TestResumeFFmpeg(t *testing.T) {
	t.Parallel()
	stream := mediatest.MustFFmpeg(t, mediatest.LiveArgs("webm", 6)...)
	unknownClusters(t, stream)
	want, _ := container.MustIndex(t, stream, 1)
	r := rand.New(rand.NewPCG(6, 6))
	for range 20 {
		cut := r.IntN(len(stream))
		var index bytes.Buffer
		x := mkv.NewIndexer(&index)
		mediatest.Feed(t, x, stream[:cut], uint64(cut))
		cp, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		x.Write(stream[cut:min(cut+100_000, len(stream))]) // written before the crash, lost with it
		kept := new(bytes.Buffer)
		y, err := mkv.Resume(cp, kept)
		if err != nil {
			t.Fatal(err)
		}
		kept.Write(index.Bytes()[:y.IndexLen()])
		mediatest.Feed(t, y, stream[y.Offset():], 2)
		if err := y.Close(); err != nil {
			t.Fatal(err)
		}
		if got := kept.Bytes(); !bytes.Equal(got, readAll(want)) {
			t.Fatalf("crash at %d: resumed index differs", cut)
		}
	}
}

func readAll(r *bytes.Reader) []byte {
	b := make([]byte, r.Size())
	r.ReadAt(b, 0)
	return b
}
