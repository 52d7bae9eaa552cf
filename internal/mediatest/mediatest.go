// Package mediatest runs the real tools media is proved with: ffmpeg makes
// live-like streams, ffprobe judges the finished files (internal/browsertest
// has Chromium judge them).
package mediatest

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
