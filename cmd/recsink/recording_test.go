package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/recsink/recsink"

	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/mediatest"
	"github.com/recsink/recsink/internal/s3test"
)

const mib = 1 << 20

func randomBytes(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// mustRecordingEnv is an Env with the organization's storage saved and a
// meeting to record.
func mustRecordingEnv(tb testing.TB, opts ...func(*main.Config)) (*Env, string) {
	tb.Helper()
	e := MustEnv(tb, opts...)
	e.Org.MustDo(tb, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
	return e, e.MustMeeting(tb, e.Org)
}

// requireTool skips when a tool is absent, unless CI requires it.
func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	return mediatest.MustTool(tb, name)
}

// ffmpegArgs make 20 s of test video and audio in Matroska.
var ffmpegArgs = []string{"-hide_banner", "-loglevel", "error", "-re",
	"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=20",
	"-f", "lavfi", "-i", "sine=frequency=440:duration=20",
	"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50",
	"-c:a", "aac", "-f", "matroska"}

// ffprobe returns the duration (the last packet's end: a live-streamed
// Matroska has no duration in its header) and the stream types of a file.
func ffprobe(tb testing.TB, data []byte) (float64, []string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "probe.mkv")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(requireTool(tb, "ffprobe"), "-v", "error", "-print_format", "json",
		"-show_streams", "-show_entries", "packet=pts_time,duration_time", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe: %v", err)
	}
	var probe struct {
		Packets []struct {
			PTS      string `json:"pts_time"`
			Duration string `json:"duration_time"`
		} `json:"packets"`
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		tb.Fatal(err)
	}
	var end float64
	for _, p := range probe.Packets {
		pts, _ := strconv.ParseFloat(p.PTS, 64)
		d, _ := strconv.ParseFloat(p.Duration, 64)
		end = max(end, pts+d)
	}
	var types []string
	for _, s := range probe.Streams {
		types = append(types, s.CodecType)
	}
	return end, types
}

func checkMedia(tb testing.TB, data []byte) {
	tb.Helper()
	d, types := ffprobe(tb, data)
	if d < 19 || d > 21.5 {
		tb.Errorf("ffprobe duration %.2f s, want about 20", d)
	}
	if len(types) != 2 || !(types[0] == "video" && types[1] == "audio" || types[0] == "audio" && types[1] == "video") {
		tb.Errorf("ffprobe streams %v, want a video and an audio stream", types)
	}
	tb.Logf("ffprobe: %.2f s, streams %v", d, types)
}

// TestRecording_FFmpegPut streams real media from ffmpeg -method PUT through
// a tap that keeps a copy of what ffmpeg sent.
func TestRecording_FFmpegPut(t *testing.T) {
	t.Parallel()
	ffmpeg := requireTool(t, "ffmpeg")
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)

	var mu sync.Mutex
	var sent bytes.Buffer
	tap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := io.TeeReader(r.Body, writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return sent.Write(p)
		}))
		resp := rec.Put(t, body)
		w.WriteHeader(resp.StatusCode)
	}))
	defer tap.Close()

	cmd := exec.Command(ffmpeg, append(append([]string{}, ffmpegArgs...), "-method", "PUT", tap.URL+"/ingest")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)

	mu.Lock()
	want := sent.Bytes()
	mu.Unlock()
	if len(want) < 100_000 {
		t.Fatalf("ffmpeg sent only %d bytes", len(want))
	}
	// Matroska is finalized (a duration and Cues): the object is the
	// stream completed, the recording's SHA-256 is of what ffmpeg sent.
	object := e.S3.GetObject(t, e.Bucket, rec.ObjectKey)
	sum := sha256.Sum256(want)
	if out["sha256"] != hex.EncodeToString(sum[:]) || out["bytesReceived"] != float64(len(want)) || out["sizeBytes"] != float64(len(object)) {
		t.Errorf("recording sha256 %v received %v size %v, want %x %d %d", out["sha256"], out["bytesReceived"], out["sizeBytes"], sum, len(want), len(object))
	}
	checkMedia(t, object)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// failingReader delivers n bytes of r, then fails: the connection drops.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection dropped")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestRecording_FFmpegResumable streams ffmpeg's output live with tus PATCH
