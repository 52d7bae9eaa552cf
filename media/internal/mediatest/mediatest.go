// Package mediatest runs the real tools the media packages are proved with:
// ffmpeg makes live-like streams, ffprobe and headless Chromium judge the
// finished files.
package mediatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvRequireTools set to 1 turns a missing binary into a test failure
// instead of a skip, as in CI.
const EnvRequireTools = "RECSINK_REQUIRE_TOOLS"

// MustTool returns the path of the binary name, skipping tb when it is
// absent (failing it when RECSINK_REQUIRE_TOOLS=1).
func MustTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("mediatest: %s not found (apt-get install %s)", name, name)
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return path
}

// MustFFmpeg runs ffmpeg with args, which must write the stream to pipe:1,
// and returns what it wrote: output to a pipe is not seekable, so ffmpeg
// writes it as a live recorder does.
func MustFFmpeg(tb testing.TB, args ...string) []byte {
	tb.Helper()
	path := MustTool(tb, "ffmpeg")
	cmd := exec.Command(path, append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// LiveArgs returns ffmpeg arguments for seconds of 320x240 test video at 25
// fps with a keyframe a second and a sine tone, in format "matroska",
// "webm" or "fmp4" (extra movflags appended with "+"), to stdout.
func LiveArgs(format string, seconds int) []string {
	d := strconv.Itoa(seconds)
	in := []string{"-f", "lavfi", "-i", "testsrc2=duration=" + d + ":size=320x240:rate=25", "-f", "lavfi", "-i", "sine=duration=" + d}
	switch {
	case format == "matroska":
		return append(in, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "matroska", "pipe:1")
	case format == "webm":
		return append(in, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k", "-g", "25", "-c:a", "libopus", "-f", "webm", "pipe:1")
	case strings.HasPrefix(format, "fmp4"):
		flags := "frag_keyframe+empty_moov" + strings.TrimPrefix(format, "fmp4")
		return append(in, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", flags, "-f", "mp4", "pipe:1")
	}
	panic("mediatest: unknown format " + format)
}

// WriteTemp writes data to a file named name in a temporary directory of tb.
func WriteTemp(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Probe runs ffprobe on data with the given -show_entries and returns its
// output in the default=nw=1 form ("key=value" lines).
func Probe(tb testing.TB, data []byte, name string, args ...string) string {
	tb.Helper()
	path := MustTool(tb, "ffprobe")
	file := WriteTemp(tb, name, data)
	cmd := exec.Command(path, append(append([]string{"-v", "error"}, args...), file)...)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffprobe %v: %v", args, err)
	}
	return string(out)
}

// ProbeDuration returns the container duration ffprobe reads from data, or
// NaN when it prints N/A.
func ProbeDuration(tb testing.TB, data []byte, name string) float64 {
	tb.Helper()
	out := strings.TrimSpace(Probe(tb, data, name, "-show_entries", "format=duration", "-of", "csv=p=0"))
	d, err := strconv.ParseFloat(out, 64)
	if err != nil {
		return math.NaN()
	}
	return d
}

// ProbeDurationPipe is ProbeDuration with data on ffprobe's standard
// input: ffprobe cannot seek, so it reports the duration the header holds
// (mvhd, mehd, the Segment Info) instead of one found by scanning the file.
func ProbeDurationPipe(tb testing.TB, data []byte) float64 {
	tb.Helper()
	path := MustTool(tb, "ffprobe")
	cmd := exec.Command(path, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "-i", "pipe:0")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffprobe pipe:0: %v", err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return math.NaN()
	}
	return d
}

// Feed writes data to w in chunks of random sizes from 1 byte to 64 KiB.
func Feed(tb testing.TB, w io.Writer, data []byte, seed uint64) {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	for len(data) > 0 {
		n := 1 + r.IntN(1<<16)
		if r.IntN(4) == 0 {
			n = 1 + r.IntN(16)
		}
		n = min(n, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			tb.Fatalf("write at %d: %v", n, err)
		}
		data = data[n:]
	}
}

// MustBrowser starts headless Chromium for tb. It skips tb when chromium is
// absent, or fails it when RECSINK_REQUIRE_TOOLS=1.
func MustBrowser(tb testing.TB) context.Context {
	tb.Helper()
	path := MustTool(tb, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(tb.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Playback is what Chromium reports about a file in a <video> element.
type Playback struct {
	Duration    float64 // video.duration; +Inf is reported as math.Inf
	SeekableEnd float64 // seekable.end(0), or NaN when nothing is seekable
	Seeked      bool    // setting currentTime to the middle reached "seeked"
	SeekedAt    float64 // currentTime after the seek
	Played      float64 // currentTime after playing on from the middle
	Error       string  // the media element's error, if any
	Ranges      int     // Range requests the server answered
}

// CheckPlayback serves data with range support (http.ServeContent) and
// loads it in a <video> element of the browser ctx: it reports the
// duration, the seekable range, a seek to the middle and playback from there.
func CheckPlayback(tb testing.TB, ctx context.Context, data []byte, contentType string) Playback {
	tb.Helper()
	var ranges atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><video id=v muted preload=auto src="/media"></video>`)
	})
	mux.HandleFunc("/media", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		w.Header().Set("Content-Type", contentType)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() {
		srv.CloseClientConnections() // the browser keeps its connection
		srv.Close()
	})

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		tb.Fatalf("browser: %v", err)
	}
	const script = `new Promise((resolve) => {
  const v = document.getElementById("v");
  const out = {duration: -1, seekableEnd: -1, seeked: false, seekedAt: -1, played: -1, error: ""};
  const fail = () => { out.error = v.error ? (v.error.code + " " + v.error.message) : "no error"; resolve(JSON.stringify(out)); };
  const num = (x) => x === Infinity ? 1e300 : x;
  const meta = () => {
    out.duration = num(v.duration);
    out.seekableEnd = v.seekable.length ? num(v.seekable.end(v.seekable.length - 1)) : -2;
    if (!isFinite(v.duration)) { resolve(JSON.stringify(out)); return; }
    v.addEventListener("seeked", () => {
      out.seeked = true; out.seekedAt = v.currentTime;
      const from = v.currentTime;
      v.play().catch(() => {});
      const t0 = Date.now();
      const tick = () => {
        if (v.currentTime > from + 0.5 || Date.now() - t0 > 5000) { out.played = v.currentTime; resolve(JSON.stringify(out)); return; }
        setTimeout(tick, 100);
      };
      tick();
    }, {once: true});
    v.currentTime = v.duration / 2;
  };
  v.addEventListener("error", fail);
  if (v.readyState >= 1) meta(); else v.addEventListener("loadedmetadata", meta, {once: true});
  setTimeout(() => { out.error = out.error || "timeout"; resolve(JSON.stringify(out)); }, 30000);
})`
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("browser: %v", err)
	}
	var raw struct {
		Duration, SeekableEnd, SeekedAt, Played float64
		Seeked                                  bool
		Error                                   string
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		tb.Fatalf("browser result %q: %v", s, err)
	}
	inf := func(x float64) float64 {
		if x >= 1e300 {
			return math.Inf(1)
		}
		if x == -2 {
			return math.NaN()
		}
		return x
	}
	return Playback{Duration: inf(raw.Duration), SeekableEnd: inf(raw.SeekableEnd), Seeked: raw.Seeked, SeekedAt: raw.SeekedAt, Played: raw.Played, Error: raw.Error, Ranges: int(ranges.Load())}
}
