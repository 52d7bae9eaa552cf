package http_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	rshttp "github.com/recsink/recsink/http"
)

// MustOpenLimitedServer returns a TestServer served by the Server's own
// net/http server (HTTPServer), with its limits as edit sets them.
func MustOpenLimitedServer(tb testing.TB, edit func(*rshttp.Server)) *TestServer {
	tb.Helper()
	ts := newTestServer()
	edit(ts.API)
	ts.Server = httptest.NewUnstartedServer(nil)
	ts.Server.Config = ts.API.HTTPServer()
	ts.Start()
	tb.Cleanup(ts.Close)
	return ts
}

// rawResponse sends head (request line and headers, without the blank
// line) and then body on a new connection, and returns the response and
// how long it took until the server closed the connection after it (the
// whole limit when it did not). It waits at most limit for each.
func rawResponse(tb testing.TB, addr, head, body string, limit time.Duration) (resp *http.Response, took time.Duration, closed bool) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head+"\r\n\r\n"+body); err != nil {
		tb.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(limit))
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("no response within %s: %v", limit, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp, time.Since(start), errors.Is(err, io.EOF)
}

// TestUnreadBodyNotWaitedFor sends requests that announce a 1000-byte body
// and never send it: those refused before their body is needed are
// answered at once and their connection closed; those whose body is read
// are answered when the read deadline passes.
func TestUnreadBodyNotWaitedFor(t *testing.T) {
	t.Parallel()
	const readTimeout = 1500 * time.Millisecond
	ts := MustOpenLimitedServer(t, func(s *rshttp.Server) { s.ReadTimeout = readTimeout })
	addr := ts.Listener.Addr().String()
	for _, tt := range []struct {
		name, head string
		status     int
		soon       bool // answered well before the read deadline
	}{
		{"NoAPIKey", "PUT /v1/storage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000", 401, true},
		{"WrongAPIKey", "POST /v1/meetings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: 1000", 401, true},
		{"ChunkedNoAPIKey", "PUT /v1/storage HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", 401, true},
		{"RouteWithoutBody", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", 200, true},
		{"NoRoute", "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", 404, true},
		{"IngestNoToken", "PUT " + ingestPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", 401, true},
		{"IngestWrongToken", "PATCH " + ingestPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000", 401, true},
		{"AuthenticatedSilentBody", "PUT /v1/storage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIKey + "\r\nContent-Type: application/json\r\nContent-Length: 1000", 408, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, took, closed := rawResponse(t, addr, tt.head, "", readTimeout+3*time.Second)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			// Closing takes net/http's 500 ms RST-avoidance delay.
			if tt.soon && took > readTimeout*3/4 {
				t.Errorf("answered and closed after %s: the body was waited for", took)
			}
			if !closed {
				t.Errorf("connection kept open after a response with the body unread")
			}
			t.Logf("%s: %d, closed after %s", tt.name, resp.StatusCode, took.Round(10*time.Microsecond))
		})
	}
}

// TestTrickledHeaders sends headers a byte at a time: the connection is
// closed at the read deadline, not at the longer header timeout.
func TestTrickledHeaders(t *testing.T) {
	t.Parallel()
	const readTimeout = time.Second
	ts := MustOpenLimitedServer(t, func(s *rshttp.Server) { s.ReadTimeout = readTimeout })
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "GET /v1/meetings HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(rshttp.ReadHeaderTimeout + 5*time.Second)
	for {
		select {
		case took := <-closed:
			if took < readTimeout || took > readTimeout+2*time.Second {
				t.Errorf("closed after %s; read timeout %s", took, readTimeout)
			}
			return
		case <-tick.C:
			io.WriteString(conn, "a")
		case <-giveUp:
			t.Fatalf("trickled headers held for %s", time.Since(start))
		}
	}
}

// TestIngestIdleTimeout streams an ingest body that goes silent: it is cut
// after the idle timeout with 408, and what arrived before stays
// acknowledged in Upload-Offset.
func TestIngestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 400 * time.Millisecond
	for _, method := range []string{"PUT", "PATCH"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenLimitedServer(t, func(s *rshttp.Server) {
				s.IngestIdleTimeout = idle
				s.ReadTimeout = 10 * time.Second
			})
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			req := ts.NewPatch(t, "0", "")
			if method == "PUT" {
				req = ts.NewIngestRequest(t, "PUT", "")
			}
			req.Body, req.ContentLength = pr, -1
			go func() {
				// Ticks well inside the idle timeout keep the stream alive
				// past it, then silence.
				for i := 0; i < 4; i++ {
					io.WriteString(pw, "tick ")
					time.Sleep(idle / 2)
				}
			}()
			start := time.Now()
			resp, b := ts.Do(t, req)
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got := resp.Header.Get("Upload-Offset"); got != "20" || ts.Ingest.Data() != strings.Repeat("tick ", 4) {
				t.Errorf("Upload-Offset %q, data %q", got, ts.Ingest.Data())
			}
			if e := MustDecodeError(t, b); e.Field != "body" || !strings.Contains(e.Error, "Upload-Offset") {
				t.Errorf("body %s", b)
			}
			if took < 2*idle || took > 2*idle+idle+2*time.Second {
				t.Errorf("cut after %s; ticks for %s, idle timeout %s", took, 2*idle, idle)
			}
			if strings.Contains(ts.Log.String(), "level=ERROR") {
				t.Errorf("idle cut logged as error:\n%s", ts.Log.String())
			}
		})
	}
}

