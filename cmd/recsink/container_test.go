package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3spy"
	"github.com/recsink/recsink/internal/s3test"
)

// headContentType returns the Content-Type srv answers HeadObject with.
func headContentType(tb testing.TB, srv s3test.Backend, key recsink.AccessKey, bucket, object string) string {
	tb.Helper()
	out, err := srv.S3Client(tb, key).HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(object)})
	if err != nil {
		tb.Fatalf("head-object %s: %v", object, err)
	}
	return aws.ToString(out.ContentType)
}

// liveMedia returns seconds of live media of format ("matroska", "webm",
// "fmp4") as a live recorder writes it to a pipe, encoded as fast as
// ffmpeg can: no duration, no index.
func liveMedia(t *testing.T, format string, seconds int) []byte {
	t.Helper()
	var args []string
	for _, a := range liveArgs(format) {
		switch {
		case a == "-re":
			continue
		case strings.HasPrefix(a, "testsrc2=") || strings.HasPrefix(a, "sine="):
			a += ":duration=" + strconv.Itoa(seconds)
		}
		args = append(args, a)
	}
	out, err := exec.Command(requireTool(t, "ffmpeg"), append(args, "pipe:1")...).Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v", format, err)
	}
	return out
}

// TestRecording_ContainerRefused: a container the destination's fileFormat
// does not take is refused at its first bytes with 415, naming what was
// found and the file format; nothing is kept and the object keeps its name.
// (WebM into mp4: TestRecording_ContainerMismatch.)
func TestRecording_ContainerRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, format, fileFormat, found string
	}{
		{"FMP4IntoMKV", "fmp4", recsink.FormatMKV, "video/mp4"},
		{"MatroskaIntoMP4", "matroska", recsink.FormatMP4, "video/x-matroska"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			media := liveMedia(t, tc.format, 1)
			e, meeting := mustFormatEnv(t, tc.fileFormat)
			rec := MustStartRecording(t, e.Org, meeting)
			req, _ := http.NewRequest("PUT", rec.IngestURL, bytes.NewReader(media))
			req.Header.Set("Authorization", "Bearer "+rec.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnsupportedMediaType || !bytes.Contains(body, []byte(tc.found)) || !bytes.Contains(body, []byte(`\"`+tc.fileFormat+`\"`)) {
				t.Errorf("%s into fileFormat %s: %d %s; want 415 naming %s and %q", tc.format, tc.fileFormat, resp.StatusCode, body, tc.found, tc.fileFormat)
			}
			if off := resp.Header.Get("Upload-Offset"); off != "0" || rec.Offset(t) != 0 {
				t.Errorf("Upload-Offset %q, HEAD %d; want 0: nothing kept", off, rec.Offset(t))
			}
			if got := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil); got["objectKey"] != rec.ObjectKey {
				t.Errorf("objectKey %v after a refused container; want %s", got["objectKey"], rec.ObjectKey)
			}
			t.Logf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		})
	}
}

