package admin_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/admin"
	rshttp "github.com/recsink/recsink/http"
)

// downStore is a store whose database is down: the admin lookups fail as
// the stores report it.
type downStore struct{ recsink.Store }

var errDown = &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2}

func (downStore) FindAdminSession(context.Context, []byte, time.Time) (*recsink.AdminSession, error) {
	return nil, errDown
}

func (downStore) FindAdminUserByEmail(context.Context, string) (*recsink.AdminUser, error) {
	return nil, errDown
}

// mustDownServer serves the admin page over downStore behind the API's
// server and its limits, as recsink serve does.
func mustDownServer(tb testing.TB, signInRead time.Duration) *httptest.Server {
	tb.Helper()
	api := rshttp.NewServer()
	api.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	api.ReadTimeout = signInRead
	api.Handle("/admin/", admin.New(admin.Config{Store: downStore{}, Logger: api.Logger, SignInReadTimeout: signInRead}))
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = api.HTTPServer()
	ts.Start()
	tb.Cleanup(ts.Close)
	return ts
}

// TestDatabaseDownIsNotSignedOut checks that a store that cannot look up a
// session or a user answers 503 with Retry-After, not the sign-in page.
func TestDatabaseDownIsNotSignedOut(t *testing.T) {
	t.Parallel()
	ts := mustDownServer(t, time.Second)
	client := ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, path := range []string{"/admin/", "/admin/storage", "/admin/recordings?fragment=1", "/admin/signin"} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "recsink_admin", Value: "some-session"})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("GET %s: status %d Retry-After %q, Location %q", path, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Location"))
		}
	}

	form := url.Values{"csrf": {"tok"}, "email": {"a@example.com"}, "password": {"correct horse battery"}}
	req, _ := http.NewRequest("POST", ts.URL+"/admin/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "recsink_admin_signin", Value: "tok"})
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("sign-in: status %d, want 503", resp.StatusCode)
	}
}

// TestSignInBodyLimits sends sign-in requests that announce a body and
// never send it, and one too large: without the sign-in cookie the body is
// not waited for; with it, it is waited for no longer than the sign-in
// read timeout.
func TestSignInBodyLimits(t *testing.T) {
	t.Parallel()
	const signInRead = 700 * time.Millisecond
	ts := mustDownServer(t, signInRead)
	addr := ts.Listener.Addr().String()
	// send returns the status, how long until the server closed the
	// connection (or the whole wait when it did not), and whether it did.
	send := func(t *testing.T, head, body string) (int, time.Duration, bool) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		io.WriteString(conn, head+"\r\n\r\n"+body)
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		_, err = br.ReadByte()
		return resp.StatusCode, time.Since(start), errors.Is(err, io.EOF)
	}
	const post = "POST /admin/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
	t.Run("NoCookie", func(t *testing.T) {
		t.Parallel()
		status, took, closed := send(t, post+"Content-Length: 1000", "")
		if status != 403 || took > signInRead/2 || !closed {
			t.Errorf("status %d, closed %v after %s", status, closed, took)
		}
	})
	t.Run("SilentBody", func(t *testing.T) {
		t.Parallel()
		status, took, closed := send(t, post+"Cookie: recsink_admin_signin=tok\r\nContent-Length: 1000", "")
		if status != 408 || !closed || took < signInRead || took > signInRead+2*time.Second {
			t.Errorf("status %d, closed %v after %s; sign-in read timeout %s", status, closed, took, signInRead)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		t.Parallel()
		body := "csrf=tok&email=" + strings.Repeat("a", 10<<10)
		status, _, _ := send(t, post+"Cookie: recsink_admin_signin=tok\r\nContent-Length: "+itoa(len(body)), body)
		if status != 413 {
			t.Errorf("status %d", status)
		}
	})
	t.Run("NUL", func(t *testing.T) {
		t.Parallel()
		body := "csrf=tok&email=a%00b&password=x"
		status, _, _ := send(t, post+"Connection: close\r\nCookie: recsink_admin_signin=tok\r\nContent-Length: "+itoa(len(body)), body)
		if status != 400 {
			t.Errorf("status %d", status)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