// TestIngestMalformedChunk sends a chunked ingest body whose second chunk
// size is "zz": 400 naming the body, the first chunk kept and acknowledged.
func TestIngestMalformedChunk(t *testing.T) {
	t.Parallel()
	ts := MustOpenLimitedServer(t, func(*rshttp.Server) {})
	for _, method := range []string{"PUT", "PATCH"} {
		t.Run(method, func(t *testing.T) {
			head := method + " " + ingestPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\nTransfer-Encoding: chunked"
			if method == "PATCH" {
				head += "\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 5"
			}
			resp, _, _ := rawResponse(t, ts.Listener.Addr().String(), head, "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", 5*time.Second)
			if resp.StatusCode != 400 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			want := map[string]string{"PUT": "5", "PATCH": "10"}[method]
			if got := resp.Header.Get("Upload-Offset"); got != want {
				t.Errorf("Upload-Offset %q, want %s", got, want)
			}
		})
	}
	if ts.Ingest.Data() != "hellohello" {
		t.Errorf("data %q", ts.Ingest.Data())
	}
	if strings.Contains(ts.Log.String(), "level=ERROR") {
		t.Errorf("malformed body logged as error:\n%s", ts.Log.String())
	}
}

// TestBadInput sends bytes that no store can keep, bodies of the wrong
// shape and bad tus headers: each is a 4xx that names the field.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"PathInvalidUTF8", "GET", "/v1/recordings/mtg_%FF", "", 400, "recordingId"},
		{"PathNUL", "GET", "/v1/meetings/mtg_%00", "", 400, "meetingId"},
		{"PathNULStart", "POST", "/v1/meetings/%00/recordings", "", 400, "meetingId"},
		{"PathTooLong", "DELETE", "/v1/recordings/" + strings.Repeat("r", 2000), "", 400, "recordingId"},
		{"QueryInvalidUTF8", "GET", "/v1/recordings?roomName=%FF", "", 400, "roomName"},
		{"QueryNUL", "GET", "/v1/recordings?roomName=a%00b", "", 400, "roomName"},
		{"QueryCursorNUL", "GET", "/v1/meetings?cursor=%00", "", 400, "cursor"},
		{"QueryKeyInvalid", "GET", "/v1/meetings?%FF=1", "", 400, `"\xff"`},
		{"IngestPathNUL", "PUT", "/v1/recordings/%00/ingest?token=" + testToken, "x", 400, "recordingId"},
		{"IngestTokenNUL", "PUT", ingestPath + "?token=a%00", "x", 400, "token"},
		{"NoRoutePath", "GET", "/admin/%FF", "", 400, "path"},
		{"BodyNUL", "PUT", "/v1/storage", `{"bucket":"a\u0000b"}`, 400, "bucket"},
		{"BodyInvalidUTF8", "POST", "/v1/meetings", "{\"endDate\":\"2030-01-01T00:00:00Z\",\"roomNamePrefix\":\"\xff\"}", 400, "roomNamePrefix"},
		{"BodyNestedNUL", "POST", "/v1/meetings", `{"recording":{"destination":{"bucket":"\u0000"}}}`, 400, "recording.destination.bucket"},
		{"BodyKeyNUL", "PUT", "/v1/storage", `{"a\u0000":1}`, 400, "a\x00"},
		{"BodyArrayNUL", "PUT", "/v1/storage", `{"bucket":"b","x":["a","\u0000"]}`, 400, "x[1]"},
		{"BodyWrongType", "PUT", "/v1/storage", `{"bucket":5}`, 400, "bucket"},
		{"BodyWrongNestedType", "POST", "/v1/meetings", `{"recording":{"type":["cloud"]}}`, 400, "recording.type"},
		{"BodyDeep", "PUT", "/v1/storage", deep, 400, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"},
		{"BodyHuge", "PUT", "/v1/storage", `{"bucket":"` + strings.Repeat("b", 10<<20) + `"}`, 413, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := ts.NewRequest(t, tt.method, tt.path, tt.body)
			resp, b := ts.Do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			e := MustDecodeError(t, b)
			if e.Code != recsink.EINVALID || e.Field != strings.ToValidUTF8(tt.field, "\uFFFD") {
				t.Errorf("body %s, want field %q", b, tt.field)
			}
			if tt.status == 413 && !strings.Contains(e.Error, "65536 bytes") {
				t.Errorf("413 does not name the limit: %s", b)
			}
		})
	}
	if strings.Contains(ts.Log.String(), "level=ERROR") {
		t.Errorf("bad input logged as error:\n%s", ts.Log.String())
	}
}

// TestDatabaseDown checks that a store that is down answers 503 with
// Retry-After on every kind of route, and never 401 for a valid token.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	t.Run("API", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		req := ts.NewRequest(t, "GET", "/v1/recordings", "")
		req.Header.Set("Authorization", "Bearer "+testDBDownKey)
		resp, b := ts.Do(t, req)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || MustDecodeError(t, b).Code != recsink.EUNAVAILABLE {
			t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	})
	for _, method := range []string{"HEAD", "PUT", "PATCH"} {
		t.Run("Ingest"+method, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			ts.Ingest.AuthErr = fmt.Errorf("find recording: %w", errDBDown)
			req := ts.NewPatch(t, "0", "data")
			req.Method = method
			resp, b := ts.Do(t, req)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
		})
	}
	t.Run("SpoolFullKeepsOffsetWhenOffsetFails", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer()
		ts.API.IngestService = offsetDown{ts.Ingest}
		ts.Server = httptest.NewServer(ts.API.Handler())
		t.Cleanup(ts.Close)
		ts.Do(t, ts.NewIngestRequest(t, "PUT", "abc"))
		ts.Ingest.FullAfter = 3
		resp, b := ts.Do(t, ts.NewIngestRequest(t, "PUT", "def"))
		if resp.StatusCode != 503 || resp.Header.Get("Upload-Offset") != "3" {
			t.Fatalf("status %d Upload-Offset %q: %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), b)
		}
	})
}

// offsetDown is an IngestService whose Offset fails as a store that is
// down, while Append works from the spool.
type offsetDown struct{ *IngestService }

func (offsetDown) Offset(ctx context.Context, id, token string) (int64, error) {
	return 0, errDBDown
}