// requests, drops the connection halfway, asks the offset and goes on.
func TestRecording_FFmpegResumable(t *testing.T) {
	t.Parallel()
	ffmpeg := requireTool(t, "ffmpeg")
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)

	cmd := exec.Command(ffmpeg, append(append([]string{}, ffmpegArgs...), "pipe:1")...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sent []byte
	var offset int64
	dropped := false
	buf := make([]byte, 256<<10)
	for {
		n, err := io.ReadAtLeast(stdout, buf, 64<<10)
		sent = append(sent, buf[:n]...)
		if n > 0 {
			if !dropped && len(sent) > 400_000 {
				// Drop the connection halfway through this request's body.
				dropped = true
				half := (int64(len(sent)) - offset) / 2
				rec.Patchf(t, offset, &failingReader{r: bytes.NewReader(sent[offset:]), n: int(half)})
				offset = rec.Offset(t)
				t.Logf("connection dropped after %d bytes of a PATCH; the server holds %d durable bytes", half, offset)
			}
			for attempt := 0; ; attempt++ {
				resp := rec.Patch(t, offset, bytes.NewReader(sent[offset:]))
				if resp.StatusCode == 409 && attempt < 3 {
					// The server was still finishing the dropped request: ask again.
					offset = rec.Offset(t)
					continue
				}
				if resp.StatusCode != 204 {
					t.Fatalf("PATCH at %d: status %d", offset, resp.StatusCode)
				}
				offset, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
				break
			}
			if offset != int64(len(sent)) {
				t.Fatalf("Upload-Offset %d after sending up to %d", offset, len(sent))
			}
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !dropped {
		t.Fatal("the stream was too short to drop a connection")
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	object := e.S3.GetObject(t, e.Bucket, rec.ObjectKey)
	checkStored(t, object, sent)
	checkMedia(t, object)
}

// Patchf sends a PATCH whose body fails midway; the error is expected.
func (s Started) Patchf(tb testing.TB, offset int64, body io.Reader) {
	req, _ := http.NewRequest("PATCH", s.IngestURL, body)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// TestRecording_UploadsWhileRecording: parts reach the bucket while the
// recording runs, and the stop only sends the tail; the object is
// byte-identical and the recording reports the checksum that S3 reports for
// it. On versitygw and SeaweedFS.
func TestRecording_UploadsWhileRecording(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting := mustS3RecordingEnv(t, srv)
		rec := MustStartRecording(t, e.Org, meeting)
		data := randomBytes(t, 23*mib+12345)
		rec.MustPut(t, data[:12*mib])
		waitUploaded(t, e.Org, rec.ID, 10*mib)
		rec.MustPut(t, data[12*mib:])
		if got := rec.Offset(t); got != int64(len(data)) {
			t.Fatalf("offset %d, want %d", got, len(data))
		}
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
		checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
		sum := sha256.Sum256(data)
		if out["sha256"] != hex.EncodeToString(sum[:]) || out["bytesUploaded"] != float64(len(data)) {
			t.Fatalf("recording: %v", out)
		}
		// The checksum is S3's own (head-object --checksum-mode ENABLED),
		// not metadata added by a copy.
		got, _ := out["checksum"].(string)
		if head := headChecksum(t, e.S3, e.Key, e.Bucket, rec.ObjectKey); head == "" || head != got {
			t.Errorf("head-object --checksum-mode ENABLED on %s says %q; the recording reports %q", srv.Name(), head, got)
		}
		checkCRC(t, got, data)
		t.Logf("%s: checksum %s", srv.Name(), got)
		mustContain(t, rec.ObjectKey, "recordings/standup-")
		head, err := e.S3.S3Client(t, e.Key).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.Bucket, Key: &rec.ObjectKey})
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata["recording-id"] != rec.ID || aws.ToString(head.ContentType) != "video/x-matroska" {
			t.Fatalf("object metadata %v, content type %v", head.Metadata, aws.ToString(head.ContentType))
		}
		// A stopped recording takes no more media.
		if resp := rec.Put(t, bytes.NewReader([]byte("late"))); resp.StatusCode != 409 {
			t.Fatalf("PUT after stop: %d, want 409", resp.StatusCode)
		}
		// Another organization cannot see it.
		other := e.Main.MustCreateOrg(t)
		other.MustDo(t, 404, "GET", "/v1/recordings/"+rec.ID, nil)
		other.MustDo(t, 404, "DELETE", "/v1/recordings/"+rec.ID, nil)
		// Delete removes the object, idempotently.
		e.Org.MustDo(t, 204, "DELETE", "/v1/recordings/"+rec.ID, nil)
		e.Org.MustDo(t, 204, "DELETE", "/v1/recordings/"+rec.ID, nil)
		if objs := e.S3.ListObjects(t, e.Bucket, "recordings/"); len(objs) != 0 {
			t.Fatalf("objects after delete: %v", objs)
		}
	})
}

// waitUploaded waits until at least n bytes are confirmed in the bucket.
func waitUploaded(tb testing.TB, c *Client, id string, n int64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out := c.MustDo(tb, 200, "GET", "/v1/recordings/"+id, nil)
		if out["bytesUploaded"].(float64) >= float64(n) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	tb.Fatalf("recording %s: fewer than %d bytes uploaded after 30 s", id, n)
}

// TestRecording_Empty: a recording stopped before any media is an empty
// object. On versitygw and SeaweedFS.
func TestRecording_Empty(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting := mustS3RecordingEnv(t, srv)
		rec := MustStartRecording(t, e.Org, meeting)
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
		if out["sizeBytes"] != float64(0) {
			t.Fatalf("sizeBytes %v", out["sizeBytes"])
		}
		checkObject(t, e.S3, e.Bucket, rec.ObjectKey, nil)
	})
}

