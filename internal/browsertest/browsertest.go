// Package browsertest starts headless Chromium for tests and judges media
// in a <video> element: its duration, seekable range, a seek and playback.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink/internal/mediatest"
)

// MustBrowser starts headless Chromium for tb, with the options extra after
// the common ones (a window size, fake media devices). It skips tb when
// chromium is absent, or fails it when RECSINK_REQUIRE_TOOLS=1. The browser
// lives until tb's cleanup.
func MustBrowser(tb testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	path := mediatest.MustTool(tb, "chromium")
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
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first run starts the browser; it lives as long as ctx.
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
  if (v.error) fail(); // failed before this script ran
  else if (v.readyState >= 1) meta(); else v.addEventListener("loadedmetadata", meta, {once: true});
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