// TestSecretNotLogged puts a secret and an API key inside an internal
// error, as an SDK that quotes a signed request would, and checks that the
// log keeps the error and none of the secret.
func TestSecretNotLogged(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	apiKey := "rsk_" + strings.Repeat("Zq9", 14)
	ts.Storage.FindStorageFn = func(context.Context, string, string) (*recsink.Credential, error) {
		return nil, fmt.Errorf("s3: head bucket: signing with secret %s failed; request had Authorization: AWS4-HMAC-SHA256 Credential=%s/20300101, Signature=0123abcd; X-Amz-Signature=fedcba98 (key %s)",
			testSecret, testKeyID, apiKey)
	}
	resp, b := ts.Call(t, "GET", "/v1/storage", "")
	if resp.StatusCode != 500 || MustDecodeError(t, b).Error != "internal error" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	log := ts.Log.String()
	if !strings.Contains(log, "s3: head bucket: signing with") {
		t.Fatalf("internal error not logged:\n%s", log)
	}
	for _, secret := range []string{testSecret, "wJalrXUtnFEMI", apiKey, "0123abcd", "fedcba98"} {
		if strings.Contains(log, secret) {
			t.Errorf("%q in log:\n%s", secret, log)
		}
	}
}

// TestSlowClients holds 300 connections that announce a body and trickle
// or never send it while normal requests run: every unauthenticated one is
// closed well within the read deadline, the authenticated ones at it, and
// the normal requests are not slowed.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	const readTimeout = 3 * time.Second
	ts := MustOpenLimitedServer(t, func(s *rshttp.Server) { s.ReadTimeout = readTimeout })
	addr := ts.Listener.Addr().String()
	heads := []string{
		"PUT /v1/storage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000",
		"PATCH " + ingestPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000",
		"POST /v1/meetings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
	}
	authed := "PUT /v1/storage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIKey + "\r\nContent-Type: application/json\r\nContent-Length: 1000"
	const n = 300
	type result struct {
		took   time.Duration
		authed bool
		err    string
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			head, isAuthed := heads[i%len(heads)], i%10 == 9
			if isAuthed {
				head = authed
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err.Error()}
				return
			}
			defer conn.Close()
			start := time.Now()
			io.WriteString(conn, head+"\r\n\r\n{") // one byte of the body, then silence
			conn.SetDeadline(time.Now().Add(readTimeout + 5*time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				results <- result{err: "not closed: " + err.Error()}
				return
			}
			results <- result{took: time.Since(start), authed: isAuthed}
		}()
	}
	// Normal traffic meanwhile.
	var worst time.Duration
	for i := 0; i < 100; i++ {
		start := time.Now()
		resp, _ := ts.Call(t, "GET", "/v1/storage", "")
		if resp.StatusCode != 200 {
			t.Fatalf("normal request: status %d", resp.StatusCode)
		}
		worst = max(worst, time.Since(start))
	}
	var slowestUnauthed, slowestAuthed time.Duration
	for i := 0; i < n; i++ {
		r := <-results
		switch {
		case r.err != "":
			t.Error(r.err)
		case r.authed:
			slowestAuthed = max(slowestAuthed, r.took)
		default:
			slowestUnauthed = max(slowestUnauthed, r.took)
		}
	}
	// Generous bounds: under the race detector on two busy cores, 300
	// connections take their time to be scheduled.
	if slowestUnauthed > readTimeout*2/3 {
		t.Errorf("an unauthenticated connection was held %s (read timeout %s)", slowestUnauthed, readTimeout)
	}
	if slowestAuthed > readTimeout+3*time.Second {
		t.Errorf("an authenticated silent body was held %s (read timeout %s)", slowestAuthed, readTimeout)
	}
	if worst > 3*time.Second {
		t.Errorf("a normal request took %s among the slow clients", worst)
	}
	t.Logf("%d slow clients: unauthenticated closed within %s, authenticated within %s (read timeout %s); slowest of 100 normal requests %s",
		n, slowestUnauthed.Round(time.Millisecond), slowestAuthed.Round(time.Millisecond), readTimeout, worst.Round(time.Millisecond))
}