func TestRecording_NoDestination(t *testing.T) {
	t.Parallel()
	e := MustEnv(t)
	m := e.MustMeeting(t, e.Org)
	status, out := e.Org.Do(t, "POST", "/v1/meetings/"+m+"/recordings", nil)
	if status != 422 {
		t.Fatalf("status %d: %v", status, out)
	}
	mustContain(t, out["error"].(string), "no storage destination")
}

func TestRecording_MaxDuration(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.MaxDuration = 2 * time.Second })
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 1*mib)
	rec.MustPut(t, data)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	if out["stopReason"] != recsink.StopMaxDuration {
		t.Fatalf("stopReason %v", out["stopReason"])
	}
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
}

// TestRecording_S3Down: S3 stops mid-recording; media keeps arriving into
// the spool; it catches up when S3 is back. On versitygw only: on a
// SeaweedFS of its own (the shared one is never stopped) it passed too but
// took 26–43 s against 2–4 s (its own start, 4–10 s; a stop, 1.5 s; a start
// again, 4–10 s; then recsink's upload backoff, grown during the longer
// outage, 10–12 s before it caught up), and TestRole_Revoked already
// restarts a SeaweedFS twice under a running upload. onEachS3Stoppable(t,
// testS3Down) runs it on both.
func TestRecording_S3Down(t *testing.T) {
	t.Parallel()
	testS3Down(t, s3test.MustStart(t))
}

func testS3Down(t *testing.T, srv s3test.Backend) {
	e, meeting := mustS3RecordingEnv(t, srv)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 21*mib)
	rec.MustPut(t, data[:6*mib])
	waitUploaded(t, e.Org, rec.ID, 5*mib)
	began := time.Now()
	e.S3.Stop(t)
	stopped := time.Since(began)
	rec.MustPut(t, data[6*mib:18*mib])
	began = time.Now()
	e.S3.Start(t)
	t.Logf("%s stopped in %v, started again in %v", srv.Name(), stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	began = time.Now()
	rec.MustPut(t, data[18*mib:])
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	t.Logf("%s: uploaded %v after S3 was back", srv.Name(), time.Since(began).Round(time.Millisecond))
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
}

// TestRecording_SpoolFull: with S3 down and the spool full, ingest answers
// 503 with Retry-After and the offset; nothing is dropped.
func TestRecording_SpoolFull(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.SpoolLimit = 12 * mib })
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 20*mib)
	e.S3.Stop(t)
	resp := rec.Put(t, bytes.NewReader(data))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("PUT over the spool limit: status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	offset := rec.Offset(t)
	if offset > 12*mib || offset < 10*mib {
		t.Fatalf("offset %d after a full spool of 12 MiB", offset)
	}
	e.S3.Start(t)
	deadline := time.Now().Add(60 * time.Second)
	for offset < int64(len(data)) {
		if time.Now().After(deadline) {
			t.Fatalf("stuck at offset %d", offset)
		}
		resp := rec.Patch(t, offset, bytes.NewReader(data[offset:]))
		if resp.StatusCode != 204 && resp.StatusCode != 503 {
			t.Fatalf("PATCH at %d: %d", offset, resp.StatusCode)
		}
		offset, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if resp.StatusCode == 503 {
			time.Sleep(100 * time.Millisecond) // the recorder's retry pause
		}
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
}

// TestRecording_Restart: a graceful restart mid-recording keeps the ingest
// token, the offset and every byte. On versitygw and SeaweedFS.
func TestRecording_Restart(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting := mustS3RecordingEnv(t, srv)
		rec := MustStartRecording(t, e.Org, meeting)
		data := randomBytes(t, 13*mib)
		rec.MustPut(t, data[:8*mib])
		e.Main.Restart(t)
		rec.IngestURL = e.Main.URL() + "/v1/recordings/" + rec.ID + "/ingest"
		if got := rec.Offset(t); got != 8*mib {
			t.Fatalf("offset after restart %d, want %d", got, 8*mib)
		}
		rec.MustPut(t, data[8*mib:])
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
		checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	})
}

var _ = context.Background

// TestRecording_StopWhileStalled: a recorder stalls mid-body; the stop does
// not wait for it: the object holds what was acknowledged, and the stalled
// request is told the rest was not taken.
func TestRecording_StopWhileStalled(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 3*mib)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		resp := rec.Put(t, pr)
		done <- resp.StatusCode
	}()
	if _, err := pw.Write(data); err != nil {
		t.Fatal(err)
	}
	// The spool syncs a quiet body within 250 ms; wait until HEAD shows it.
	deadline := time.Now().Add(10 * time.Second)
	for rec.Offset(t) < int64(len(data)) {
		if time.Now().After(deadline) {
			t.Fatalf("offset %d, want %d", rec.Offset(t), len(data))
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	pw.Write([]byte("late bytes the recording no longer takes"))
	pw.Close()
	select {
	case status := <-done:
		if status != 409 {
			t.Fatalf("the stalled PUT ended with %d, want 409", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled PUT did not end")
	}
}
