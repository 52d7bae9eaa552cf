package main_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestLive_UnsupportedCodecRefused: issue 15's "an unsupported codec is
// refused with a message naming the codec", over RTMP and SRT with real
// ffmpeg: H.264 with MP3 audio over RTMP, and H.264 with MP2 audio over SRT
// (MPEG-TS). recsink refuses the publish before any recording starts, ffmpeg
// ends well before its deadline, the log names the codec and not the key, and
// the key is not left live: a supported publish is taken right after.
func TestLive_UnsupportedCodecRefused(t *testing.T) {
	e := mustLiveEnv(t, time.Second)
	for _, tt := range []struct {
		name, url, audio string
		logged           *regexp.Regexp
	}{
		{"RTMP", e.URL, "libmp3lame", regexp.MustCompile(`refused a publish: codec \S*MPEG1Audio\S* is not supported \(recsink records H.264 and AAC from RTMP\)`)},
		{"SRT", e.SRTURL + "&linger=2", "mp2", regexp.MustCompile(`refused a publish: codec MPEG1Audio is not supported \(recsink records H.264 and AAC from SRT\)`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			out, err := exec.CommandContext(ctx, requireTool(t, "ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error",
				"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
				"-c:v", "libx264", "-preset", "ultrafast", "-c:a", tt.audio, "-f", formatOf(tt.url), tt.url).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("ffmpeg publishing %s audio ran until its deadline: %s", tt.audio, out)
			}
			if err == nil {
				t.Fatalf("ffmpeg publishing %s audio exited 0: %s", tt.audio, out)
			}
			logs := e.Main.Logs.String()
			line := tt.logged.FindString(logs)
			if line == "" {
				t.Fatalf("no refusal naming the codec in the log:\n%s", grepLog(logs, "refused", "codec"))
			}
			if regexp.MustCompile(regexp.QuoteMeta(e.Key)).MatchString(logs) {
				t.Fatal("the log shows the stream key")
			}
			if recs := e.recordings(t); len(recs) != 0 {
				t.Fatalf("a refused codec started recordings: %v", recs)
			}
			t.Logf("ffmpeg ended after %v: %q; recsink logged %q", time.Since(began).Round(time.Millisecond), out, line)
		})
	}
	// The key was not left live by the refusals: a supported publish works.
	p := startPublisher(t, e.URL)
	e.waitLive(t, true, 20*time.Second)
	p.stop(t, os.Interrupt)
}
