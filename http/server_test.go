package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	rshttp "github.com/recsink/recsink/http"
)

// Test values. The secret is distinctive so that a leak is easy to find.
const (
	testAPIKey  = "rsk_test_key"
	testOrgID   = "org_test"
	testSecret  = "S3CR3T-wJalrXUtnFEMI-K7MDENG-bPxRfiCYzzz"
	testKeyID   = "AKIAIOSFODNN7EXAMPLE"
	testToken   = "ingest-token-abc"
	testRecID   = "rec_1"
	testMeeting = "mtg_1"
)

// TestServer is a Server over fakes of the services, served by httptest.
type TestServer struct {
	*httptest.Server
	API        *rshttp.Server
	Storage    *StorageService
	Meetings   *MeetingService
	Recordings *RecordingService
	Ingest     *IngestService
	Audit      *AuditService
	Log        *SyncBuffer
}

// MustOpenServer returns a running TestServer, closed at the end of the test.
func MustOpenServer(tb testing.TB) *TestServer {
	tb.Helper()
	ts := newTestServer()
	ts.Server = httptest.NewServer(ts.API.Handler())
	tb.Cleanup(ts.Close)
	return ts
}

func newTestServer() *TestServer {
	ts := &TestServer{
		Storage:    &StorageService{},
		Meetings:   &MeetingService{},
		Recordings: &RecordingService{},
		Ingest:     NewIngestService(),
		Audit:      &AuditService{},
		Log:        &SyncBuffer{},
	}
	ts.API = rshttp.NewServer()
	ts.API.OrganizationService = OrganizationService{}
	ts.API.StorageService = ts.Storage
	ts.API.MeetingService = ts.Meetings
	ts.API.RecordingService = ts.Recordings
	ts.API.IngestService = ts.Ingest
	ts.API.AuditService = ts.Audit
	ts.API.Logger = slog.New(slog.NewTextHandler(ts.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return ts
}

// NewRequest returns a request to the API with the test API key and, when
// body is not empty, Content-Type application/json.
func (ts *TestServer) NewRequest(tb testing.TB, method, path, body string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// Do sends req and returns the response with its body read.
func (ts *TestServer) Do(tb testing.TB, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	resp, err := ts.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, b
}

// Call sends a request made by NewRequest.
func (ts *TestServer) Call(tb testing.TB, method, path, body string) (*http.Response, []byte) {
	tb.Helper()
	return ts.Do(tb, ts.NewRequest(tb, method, path, body))
}

// MustDecodeError decodes an error response body.
func MustDecodeError(tb testing.TB, b []byte) rshttp.ErrorResponse {
	tb.Helper()
	var e rshttp.ErrorResponse
	if err := json.Unmarshal(b, &e); err != nil {
		tb.Fatalf("error body %q: %v", b, err)
	}
	if e.Error == "" || e.Code == "" {
		tb.Fatalf("error body without error or code: %s", b)
	}
	return e
}

// MustDecode decodes a JSON response body into a map.
func MustDecode(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatalf("body %q: %v", b, err)
	}
	return v
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes: the log.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	for _, tt := range []struct {
		name   string
		header string
	}{
		{"Missing", ""},
		{"Wrong", "Bearer nope"},
		{"NotBearer", "Basic " + testAPIKey},
		{"EmptyBearer", "Bearer "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := ts.NewRequest(t, "GET", "/v1/storage", "")
			req.Header.Set("Authorization", tt.header)
			resp, b := ts.Do(t, req)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if e := MustDecodeError(t, b); e.Code != "unauthorized" {
				t.Errorf("code %q", e.Code)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		resp, b := ts.Call(t, "GET", "/v1/storage", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("LowercaseScheme", func(t *testing.T) {
		req := ts.NewRequest(t, "GET", "/v1/storage", "")
		req.Header.Set("Authorization", "bearer "+testAPIKey)
		if resp, b := ts.Do(t, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// TestErrorStatus maps every error code, and the domain's other error types,
// to its status and body.
func TestErrorStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		err     error
		status  int
		code    string
		message string
	}{
		{"EINVALID", recsink.FieldErrorf("bucket", "bad bucket"), 400, "invalid", "bad bucket"},
		{"EUNAUTHORIZED", recsink.Errorf(recsink.EUNAUTHORIZED, "no"), 401, "unauthorized", "no"},
		{"EFORBIDDEN", recsink.Errorf(recsink.EFORBIDDEN, "endpoint not allowed"), 403, "forbidden", "endpoint not allowed"},
		{"ENOTFOUND", recsink.Errorf(recsink.ENOTFOUND, "no storage"), 404, "not_found", "no storage"},
		{"ECONFLICT", recsink.Errorf(recsink.ECONFLICT, "already"), 409, "conflict", "already"},
		{"EDESTINATION", recsink.Errorf(recsink.EDESTINATION, "bucket refused"), 422, "destination", "bucket refused"},
		{"EUNAVAILABLE", &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "busy", RetryAfter: 9}, 503, "unavailable", "busy"},
		{"EINTERNAL", recsink.Errorf(recsink.EINTERNAL, "db on fire"), 500, "internal", "db on fire"},
		{"UnknownCode", recsink.Errorf("weird", "x"), 500, "weird", "x"},
		{"PlainError", io.ErrClosedPipe, 500, "internal", "internal error"},
		{"StorageError", &recsink.StorageError{Op: "HeadBucket", Code: "NoSuchBucket", StatusCode: 404}, 422, "destination", "The bucket does not exist. Check the bucket name, or create the bucket first."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			ts.Storage.FindStorageFn = func(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
				return nil, tt.err
			}
			resp, b := ts.Call(t, "GET", "/v1/storage", "")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			e := MustDecodeError(t, b)
			if e.Code != tt.code || e.Error != tt.message {
				t.Errorf("body %s", b)
			}
			if tt.status == 503 && resp.Header.Get("Retry-After") != "9" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if tt.status == 400 && e.Field != "bucket" {
				t.Errorf("field %q", e.Field)
			}
			logged := strings.Contains(ts.Log.String(), "level=ERROR")
			if logged != (tt.code == "internal") {
				t.Errorf("logged as error: %v; log:\n%s", logged, ts.Log.String())
			}
		})
	}

	t.Run("CheckError", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		report := &recsink.CheckReport{Region: "eu-west-1", Checks: []recsink.Check{
			{Name: "HeadBucket", Permission: "s3:ListBucket", OK: true},
			{Name: "PutObject", Permission: "s3:PutObject", Code: "AccessDenied", Message: "give it s3:PutObject"},
		}}
		ts.Storage.SaveStorageFn = func(context.Context, string, string, recsink.Destination, recsink.AccessKey) (*recsink.Credential, *recsink.CheckReport, error) {
			return nil, nil, &recsink.CheckError{Report: report}
		}
		resp, b := ts.Call(t, "PUT", "/v1/storage", validStorageBody)
		if resp.StatusCode != 422 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		e := MustDecodeError(t, b)
		if e.Code != "destination" || e.Region != "eu-west-1" || len(e.Checks) != 2 || e.Checks[1].Code != "AccessDenied" {
			t.Errorf("body %s", b)
		}
	})

	t.Run("ClientCanceled", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer()
		ts.Storage.FindStorageFn = func(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
			return nil, ctx.Err()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, "GET", "/v1/storage", nil)
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		rec := httptest.NewRecorder()
		ts.API.Handler().ServeHTTP(rec, req)
		if strings.Contains(ts.Log.String(), "level=ERROR") {
			t.Errorf("cancellation logged as error:\n%s", ts.Log.String())
		}
		if rec.Code == 500 {
			t.Errorf("status 500")
		}
	})
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ts.Storage.FindStorageFn = func(context.Context, string, string) (*recsink.Credential, error) {
		panic("boom")
	}
	resp, b := ts.Call(t, "GET", "/v1/storage", "")
	if resp.StatusCode != 500 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if e := MustDecodeError(t, b); e.Error != "internal error" || e.Code != "internal" {
		t.Errorf("body %s", b)
	}
	if !strings.Contains(ts.Log.String(), "boom") {
		t.Errorf("panic not logged:\n%s", ts.Log.String())
	}
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ts.Call(t, "GET", "/v1/meetings?limit=5&cursor=SECRETCURSOR", "")
	log := ts.Log.String()
	for _, want := range []string{"method=GET", "path=/v1/meetings", "status=200", "duration=", "org=" + testOrgID} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, bad := range []string{"SECRETCURSOR", testAPIKey, "Authorization"} {
		if strings.Contains(log, bad) {
			t.Errorf("log holds %q:\n%s", bad, log)
		}
	}
}

func TestMuxErrorsAreJSON(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	t.Run("NotFound", func(t *testing.T) {
		resp, b := ts.Call(t, "GET", "/v1/nope", "")
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		if e := MustDecodeError(t, b); e.Code != "not_found" {
			t.Errorf("body %s", b)
		}
	})
	t.Run("MethodNotAllowed", func(t *testing.T) {
		resp, b := ts.Call(t, "POST", "/v1/storage", "")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
			t.Fatalf("status %d allow %q: %s", resp.StatusCode, resp.Header.Get("Allow"), b)
		}
		if e := MustDecodeError(t, b); e.Code != "invalid" {
			t.Errorf("body %s", b)
		}
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	req := ts.NewRequest(t, "GET", "/healthz", "")
	req.Header.Del("Authorization")
	resp, b := ts.Do(t, req)
	if resp.StatusCode != 200 || MustDecode(t, b)["status"] != "ok" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ts.API.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "up 1\n")
	}))
	resp, b := ts.Call(t, "GET", "/metrics", "")
	if resp.StatusCode != 200 || string(b) != "up 1\n" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if !strings.Contains(ts.Log.String(), "path=/metrics") {
		t.Errorf("extra route not in request log")
	}
}

// date returns a fixed time for fakes.
func date() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }
