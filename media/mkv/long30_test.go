package mkv_test

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/recsink/recsink/internal/mediatest"
	"github.com/recsink/recsink/media/mkv"
)

// TestLiveMatroska30Minutes is issue 12's third proof on real media: ffmpeg
// writes 30 minutes of live Matroska (H.264 at 2 Mbit/s with a keyframe
// every 2 s, as OBS and most live encoders send, and AAC) to a pipe; the
// stream goes through an Indexer in the ingest handler's 32 KiB reads, with
// its index in a file as in the spool; the bytes allocated while indexing
// stay within the 256 KiB bound per recording; the finished file (5 MiB
// first part held back) has a Duration that ffprobe reads within 0.5 s
// and a cue point at least every 5 s, each pointing at a Cluster.
//
// ffmpeg encodes faster than real time: the Indexer's memory depends on the
// bytes and clusters it sees, not on their pace. It takes a few minutes and
// about 1 GB of memory: set RECSINK_MEDIA_LONG=1 to run it
// (RECSINK_MEDIA_LONG_SECONDS changes the length, 1800 by default).
func TestLiveMatroska30Minutes(t *testing.T) {
	if os.Getenv("RECSINK_MEDIA_LONG") != "1" {
		t.Skip("set RECSINK_MEDIA_LONG=1 to run")
	}
	seconds := 1800
	if s := os.Getenv("RECSINK_MEDIA_LONG_SECONDS"); s != "" {
		var err error
		if seconds, err = strconv.Atoi(s); err != nil || seconds < 10 {
			t.Fatalf("RECSINK_MEDIA_LONG_SECONDS=%q", s)
		}
	}
	d := strconv.Itoa(seconds)
	began := time.Now()
	stream := mediatest.MustFFmpeg(t, "-f", "lavfi", "-i", "testsrc2=duration="+d+":size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=duration="+d, "-vf", "noise=alls=20:allf=t",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50",
		"-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M", "-c:a", "aac", "-b:a", "64k", "-f", "matroska", "pipe:1")
	mbps := float64(len(stream)) * 8 / float64(seconds) / 1e6
	t.Logf("ffmpeg wrote %d s of live Matroska in %v: %d bytes, %.2f Mbit/s", seconds, time.Since(began).Round(time.Second), len(stream), mbps)
	if mbps < 1.8 {
		t.Fatalf("%.2f Mbit/s, want about 2", mbps)
	}

	f, err := os.Create(t.TempDir() + "/index")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	x := mkv.NewIndexer(f)
	for p := 0; p < len(stream); p += 32 << 10 {
		if _, err := x.Write(stream[p:min(p+32<<10, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	heap := int64(m1.TotalAlloc - m0.TotalAlloc) // every byte allocated while indexing: a bound of what it holds
	runtime.KeepAlive(x)
	t.Logf("indexing %d bytes allocated %d bytes in %d allocations; index file %d bytes", len(stream), heap, m1.Mallocs-m0.Mallocs, x.IndexLen())
	if heap > 256<<10 {
		t.Errorf("indexing allocated %d bytes, want ≤ 256 KiB", heap)
	}

	firstLen := 5 << 20
	first, tail, err := mkv.Finalize(stream[:firstLen], f, int64(len(stream)))
	if err != nil {
		t.Fatal(err)
	}
	file := make([]byte, 0, len(first)+len(stream)-firstLen+len(tail))
	file = append(append(append(file, first...), stream[firstLen:]...), tail...)
	stream = nil
	dur, cues := readFile(t, file)
	checkCues(t, cues, dur, 5)
	probed := mediatest.ProbeDuration(t, file, "long.mkv")
	t.Logf("finished file: %d bytes, tail %d bytes; Duration %.3f s, ffprobe %.3f s, %d cue points", len(file), len(tail), dur, probed, len(cues))
	if math.Abs(probed-float64(seconds)) > 0.5 || math.Abs(dur-float64(seconds)) > 0.5 {
		t.Errorf("duration %.3f s (ffprobe %.3f s), want %d s ±0.5", dur, probed, seconds)
	}
}
