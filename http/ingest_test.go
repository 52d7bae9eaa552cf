package http_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const ingestPath = "/v1/recordings/" + testRecID + "/ingest"

// NewIngestRequest returns an ingest request with the recording's token.
func (ts *TestServer) NewIngestRequest(tb testing.TB, method, body string) *http.Request {
	tb.Helper()
	req := ts.NewRequest(tb, method, ingestPath, body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Del("Content-Type")
	return req
}

// NewPatch returns a tus PATCH at offset.
func (ts *TestServer) NewPatch(tb testing.TB, offset, body string) *http.Request {
	tb.Helper()
	req := ts.NewIngestRequest(tb, "PATCH", body)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", offset)
	return req
}

func TestIngestTus(t *testing.T) {
	t.Parallel()

	t.Run("Options", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		req := ts.NewRequest(t, "OPTIONS", ingestPath, "")
		req.Header.Del("Authorization")
		resp, _ := ts.Do(t, req)
		if resp.StatusCode != 204 || resp.Header.Get("Tus-Resumable") != "1.0.0" || resp.Header.Get("Tus-Version") != "1.0.0" {
			t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
		}
		if _, ok := resp.Header["Tus-Extension"]; ok {
			t.Errorf("Tus-Extension sent with no extension")
		}
	})

	t.Run("HeadPatchHead", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		head := func(want string) {
			t.Helper()
			resp, _ := ts.Do(t, ts.NewIngestRequest(t, "HEAD", ""))
			if resp.StatusCode != 200 || resp.Header.Get("Upload-Offset") != want {
				t.Fatalf("HEAD status %d Upload-Offset %q, want %q", resp.StatusCode, resp.Header.Get("Upload-Offset"), want)
			}
			for k, v := range map[string]string{"Cache-Control": "no-store", "Tus-Resumable": "1.0.0", "Upload-Defer-Length": "1"} {
				if resp.Header.Get(k) != v {
					t.Errorf("%s %q", k, resp.Header.Get(k))
				}
			}
		}
		head("0")
		resp, b := ts.Do(t, ts.NewPatch(t, "0", "hello "))
		if resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != "6" || resp.Header.Get("Tus-Resumable") != "1.0.0" {
			t.Fatalf("PATCH status %d offset %q: %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), b)
		}
		head("6")
		resp, b = ts.Do(t, ts.NewPatch(t, "6", "world"))
		if resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != "11" {
			t.Fatalf("PATCH status %d: %s", resp.StatusCode, b)
		}
		if got := ts.Ingest.Data(); got != "hello world" {
			t.Errorf("data %q", got)
		}
	})

	t.Run("ErrWrongOffset", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.Do(t, ts.NewPatch(t, "0", "abc"))
		resp, b := ts.Do(t, ts.NewPatch(t, "1", "xyz"))
		if resp.StatusCode != 409 || resp.Header.Get("Upload-Offset") != "3" {
			t.Fatalf("status %d offset %q: %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), b)
		}
		if MustDecodeError(t, b).Code != "conflict" || ts.Ingest.Data() != "abc" {
			t.Errorf("body %s data %q", b, ts.Ingest.Data())
		}
	})

	for _, tt := range []struct {
		name   string
		edit   func(*http.Request)
		status int
		field  string
	}{
		{"ErrNoTusResumable", func(r *http.Request) { r.Header.Del("Tus-Resumable") }, 412, "Tus-Resumable"},
		{"ErrTusVersion", func(r *http.Request) { r.Header.Set("Tus-Resumable", "0.2.2") }, 412, "Tus-Resumable"},
		{"ErrContentType", func(r *http.Request) { r.Header.Set("Content-Type", "application/octet-stream") }, 415, "Content-Type"},
		{"ErrNoContentType", func(r *http.Request) { r.Header.Del("Content-Type") }, 415, "Content-Type"},
		{"ErrNoUploadOffset", func(r *http.Request) { r.Header.Del("Upload-Offset") }, 400, "Upload-Offset"},
		{"ErrUploadOffsetNegative", func(r *http.Request) { r.Header.Set("Upload-Offset", "-1") }, 400, "Upload-Offset"},
		{"ErrUploadOffsetText", func(r *http.Request) { r.Header.Set("Upload-Offset", "zero") }, 400, "Upload-Offset"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			req := ts.NewPatch(t, "0", "data")
			tt.edit(req)
			resp, b := ts.Do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if e := MustDecodeError(t, b); e.Field != tt.field {
				t.Errorf("field %q", e.Field)
			}
			if tt.status == 412 && resp.Header.Get("Tus-Version") != "1.0.0" {
				t.Errorf("Tus-Version %q", resp.Header.Get("Tus-Version"))
			}
			if ts.Ingest.Data() != "" {
				t.Errorf("appended %q", ts.Ingest.Data())
			}
		})
	}
}