// TestRecording_SIGKILLBeforeWebMUpload: a live WebM recording into a room
// whose fileFormat is mkv. recsink is killed with SIGKILL while it creates
// the .webm upload for the first bytes (the proxy in front of versitygw
// holds that request), then again after 6 MiB were acknowledged under the
// new name. After each restart the recorder resumes at the durable offset
// (0, then 6 MiB), and the stop finalizes one object, <base>.webm with
// Content-Type video/webm, that ffprobe and Chromium play with its
// duration: nothing acknowledged is lost, no .mkv is left behind.
func TestRecording_SIGKILLBeforeWebMUpload(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("encodes 16 s of media")
	}
	media := liveMedia(t, "webm", 16)
	if len(media) < 7*mib {
		t.Fatalf("ffmpeg made only %d bytes of WebM; want over 7 MiB", len(media))
	}
	s3 := s3test.MustStart(t)
	spy := s3spy.MustStart(t, s3.Endpoint)
	key := s3.CreateUser(t, "user")
	bucket := s3.CreateBucket(t, key.ID)
	data := t.TempDir()
	apiKey := mustOrgCreate(t, "--data", data)
	args := []string{"--allow-endpoint", spy.HostPort}
	p := MustStartProcess(t, s3, data, args...)
	m := &TestMain{S3: s3}
	org := &Client{m: m, Key: apiKey}
	m.url = p.URL()
	e := &Env{S3: s3, Main: m, Org: org, Key: key, Bucket: bucket}
	storage := e.Storage(bucket, key)
	storage["endpoint"] = spy.Endpoint
	storage["fileFormat"] = recsink.FormatMKV
	org.MustDo(t, 200, "PUT", "/v1/storage", storage)
	rec := MustStartRecording(t, org, e.MustMeeting(t, org))
	if !strings.HasSuffix(rec.ObjectKey, ".mkv") {
		t.Fatalf("provisional key %s; want .mkv", rec.ObjectKey)
	}
	webmKey := strings.TrimSuffix(rec.ObjectKey, ".mkv") + ".webm"
	restart := func() {
		p = MustStartProcess(t, s3, data, args...)
		m.url = p.URL()
		rec.IngestURL = p.URL() + "/v1/recordings/" + rec.ID + "/ingest"
	}

	// 1. Killed while the first bytes wait for their upload.
	hold := spy.Hold(func(r s3spy.Request) bool { return r.Op == "CreateMultipartUpload" && path.Ext(r.Key) == ".webm" })
	go func() {
		req, _ := http.NewRequest("PUT", rec.IngestURL, io.NopCloser(bytes.NewReader(media[:6*mib])))
		req.Header.Set("Authorization", "Bearer "+rec.Token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	hold.WaitCaught(t, 1, 20*time.Second)
	p.Kill()
	hold.Release() // S3 creates it for a client that is gone: an empty upload no one names
	restart()
	if off := rec.Offset(t); off != 0 {
		t.Fatalf("offset after a SIGKILL before the upload was created: %d, want 0 (nothing acknowledged)", off)
	}
	if got := org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil); got["objectKey"] != rec.ObjectKey {
		t.Errorf("objectKey before the first bytes were kept: %v, want the provisional %s", got["objectKey"], rec.ObjectKey)
	}

	// 2. The recorder sends again; killed once 6 MiB are acknowledged.
	rec.MustPut(t, media[:6*mib])
	if got := org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil); got["objectKey"] != webmKey || got["filename"] != path.Base(webmKey) {
		t.Errorf("after the first bytes: objectKey %v filename %v, want %s", got["objectKey"], got["filename"], webmKey)
	}
	p.Kill()
	restart()
	offset := rec.Offset(t)
	if offset != 6*mib {
		t.Fatalf("offset after SIGKILL %d, want %d", offset, 6*mib)
	}
	rec.MustPut(t, media[offset:])
	org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, org, rec.ID, recsink.RecordingUploaded, 60*time.Second)

	if out["objectKey"] != webmKey {
		t.Fatalf("objectKey %v, want %s", out["objectKey"], webmKey)
	}
	if objs := s3.ListObjects(t, bucket, ""); len(objs) != 1 || objs[0] != webmKey {
		t.Errorf("objects in the bucket %v; want only %s", objs, webmKey)
	}
	if ct := headContentType(t, s3, key, bucket, webmKey); ct != "video/webm" {
		t.Errorf("Content-Type %q, want video/webm", ct)
	}
	object := s3.GetObject(t, bucket, webmKey)
	sum := sha256.Sum256(media)
	if out["sha256"] != hex.EncodeToString(sum[:]) || out["bytesReceived"] != float64(len(media)) || out["sizeBytes"] != float64(len(object)) {
		t.Errorf("recording sha256 %v received %v size %v; want %x, %d and the object's %d", out["sha256"], out["bytesReceived"], out["sizeBytes"], sum, len(media), len(object))
	}
	if !bytes.Contains(object, media[5*mib:]) {
		t.Error("the object does not hold the recorder's bytes after part 1 unchanged")
	}
	checkObjectChecksum(t, e, out, object)
	header, dur := checkHeaderDuration(t, object, "webm")
	pb := checkPlays(t, object, "video/webm", dur)
	t.Logf("killed before the .webm upload existed, then with 6 MiB acknowledged: %s, %s, ffprobe %s s (media %.3f s), Chromium %+v",
		webmKey, headContentType(t, s3, key, bucket, webmKey), header, dur, pb)
}

// TestRecording_WebMKeySwitched: a live WebM recording renamed .webm at its
// first bytes switches keys mid-recording (key A deleted in S3, key B
// saved): the parts after the switch go to the .webm upload with B, and
// the object is <base>.webm, video/webm, finalized. recording.started and
// recording.finished both name the final key.
func TestRecording_WebMKeySwitched(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("encodes 20 s of media")
	}
	media := liveMedia(t, "webm", 20)
	if len(media) < 12*mib {
		t.Fatalf("ffmpeg made only %d bytes of WebM; want over 12 MiB", len(media))
	}
	e, meeting, rcv, b, _ := rotationEnv(t, s3test.MustStart(t))
	rec := MustStartRecording(t, e.Org, meeting)
	webmKey := strings.TrimSuffix(rec.ObjectKey, ".mkv") + ".webm"
	rec.MustPut(t, media[:11*mib]) // part 1 held back, part 2 goes up with A
	waitUploaded(t, e.Org, rec.ID, 5*mib)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	e.S3.DeleteUser(t, e.Key.ID)
	rec.MustPut(t, media[11*mib:])
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	if out["objectKey"] != webmKey {
		t.Fatalf("objectKey %v, want %s", out["objectKey"], webmKey)
	}
	if got := out["credential"].(map[string]any)["accessKeyId"]; got != b.ID {
		t.Errorf("recording holds %v after the switch, want %s", got, b.ID)
	}
	findEvent(t, out, recsink.EventCredentialSwitched)
	for _, typ := range []string{recsink.WebhookRecordingStarted, recsink.WebhookRecordingFinished} {
		ev := rcv.WaitEvent(t, typ, forRecording(rec.ID), 20*time.Second)
		if d := ev["data"].(map[string]any); d["objectKey"] != webmKey || d["filename"] != path.Base(webmKey) {
			t.Errorf("%s names %v (%v); want %s", typ, d["objectKey"], d["filename"], webmKey)
		}
	}
	if ct := headContentType(t, e.S3, b, e.Bucket, webmKey); ct != "video/webm" {
		t.Errorf("Content-Type %q, want video/webm", ct)
	}
	if objs := e.S3.ListObjects(t, e.Bucket, ""); len(objs) != 1 || objs[0] != webmKey {
		t.Errorf("objects in the bucket %v; want only %s", objs, webmKey)
	}
	object := e.S3.GetObject(t, e.Bucket, webmKey)
	if !bytes.Contains(object, media[5*mib:]) {
		t.Error("the object does not hold the recorder's bytes after part 1 unchanged")
	}
	header, dur := checkHeaderDuration(t, object, "webm")
	t.Logf("switched from %s to %s mid-recording: %s, ffprobe %s s (media %.3f s)", e.Key.ID, b.ID, webmKey, header, dur)
}
