package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
)

// dropProxy forwards TCP connections to a server and cuts the first one
// that carries more than dropAfter bytes from the client: both sides are
// closed mid-stream, as when a network fails.
type dropProxy struct {
	URL       string
	target    string
	dropAfter int64
	dropped   atomic.Bool
	ln        net.Listener

	mu    sync.Mutex
	conns []net.Conn
}

// startDropProxy starts a dropProxy in front of the server at baseURL.
func startDropProxy(tb testing.TB, baseURL string, dropAfter int64) *dropProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &dropProxy{URL: "http://" + ln.Addr().String(), target: strings.TrimPrefix(baseURL, "http://"), dropAfter: dropAfter, ln: ln}
	go p.serve()
	tb.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *dropProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go func() {
			io.Copy(client, server)
			client.Close()
		}()
		go p.forward(client, server)
	}
}

// forward copies the client's bytes to the server, cutting the connection
// once when it crosses dropAfter.
func (p *dropProxy) forward(client, server net.Conn) {
	defer server.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, err := client.Read(buf)
		if m > 0 {
			if n+int64(m) > p.dropAfter && p.dropped.CompareAndSwap(false, true) {
				server.Write(buf[:p.dropAfter-n])
				client.Close()
				return
			}
			if _, werr := server.Write(buf[:m]); werr != nil {
				return
			}
			n += int64(m)
		}
		if err != nil {
			return
		}
	}
}