func TestIngestAuth(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	for _, tt := range []struct {
		name, method, header, query string
		status                      int
	}{
		{"PutNoToken", "PUT", "", "", 401},
		{"PutAPIKeyIsNotToken", "PUT", "Bearer " + testAPIKey, "", 401},
		{"PutWrongQueryToken", "PUT", "", "?token=nope", 401},
		{"PatchNoToken", "PATCH", "", "", 401},
		{"HeadNoToken", "HEAD", "", "", 401},
		{"HeadWrongToken", "HEAD", "Bearer nope", "", 401},
		{"PutQueryToken", "PUT", "", "?token=" + testToken, 204},
		{"HeadQueryToken", "HEAD", "", "?token=" + testToken, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+ingestPath+tt.query, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, b := ts.Do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if strings.Contains(ts.Log.String(), testToken) {
		t.Errorf("token in log:\n%s", ts.Log.String())
	}
	if resp, _ := ts.Do(t, mustRequest(t, "HEAD", ts.URL+"/v1/recordings/nope/ingest?token="+testToken)); resp.StatusCode != 404 {
		t.Errorf("unknown recording: status %d", resp.StatusCode)
	}
}

func mustRequest(tb testing.TB, method, url string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return req
}

// TestIngestPutStreams sends a chunked PUT through a pipe and checks that
// each piece reaches Append before the next is written: nothing waits for
// the whole body.
func TestIngestPutStreams(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	pr, pw := io.Pipe()
	req := ts.NewIngestRequest(t, "PUT", "")
	req.Body, req.ContentLength = pr, -1
	req.Header.Set("Content-Type", "video/x-matroska")

	done := make(chan *http.Response, 1)
	go func() {
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		resp.Body.Close()
		done <- resp
	}()

	var want strings.Builder
	for i, piece := range []string{"first piece ", "second piece ", strings.Repeat("z", 100<<10)} {
		if _, err := io.WriteString(pw, piece); err != nil {
			t.Fatal(err)
		}
		want.WriteString(piece)
		deadline := time.After(5 * time.Second)
		for ts.Ingest.Data() != want.String() {
			select {
			case <-ts.Ingest.Chunks:
			case <-deadline:
				t.Fatalf("piece %d did not reach Append while the body was open (have %d bytes)", i, len(ts.Ingest.Data()))
			}
		}
	}
	pw.Close()
	resp := <-done
	if resp == nil {
		return
	}
	if resp.StatusCode != 204 || resp.Header.Get("Upload-Offset") != "102425" {
		t.Fatalf("status %d Upload-Offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
}

// TestIngestOutlivesReadTimeout checks that an ingest stream may run longer
// than the server's ReadTimeout, which suits the JSON routes but would cut a
// recording.
func TestIngestOutlivesReadTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer()
	ts.Server = httptest.NewUnstartedServer(ts.API.Handler())
	ts.Server.Config.ReadTimeout = 300 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)

	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 6; i++ {
			io.WriteString(pw, "tick ")
			time.Sleep(150 * time.Millisecond) // a slow client: the body outlasts ReadTimeout
		}
		pw.Close()
	}()
	req := ts.NewIngestRequest(t, "PUT", "")
	req.Body, req.ContentLength = pr, -1
	resp, b := ts.Do(t, req)
	if resp.StatusCode != 204 || ts.Ingest.Data() != strings.Repeat("tick ", 6) {
		t.Fatalf("status %d: %s; data %q", resp.StatusCode, b, ts.Ingest.Data())
	}
}

func TestIngestSpoolFull(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"PUT", "PATCH"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			ts.Do(t, ts.NewPatch(t, "0", "0123456789"))
			ts.Ingest.FullAfter = 10
			req := ts.NewPatch(t, "10", strings.Repeat("x", 1000))
			if method == "PUT" {
				req = ts.NewIngestRequest(t, "PUT", strings.Repeat("x", 1000))
			}
			resp, b := ts.Do(t, req)
			if resp.StatusCode != 503 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if resp.Header.Get("Retry-After") != "7" || resp.Header.Get("Upload-Offset") != "10" {
				t.Errorf("Retry-After %q Upload-Offset %q", resp.Header.Get("Retry-After"), resp.Header.Get("Upload-Offset"))
			}
			if e := MustDecodeError(t, b); e.Code != "unavailable" {
				t.Errorf("body %s", b)
			}
			if strings.Contains(ts.Log.String(), "level=ERROR") {
				t.Errorf("spool full logged as error:\n%s", ts.Log.String())
			}
		})
	}
}
