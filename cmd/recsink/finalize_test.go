package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/browsertest"
)

// liveArgs are ffmpeg's arguments for live test media with no end (no -t):
// 640x360 noisy video at 25 fps, a keyframe a second, about 6 Mbit/s so
// that a recording of 15 s spans three parts, and a tone.
func liveArgs(format string) []string {
	in := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-vf", "noise=alls=30:allf=t"}
	switch format {
	case "fmp4":
		return append(in, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
			"-b:v", "6M", "-maxrate", "6M", "-bufsize", "3M", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4")
	case "webm":
		return append(in, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "6M", "-g", "25",
			"-c:a", "libopus", "-f", "webm")
	}
	return append(in, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-b:v", "6M", "-maxrate", "6M", "-bufsize", "3M", "-c:a", "aac", "-f", "matroska")
}

// streamLive runs ffmpeg streaming live media of format into rec with
// -method PUT, through a tap that keeps a copy of what ffmpeg sent, and ends
// it with SIGINT after d, as a meeting that ends does. It returns the bytes
// sent.
func streamLive(t *testing.T, rec Started, format string, d time.Duration) []byte {
	t.Helper()
	ffmpeg := requireTool(t, "ffmpeg")
	var mu sync.Mutex
	var sent bytes.Buffer
	status := make(chan int, 1)
	tap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := io.TeeReader(r.Body, writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return sent.Write(p)
		}))
		resp := rec.Put(t, body)
		w.WriteHeader(resp.StatusCode)
		status <- resp.StatusCode
	}))
	defer tap.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(ffmpeg, append(liveArgs(format), "-method", "PUT", tap.URL+"/ingest")...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGINT) })
	defer timer.Stop()
	err := cmd.Wait()
	if err != nil && !strings.Contains(err.Error(), "255") {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	select {
	case s := <-status:
		if s/100 != 2 {
			t.Fatalf("ingest PUT answered %d", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ingest PUT did not end after ffmpeg did")
	}
	mu.Lock()
	defer mu.Unlock()
	return bytes.Clone(sent.Bytes())
}

// probeFormatDuration returns what ffprobe prints for format=duration (the
// header's duration; "N/A" for a live stream) and the media's own duration,
// the end of its last packet.
func probeFormatDuration(t *testing.T, data []byte, ext string) (string, float64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "object."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(requireTool(t, "ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	media, _ := ffprobe(t, data)
	return strings.TrimSpace(string(out)), media
}

// checkHeaderDuration fails t unless the duration ffprobe reads from the
// header of data (a file of ext) is the media's own, within 0.5 s; it
// returns both, as probeFormatDuration does.
func checkHeaderDuration(t *testing.T, data []byte, ext string) (string, float64) {
	t.Helper()
	header, media := probeFormatDuration(t, data, ext)
	if d, err := strconv.ParseFloat(header, 64); err != nil || math.Abs(d-media) > 0.5 {
		t.Errorf("ffprobe format=duration %q, media %.3f s: want within 0.5 s", header, media)
	}
	return header, media
}

// checkPlays fails t unless Chromium, fetching data (contentType) with
// range requests, reports its duration as media's ±0.5 s, seekable to the
// end, and seeks to the middle; it returns what Chromium reported.
func checkPlays(t *testing.T, data []byte, contentType string, media float64) browsertest.Playback {
	t.Helper()
	pb := browsertest.CheckPlayback(t, browsertest.MustBrowser(t), data, contentType)
	if math.Abs(pb.Duration-media) > 0.5 || pb.SeekableEnd != pb.Duration || !pb.Seeked || pb.Error != "" {
		t.Errorf("Chromium: %+v; want duration %.3f s ±0.5, seekable to it, seeked", pb, media)
	}
	return pb
}

// TestRecording_LiveMatroskaFinalized is the proof of issue 12 for live
// Matroska (H.264/AAC): ffmpeg streams with -method PUT and no -t and is
// ended by SIGINT after 20 s; the object has a duration that ffprobe prints and that
// Chromium reports, seekable to the end, and Chromium seeks to the middle
// and plays on from there.
func TestRecording_LiveMatroskaFinalized(t *testing.T) {
	testLiveFinalized(t, "matroska", "mkv", recsink.FormatMKV, "video/x-matroska")
}

// TestRecording_LiveWebMFinalized: the same for live WebM (VP8 + Opus)
// into a room whose fileFormat is mkv: the first bytes name the object
// <base>.webm with Content-Type video/webm, not the provisional .mkv.
func TestRecording_LiveWebMFinalized(t *testing.T) {
	testLiveFinalized(t, "webm", "webm", recsink.FormatMKV, "video/webm")
}

// TestRecording_LiveFMP4Finalized: the same for live fragmented MP4
// (-movflags frag_keyframe+empty_moov) into a destination of fileFormat
// mp4: the object gets its durations and an mfra.
func TestRecording_LiveFMP4Finalized(t *testing.T) {
	testLiveFinalized(t, "fmp4", "mp4", recsink.FormatMP4, "video/mp4")
}

// mustFormatEnv is an Env whose organization's storage has fileFormat
// format, and a meeting.
func mustFormatEnv(t *testing.T, format string) (*Env, string) {
	t.Helper()
	e := MustEnv(t)
	body := e.Storage(e.Bucket+"/recordings", e.Key)
	body["fileFormat"] = format
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", body)
	return e, e.MustMeeting(t, e.Org)
}

func testLiveFinalized(t *testing.T, format, ext, fileFormat, contentType string) {
	t.Parallel()
	if testing.Short() {
		t.Skip("streams 20 s of live media")
	}
	e, meeting := mustFormatEnv(t, fileFormat)
	rec := MustStartRecording(t, e.Org, meeting)
	sent := streamLive(t, rec, format, 20*time.Second)
	stop := time.Now()
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	took := time.Since(stop)
	// The object is named and typed after the content: the start's name
	// has the file format's extension; the first bytes decide.
	key, _ := out["objectKey"].(string)
	if want := strings.TrimSuffix(rec.ObjectKey, path.Ext(rec.ObjectKey)) + "." + ext; key != want || out["filename"] != path.Base(want) {
		t.Errorf("objectKey %q filename %v; want %s", key, out["filename"], want)
	}
	if ct := headContentType(t, e.S3, e.Key, e.Bucket, key); ct != contentType {
		t.Errorf("HeadObject Content-Type %q, want %q", ct, contentType)
	}
	if objs := e.S3.ListObjects(t, e.Bucket, ""); len(objs) != 1 || objs[0] != key {
		t.Errorf("objects in the bucket %v; want only %s", objs, key)
	}
	object := e.S3.GetObject(t, e.Bucket, key)
	t.Logf("ffmpeg sent %d bytes (%d parts of 5 MiB); object %d bytes; stop to uploaded %s (polled every 50 ms), %s between the stopped and uploaded events",
		len(sent), (len(sent)+5<<20-1)/(5<<20), len(object), took.Round(time.Millisecond), eventGap(t, out, recsink.EventStopped, recsink.EventUploaded))

	// What the recorder sent is what the recording says it received.
	sum := sha256.Sum256(sent)
	if out["sha256"] != hex.EncodeToString(sum[:]) || out["bytesReceived"] != float64(len(sent)) {
		t.Errorf("recording sha256 %v bytesReceived %v, want %x %d", out["sha256"], out["bytesReceived"], sum, len(sent))
	}
	if out["sizeBytes"] != float64(len(object)) {
		t.Errorf("sizeBytes %v, object has %d bytes", out["sizeBytes"], len(object))
	}
	checkObjectChecksum(t, e, out, object)
	// Every byte after the first part is the recorder's, unchanged.
	if len(sent) > 5<<20 && !bytes.Contains(object, sent[5<<20:]) {
		t.Error("the object does not hold the recorder's bytes after part 1 unchanged")
	}

	header, media := checkHeaderDuration(t, object, ext)
	before, _ := probeFormatDuration(t, sent, ext)
	t.Logf("ffprobe format=duration: %s s (as sent: %s); media %.3f s", header, before, media)

	pb := checkPlays(t, object, contentType, media)
	t.Logf("Chromium: %+v", pb)
	if pb.Played <= pb.SeekedAt {
		t.Errorf("Chromium did not play on from the middle: seeked to %.3f s, currentTime then %.3f s", pb.SeekedAt, pb.Played)
	}
	if pb.Ranges == 0 {
		t.Error("Chromium made no range request")
	}
}

// checkObjectChecksum checks that the recording reports the checksum that
// head-object --checksum-mode ENABLED returns, the CRC of the object.
func checkObjectChecksum(tb testing.TB, e *Env, rec map[string]any, object []byte) {
	tb.Helper()
	got, _ := rec["checksum"].(string)
	if head := headChecksum(tb, e.S3, e.Key, e.Bucket, rec["objectKey"].(string)); head == "" || head != got {
		tb.Errorf("head-object --checksum-mode ENABLED says %q; the recording reports %q", head, got)
	}
	checkCRC(tb, got, object)
}

// liveMatroska returns about 12 MiB of Matroska as a live recorder writes
// it: ffmpeg writing to a pipe cannot go back, so it has no duration and no
// Cues.
func liveMatroska(t *testing.T) []byte {
	t.Helper()
	var args []string
	for _, a := range liveArgs("matroska") {
		switch {
		case a == "-re":
			continue // as fast as it encodes
		case strings.HasPrefix(a, "testsrc2=") || strings.HasPrefix(a, "sine="):
			a += ":duration=16" // the source ends; ffmpeg is not told the length
		}
		args = append(args, a)
	}
	out, err := exec.Command(requireTool(t, "ffmpeg"), append(args, "pipe:1")...).Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	if header, _ := probeFormatDuration(t, out, "mkv"); header != "N/A" {
		t.Fatalf("the live stream already has a duration: %s", header)
	}
	return out
}

// TestRecording_SIGKILLWhileFirstPartHeld: recsink is killed with SIGKILL
// while part 1 of a live Matroska recording is held back in the spool and
// part 2 is already in the bucket. After the restart the recorder resumes
// at the durable offset, the index resumes from its checkpoint, and the
// stop finalizes the object: ffprobe and Chromium report its duration.
func TestRecording_SIGKILLWhileFirstPartHeld(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("encodes 16 s of media")
	}
	media := liveMatroska(t)
	if len(media) < 11*mib {
		t.Fatalf("ffmpeg made only %d bytes; want over 11 MiB", len(media))
	}
	data := t.TempDir()
	e, p := mustProcessEnv(t, data)
	s3, org, bucket := e.S3, e.Org, e.Bucket
	rec := MustStartRecording(t, org, e.MustMeeting(t, org))

	rec.MustPut(t, media[:11*mib]) // parts 1 and 2 complete
	waitUploaded(t, org, rec.ID, 5*mib)
	if got := s3.ListObjects(t, bucket, ""); len(got) != 0 {
		t.Fatalf("objects before the stop: %v", got)
	}
	p.Kill()

	p = MustStartProcess(t, s3, data)
	e.Main.url = p.URL()
	rec = ingestVia(rec, p)
	offset := rec.Offset(t)
	if offset != 11*mib {
		t.Fatalf("offset after SIGKILL %d, want %d", offset, 11*mib)
	}
	rec.MustPut(t, media[offset:])
	org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	object := s3.GetObject(t, bucket, rec.ObjectKey)
	sum := sha256.Sum256(media)
	if out["sha256"] != hex.EncodeToString(sum[:]) || out["sizeBytes"] != float64(len(object)) {
		t.Errorf("recording sha256 %v size %v; want %x and the object's %d bytes", out["sha256"], out["sizeBytes"], sum, len(object))
	}
	if !bytes.Contains(object, media[5*mib:]) {
		t.Error("the object does not hold the recorder's bytes after part 1 unchanged")
	}
	checkObjectChecksum(t, e, out, object)
	header, dur := checkHeaderDuration(t, object, "mkv")
	pb := checkPlays(t, object, "video/x-matroska", dur)
	t.Logf("killed with part 1 held and part 2 in the bucket; finalized after the restart: ffprobe %s s (media %.3f s), Chromium %+v", header, dur, pb)
}

// TestRecording_ContainerMismatch: WebM sent to a destination whose file
// format is mp4 is refused at its first bytes with 415, naming the
// container found and the file format; nothing is kept.
func TestRecording_ContainerMismatch(t *testing.T) {
	t.Parallel()
	webm, err := os.ReadFile("../../media/testdata/live.webm")
	if err != nil {
		t.Fatal(err)
	}
	e, meeting := mustFormatEnv(t, recsink.FormatMP4)
	rec := MustStartRecording(t, e.Org, meeting)
	req, _ := http.NewRequest("PUT", rec.IngestURL, bytes.NewReader(webm))
	req.Header.Set("Authorization", "Bearer "+rec.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || !bytes.Contains(body, []byte("webm")) || !bytes.Contains(body, []byte(`\"mp4\"`)) {
		t.Errorf("WebM into fileFormat mp4: %d %s; want 415 naming webm and mp4", resp.StatusCode, body)
	}
	if off := resp.Header.Get("Upload-Offset"); off != "0" || rec.Offset(t) != 0 {
		t.Errorf("Upload-Offset %q, HEAD %d; want 0: nothing kept", off, rec.Offset(t))
	}
	t.Logf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
}

// TestRecording_FinalizeOnPartBoundary: a Matroska stream that stops
// exactly at the end of part 2, cut inside a cluster, after part 2 is in
// the bucket: the tail goes up as a part of its own (the last part may be
// small, part 2 is full size), and the object plays with its duration.
func TestRecording_FinalizeOnPartBoundary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("encodes 16 s of media")
	}
	media := liveMatroska(t)[:10*mib]
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	rec.MustPut(t, media)
	waitUploaded(t, e.Org, rec.ID, 5*mib)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	object := e.S3.GetObject(t, e.Bucket, rec.ObjectKey)
	if !bytes.Contains(object, media[5*mib:]) || out["sizeBytes"] != float64(len(object)) || out["bytesReceived"] != float64(len(media)) {
		t.Errorf("object of %d bytes, recording %v %v; want part 2 unchanged, the object's size and %d bytes received", len(object), out["sizeBytes"], out["bytesReceived"], len(media))
	}
	checkObjectChecksum(t, e, out, object)
	header, dur := checkHeaderDuration(t, object, "mkv")
	t.Logf("stream of exactly two parts, cut mid-cluster: object %d bytes (%d more), ffprobe %s s, media %.3f s", len(object), len(object)-len(media), header, dur)
}

// eventGap returns the time between the recording's first events of types
// from and to, as the server recorded them.
func eventGap(t *testing.T, rec map[string]any, from, to string) time.Duration {
	t.Helper()
	var a, b time.Time
	evs, _ := rec["events"].([]any)
	for _, ev := range evs {
		m, _ := ev.(map[string]any)
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"]))
		switch {
		case m["type"] == from && a.IsZero():
			a = at
		case m["type"] == to && b.IsZero():
			b = at
		}
	}
	if a.IsZero() || b.IsZero() {
		t.Logf("events %s and %s not both found in %v", from, to, evs)
		return 0
	}
	return b.Sub(a).Round(time.Millisecond)
}