// outputField returns the value of the "name: value" line of the output of
// recsink record.
func outputField(tb testing.TB, out, name string) string {
	tb.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	tb.Fatalf("no %q in the output:\n%s", name, out)
	return ""
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkRecordOutput checks what recsink record printed against the bytes
// sent and the object in the bucket, and returns the object key.
func checkRecordOutput(tb testing.TB, e *Env, stdout string, sent []byte) string {
	tb.Helper()
	key := outputField(tb, stdout, "object key")
	if b := outputField(tb, stdout, "bucket"); b != e.Bucket {
		tb.Errorf("bucket %q, want %q", b, e.Bucket)
	}
	if sum := outputField(tb, stdout, "sha256"); sum != sha256Hex(sent) {
		tb.Errorf("printed sha256 %s, want %s", sum, sha256Hex(sent))
	}
	object := e.S3.GetObject(tb, e.Bucket, key)
	if size := outputField(tb, stdout, "size"); size != strconv.Itoa(len(object)) {
		tb.Errorf("printed size %s, the object has %d bytes", size, len(object))
	}
	checkStored(tb, object, sent)
	return key
}

// checkStored checks the object against the bytes sent: the same bytes, or,
// for a live Matroska, WebM or MP4 stream that recsink finalized, those
// bytes completed (a header of the same length or a few bytes longer, the
// rest unchanged, an index after them) with a duration ffprobe reads.
func checkStored(tb testing.TB, object, sent []byte) {
	tb.Helper()
	if bytes.Equal(object, sent) {
		return
	}
	n := min(len(sent), 5<<20)
	if len(object) <= len(sent) || !bytes.Contains(object, sent[n:]) {
		tb.Fatalf("object of %d bytes is neither the %d bytes sent nor them finalized", len(object), len(sent))
	}
	path := filepath.Join(tb.TempDir(), "object")
	if err := os.WriteFile(path, object, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(requireTool(tb, "ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if d, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || perr != nil || d <= 0 {
		tb.Fatalf("finalized object: ffprobe format=duration %q (%v)", out, err)
	}
}

// TestRecord_FFmpegDroppedConnection pipes ffmpeg's live Matroska output
// into recsink record through a proxy that cuts the connection midway: the
// command resumes by itself, and the object is byte-identical to what
// ffmpeg wrote.
func TestRecord_FFmpegDroppedConnection(t *testing.T) {
	t.Parallel()
	ffmpeg := requireTool(t, "ffmpeg")
	e, meeting := mustRecordingEnv(t)
	proxy := startDropProxy(t, e.Main.URL(), 300_000)

	cmd := exec.Command(ffmpeg, append(append([]string{}, ffmpegArgs...), "pipe:1")...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tap bytes.Buffer // what recsink record read, written by its reader
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = main.RunRecord(ctx, []string{"--url", proxy.URL, "--api-key", e.Org.Key, "--meeting", meeting},
		io.TeeReader(pipe, &tap), &stdout, stderr, 1<<20)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("recsink record: %v\nstderr:\n%s", err, stderr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	t.Logf("stderr:\n%s", stderr)
	if !proxy.dropped.Load() {
		t.Fatal("the proxy never cut a connection: the stream was too short")
	}
	mustContain(t, stderr.String(), "resuming at")
	if tap.Len() < 300_000 {
		t.Fatalf("ffmpeg wrote only %d bytes", tap.Len())
	}
	checkRecordOutput(t, e, stdout.String(), tap.Bytes())
	checkMedia(t, tap.Bytes())
}

// TestRecord_File records a file given by name, in several PATCH requests.
func TestRecord_File(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	data := randomBytes(t, 5*mib+123)
	path := filepath.Join(t.TempDir(), "meeting.mkv")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	// Flags after the file work too.
	err := main.RunRecord(context.Background(), []string{"--url", e.Main.URL(), "--meeting", meeting, path, "--api-key", e.Org.Key},
		strings.NewReader("not this"), &stdout, stderr, 1<<20)
	if err != nil {
		t.Fatalf("recsink record: %v\nstderr:\n%s", err, stderr)
	}
	checkRecordOutput(t, e, stdout.String(), data)
}

// slowReader delivers r in small reads with a pause before each, like a
// live source.
type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause) // the pace of a live source
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// TestRecord_Interrupt: Ctrl-C midway through the input stops the
// recording cleanly: what was read is sent, the recording stopped and its
// object completed with exactly those bytes.
func TestRecord_Interrupt(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	data := randomBytes(t, 64*mib)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- main.RunRecord(ctx, []string{"--url", e.Main.URL(), "--api-key", e.Org.Key, "--meeting", meeting},
			&slowReader{r: bytes.NewReader(data), pause: time.Millisecond}, &stdout, stderr, 1<<20)
	}()

	// Interrupt once recsink holds 3 MiB.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("recsink did not receive 3 MiB within 30 s; stderr:\n%s", stderr)
		}
		if out := e.Org.MustDo(t, 200, "GET", "/v1/recordings", nil); len(out["results"].([]any)) == 1 {
			if rec := out["results"].([]any)[0].(map[string]any); rec["bytesReceived"].(float64) >= 3*mib {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	cancel()

	var err error
	select {
	case err = <-errc:
	case <-time.After(60 * time.Second):
		t.Fatalf("recsink record did not return 60 s after the interrupt; stderr:\n%s", stderr)
	}
	if err != nil {
		t.Fatalf("recsink record: %v\nstderr:\n%s", err, stderr)
	}
	mustContain(t, stderr.String(), "interrupted")
	size, _ := strconv.Atoi(outputField(t, stdout.String(), "size"))
	if size < 3*mib || size >= len(data) {
		t.Fatalf("object of %d bytes after an interrupt at 3 MiB of %d", size, len(data))
	}
	key := checkRecordOutput(t, e, stdout.String(), data[:size])
	t.Logf("interrupted after %d bytes; object %s", size, key)
	rec := e.Org.MustDo(t, 200, "GET", "/v1/recordings", nil)["results"].([]any)[0].(map[string]any)
	if rec["state"] != recsink.RecordingUploaded || rec["stopReason"] != recsink.StopRequested {
		t.Fatalf("recording %v", rec)
	}
}

func TestRecord_Usage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"ErrNoMeeting", []string{"--api-key", "k"}, "usage: recsink record"},
		{"ErrTwoFiles", []string{"--api-key", "k", "--meeting", "m", "a", "b"}, "usage: recsink record"},
		{"ErrNoAPIKey", []string{"--meeting", "m", "--api-key", ""}, "API key is required"},
		{"ErrURL", []string{"--meeting", "m", "--api-key", "k", "--url", "localhost:8080"}, "--url must be"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := main.RunRecord(context.Background(), tt.args, strings.NewReader(""), io.Discard, io.Discard, 1<<20)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCredentials_Rotate: after key B replaces key A, recsink credentials
// shows A draining with the recording that holds it, and recsink rotate
// --wait returns once that recording has finished.
func TestCredentials_Rotate(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting) // holds key A
	keyB := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Key, e.Key.ID, keyB.ID)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", keyB))
	flags := []string{"--url", e.Main.URL(), "--api-key", e.Org.Key}

	var stdout, stderr bytes.Buffer
	if err := main.RunCredentials(context.Background(), flags, &stdout, &stderr); err != nil {
		t.Fatalf("recsink credentials: %v\n%s", err, stderr.String())
	}
	t.Logf("recsink credentials:\n%s", stdout.String())
	lineOf := func(out, keyID string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, keyID) {
				return l
			}
		}
		t.Fatalf("no line for key %s:\n%s", keyID, out)
		return ""
	}
	mustContain(t, stdout.String(), "SAFE TO DELETE")
	a := lineOf(stdout.String(), e.Key.ID)
	for _, want := range []string{"organization", "draining", "1 (" + rec.ID + ")", "after 20"} {
		mustContain(t, a, want)
	}
	b := lineOf(stdout.String(), keyB.ID)
	for _, want := range []string{"organization", "current", " 0 ", "no: in use"} {
		mustContain(t, b, want)
	}

	// rotate --wait waits while the recording holds A, and returns once
	// it has stopped and its object is complete.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rotOut bytes.Buffer
	rotErr := &syncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- main.RunRotate(ctx, append([]string{"--wait", "--key-id", e.Key.ID}, flags...), &rotOut, rotErr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(rotErr.String(), "waiting: "+e.Key.ID+" held by 1 ("+rec.ID+")") {
		if time.Now().After(deadline) {
			t.Fatalf("recsink rotate shows no progress; stderr:\n%s", rotErr)
		}
		select {
		case err := <-errc:
			t.Fatalf("recsink rotate returned before the recording stopped: %v\n%s", err, rotErr)
		case <-time.After(20 * time.Millisecond): // polling a condition under a deadline
		}
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	if err := <-errc; err != nil {
		t.Fatalf("recsink rotate: %v\n%s", err, rotErr)
	}
	t.Logf("recsink rotate:\n%s%s", rotErr, rotOut.String())
	mustContain(t, rotOut.String(), "key "+e.Key.ID+" is drained: safe to delete now")
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)

	// Waiting for the current key, or with no replaced key, is an error.
	err := main.RunRotate(context.Background(), append([]string{"--wait", "--key-id", keyB.ID}, flags...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is the current key") {
		t.Fatalf("rotate --key-id of the current key: %v", err)
	}
	err = main.RunRotate(context.Background(), append([]string{"--wait", "--scope", meeting}, flags...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no replaced key") {
		t.Fatalf("rotate --scope of a room without keys: %v", err)
	}

	// A canceled wait is an error that says what is not drained.
	rec2 := MustStartRecording(t, e.Org, meeting) // holds key B
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	err = main.RunRotate(ctx2, append([]string{"--wait"}, flags...), io.Discard, io.Discard)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), keyB.ID) {
		t.Fatalf("canceled rotate --wait: %v", err)
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec2.ID+"/stop", nil)
}
