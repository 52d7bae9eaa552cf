package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestMain is a running recsink on a temp data folder and port 0, with its
// log captured.
type TestMain struct {
	*main.Main
	Logs *syncBuffer
	S3   *s3test.Server
	url  string // set when recsink runs as another process
}

// URL returns the base URL of the running recsink.
func (m *TestMain) URL() string {
	if m.url != "" {
		return m.url
	}
	return m.Main.URL()
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// MustRunMain starts recsink against the S3 server, which it allows as a
// custom endpoint. opts adjust the configuration.
func MustRunMain(tb testing.TB, s3 *s3test.Server, opts ...func(*main.Config)) *TestMain {
	tb.Helper()
	m := &TestMain{Logs: &syncBuffer{}, S3: s3}
	cfg := main.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = tb.TempDir()
	cfg.AllowEndpoints = []string{s3.HostPort}
	cfg.LogLevel = "debug"
	cfg.APIRate = 0 // the rate limit has its own tests; the others call as fast as they like
	for _, o := range opts {
		o(&cfg)
	}
	m.start(tb, cfg)
	tb.Cleanup(func() { m.Close() })
	return m
}

func (m *TestMain) start(tb testing.TB, cfg main.Config) {
	tb.Helper()
	m.Main = main.NewMain()
	m.Config = cfg
	m.Stderr = m.Logs
	if err := m.Run(context.Background()); err != nil {
		tb.Fatalf("run recsink: %v\n%s", err, m.Logs)
	}
}

// Restart closes recsink and starts it again on the same data folder (and a
// new port).
func (m *TestMain) Restart(tb testing.TB) {
	tb.Helper()
	cfg := m.Config
	if err := m.Close(); err != nil {
		tb.Fatal(err)
	}
	m.start(tb, cfg)
}

// MustCreateOrg creates an organization and returns an API client for it.
func (m *TestMain) MustCreateOrg(tb testing.TB) *Client {
	tb.Helper()
	_, key, err := m.Service.CreateOrganization(context.Background(), "org-"+recsink.RandomToken(6))
	if err != nil {
		tb.Fatal(err)
	}
	return &Client{m: m, Key: key}
}

// Client calls the REST API with an organization's API key.
type Client struct {
	m   *TestMain
	Key string
}

// Do sends a JSON request and decodes a JSON answer into a map.
func (c *Client) Do(tb testing.TB, method, path string, body any) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.m.URL()+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			tb.Fatalf("%s %s: %d: not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// MustDo is Do that fails unless the status is want.
func (c *Client) MustDo(tb testing.TB, want int, method, path string, body any) map[string]any {
	tb.Helper()
	status, out := c.Do(tb, method, path, body)
	if status != want {
		tb.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, out)
	}
	return out
}

// Env is one test's world: versitygw, recsink, an organization, a user key
// and a bucket that the key owns.
type Env struct {
	S3     *s3test.Server
	Main   *TestMain
	Org    *Client
	Key    recsink.AccessKey
	Bucket string
}

// MustEnv sets up an Env.
func MustEnv(tb testing.TB, opts ...func(*main.Config)) *Env {
	tb.Helper()
	s3 := s3test.MustStart(tb)
	e := &Env{S3: s3, Main: MustRunMain(tb, s3, opts...)}
	e.Org = e.Main.MustCreateOrg(tb)
	e.Key = s3.CreateUser(tb, "user")
	e.Bucket = s3.CreateBucket(tb, e.Key.ID)
	return e
}

// Storage returns a storage body for PUT /v1/storage.
func (e *Env) Storage(bucket string, key recsink.AccessKey) map[string]any {
	return map[string]any{
		"bucket":          bucket,
		"endpoint":        e.S3.Endpoint,
		"region":          s3test.Region,
		"forcePathStyle":  true,
		"accessKeyId":     key.ID,
		"accessKeySecret": key.Secret,
	}
}

// MustMeeting creates a meeting and returns its ID.
func (e *Env) MustMeeting(tb testing.TB, c *Client) string {
	tb.Helper()
	out := c.MustDo(tb, 201, "POST", "/v1/meetings", map[string]any{
		"endDate":        time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"roomNamePrefix": "standup",
	})
	return out["meetingId"].(string)
}

// Started is a recording as returned by its start.
type Started struct {
	ID, ObjectKey, IngestURL, Token string
}

// MustStartRecording starts a recording in the meeting.
func MustStartRecording(tb testing.TB, c *Client, meetingID string) Started {
	tb.Helper()
	out := c.MustDo(tb, 201, "POST", "/v1/meetings/"+meetingID+"/recordings", nil)
	ingest := out["ingest"].(map[string]any)
	return Started{
		ID:        out["recordingId"].(string),
		ObjectKey: out["objectKey"].(string),
		IngestURL: ingest["url"].(string),
		Token:     ingest["token"].(string),
	}
}

// Put streams r as one chunked PUT, as ffmpeg -method PUT and curl -T - do.
func (s Started) Put(tb testing.TB, r io.Reader) *http.Response {
	tb.Helper()
	req, err := http.NewRequest("PUT", s.IngestURL, io.NopCloser(r)) // NopCloser: unknown length, chunked
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// MustPut is Put that fails unless the answer is 2xx.
func (s Started) MustPut(tb testing.TB, data []byte) {
	tb.Helper()
	if resp := s.Put(tb, bytes.NewReader(data)); resp.StatusCode/100 != 2 {
		tb.Fatalf("PUT ingest: status %d", resp.StatusCode)
	}
}

// Offset asks the durable offset with a tus HEAD.
func (s Started) Offset(tb testing.TB) int64 {
	tb.Helper()
	req, _ := http.NewRequest("HEAD", s.IngestURL, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("HEAD ingest: status %d", resp.StatusCode)
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		tb.Fatalf("HEAD ingest: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return n
}

// Patch sends data at offset with a tus PATCH.
func (s Started) Patch(tb testing.TB, offset int64, data io.Reader) *http.Response {
	tb.Helper()
	req, _ := http.NewRequest("PATCH", s.IngestURL, data)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// WaitState polls the recording until its state is want, with a deadline.
func WaitState(tb testing.TB, c *Client, id, want string, within time.Duration) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(within)
	var out map[string]any
	for time.Now().Before(deadline) {
		out = c.MustDo(tb, 200, "GET", "/v1/recordings/"+id, nil)
		if out["state"] == want {
			return out
		}
		if out["state"] == recsink.RecordingFailed && want != recsink.RecordingFailed {
			tb.Fatalf("recording %s failed: %v", id, out)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	tb.Fatalf("recording %s: state %v after %s, want %s: %v", id, out["state"], within, want, out)
	return nil
}

// checkObject fails unless the object on srv is byte-identical to want.
func checkObject(tb testing.TB, srv s3test.Backend, bucket, key string, want []byte) {
	tb.Helper()
	got := srv.GetObject(tb, bucket, key)
	if !bytes.Equal(got, want) {
		tb.Fatalf("object %s/%s on %s: %d bytes, want %d identical bytes (first difference at %d)", bucket, key, srv.Name(), len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func mustContain(tb testing.TB, s, sub string) {
	tb.Helper()
	if !strings.Contains(s, sub) {
		tb.Fatalf("%q does not contain %q", s, sub)
	}
}

var _ = fmt.Sprintf

// MustStartS3 starts versitygw.
func MustStartS3(tb testing.TB) *s3test.Server { return s3test.MustStart(tb) }
