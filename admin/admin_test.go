package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/admin"
	rshttp "github.com/recsink/recsink/http"
	"github.com/recsink/recsink/internal/browsertest"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/s3"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/storetest"
)

// App is recsink's real parts wired as cmd/recsink wires them, with the
// admin page mounted, served on a loopback port.
type App struct {
	Store   *sqlite.DB
	Service *service.Service
	Server  *httptest.Server
	S3      *s3test.Server // nil unless started with one
}

// appOptions adjust MustApp.
type appOptions struct {
	s3     *s3test.Server
	secure bool
	tls    bool
	// streamKeys, when set, wraps the live service the Rooms page reads.
	streamKeys func(recsink.StreamKeyService) recsink.StreamKeyService
	// ln, when set, is the listener the app serves on: its address is
	// recsink's OIDC issuer, known before the app starts (an STS must be
	// told it first). It turns on role-based access.
	ln net.Listener
	// allow lists more custom endpoints to allow (a SeaweedFS).
	allow []string
}

// MustApp starts the app on a temp dir; with an S3 server, its endpoint is
// allowed and shown on the page.
func MustApp(tb testing.TB, o appOptions) *App {
	tb.Helper()
	dir := tb.TempDir()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.Open(ctx, filepath.Join(dir, "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secrets.NewBox(key)
	if err != nil {
		tb.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	var allow []string
	if o.s3 != nil {
		allow = []string{o.s3.HostPort}
	}
	allow = append(allow, o.allow...)
	// recsink's own identity provider, as cmd/recsink makes it, when the
	// app's address is known.
	var idp *oidc.Provider
	if o.ln != nil {
		if idp, err = oidc.New(oidc.Config{Issuer: "http://" + o.ln.Addr().String(), Store: db, Box: box}); err != nil {
			tb.Fatal(err)
		}
	}
	s3cfg := s3.Config{AllowEndpoints: allow, Logger: logger}
	if idp != nil {
		s3cfg.Identity = idp
	}
	svc := service.New(service.Config{
		Store:       db,
		Storage:     s3.New(s3cfg),
		Box:         box,
		Spool:       sp,
		Logger:      logger,
		MaxDuration: 24 * time.Hour,
		RetryMax:    200 * time.Millisecond,
	})
	if err := svc.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	live := service.NewLive(service.LiveConfig{Keys: db, Recordings: svc, Ingest: svc, Storage: svc, Logger: logger})
	var keys recsink.StreamKeyService = live
	if o.streamKeys != nil {
		keys = o.streamKeys(live)
	}
	api := rshttp.NewServer()
	api.OrganizationService = svc
	api.StorageService = svc
	api.MeetingService = svc
	api.RecordingService = svc
	api.IngestService = svc
	api.Logger = logger
	var issuer, audience string
	if idp != nil {
		issuer, audience = idp.Issuer(), idp.Audience()
		api.OIDCIssuer, api.OIDCAudience = issuer, audience
		wellKnown, jwks := idp.Paths()
		api.Handle("GET "+wellKnown, idp.Handler())
		api.Handle("GET "+jwks, idp.Handler())
	}
	api.Handle("/admin/", admin.New(admin.Config{
		Store:                db,
		Storage:              svc,
		Recordings:           svc,
		Meetings:             svc,
		Audit:                svc,
		Logger:               logger,
		AllowCustomEndpoints: len(allow) > 0,
		OIDCIssuer:           issuer,
		OIDCAudience:         audience,
		MaxDuration:          24 * time.Hour,
		SecureCookies:        o.secure,
		Live:                 admin.LiveConfig{StreamKeys: keys, RTMPAddr: "127.0.0.1:1935", SRTAddr: "127.0.0.1:9000", WHIP: true},
	}))
	var srv *httptest.Server
	switch {
	case o.ln != nil:
		srv = httptest.NewUnstartedServer(api.Handler())
		srv.Listener.Close()
		srv.Listener = o.ln
		srv.Start()
	case o.tls:
		srv = httptest.NewTLSServer(api.Handler())
	default:
		srv = httptest.NewServer(api.Handler())
	}
	tb.Cleanup(func() {
		srv.Close()
		live.Close()
		svc.Close()
		db.Close()
	})
	return &App{Store: db, Service: svc, Server: srv, S3: o.s3}
}

// MustOrg creates an organization and an admin of it, and returns the
// organization with the admin's email and password.
func (a *App) MustOrg(tb testing.TB) (*recsink.Organization, string, string) {
	tb.Helper()
	org, _, email, password := a.MustOrgKey(tb)
	return org, email, password
}

// MustOrgKey is MustOrg that also returns the organization's API key.
func (a *App) MustOrgKey(tb testing.TB) (*recsink.Organization, string, string, string) {
	tb.Helper()
	org, apiKey, err := a.Service.CreateOrganization(context.Background(), "org-"+recsink.RandomToken(6))
	if err != nil {
		tb.Fatal(err)
	}
	email := "admin-" + strings.ToLower(recsink.RandomToken(6)) + "@example.com"
	password := "a long password " + recsink.RandomToken(6)
	hash, err := admin.HashPassword(password)
	if err != nil {
		tb.Fatal(err)
	}
	u := &recsink.AdminUser{ID: recsink.NewID("adm"), OrgID: org.ID, Email: email, PasswordHash: hash, CreatedAt: recsink.Now()}
	if err := a.Store.CreateAdminUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return org, apiKey, email, password
}

// Browser is a plain HTTP client with cookies, for the page's forms.
type Browser struct {
	app    *App
	client *http.Client
}

func (a *App) NewBrowser(tb testing.TB) *Browser {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	// A copy: the test server's client is shared, and each browser has
	// its own cookies.
	c := *a.Server.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Browser{app: a, client: &c}
}

// Get fetches a page and returns its status and body.
func (b *Browser) Get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	resp, err := b.client.Get(b.app.Server.URL + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Post posts a form and returns the response (body read into the string).
func (b *Browser) Post(tb testing.TB, path string, form url.Values) (*http.Response, string) {
	tb.Helper()
	resp, err := b.client.PostForm(b.app.Server.URL+path, form)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// CSRF returns the token in the page's forms.
func CSRF(tb testing.TB, body string) string {
	tb.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// SignIn signs in through the form and returns the response.
func (b *Browser) SignIn(tb testing.TB, email, password string) (*http.Response, string) {
	tb.Helper()
	_, body := b.Get(tb, "/admin/signin")
	return b.Post(tb, "/admin/signin", url.Values{"csrf": {CSRF(tb, body)}, "email": {email}, "password": {password}})
}

// MustSignIn signs in and fails unless it works.
func (b *Browser) MustSignIn(tb testing.TB, email, password string) {
	tb.Helper()
	resp, body := b.SignIn(tb, email, password)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/storage" {
		tb.Fatalf("sign in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

func TestAdminRedirects(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{})
	b := app.NewBrowser(t)
	for path, want := range map[string]string{
		"/admin":            "/admin/",
		"/admin/":           "/admin/signin",
		"/admin/keys":       "/admin/signin?next=%2Fadmin%2Fkeys",
		"/admin/recordings": "/admin/signin?next=%2Fadmin%2Frecordings",
	} {
		resp, err := b.client.Get(app.Server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || loc != want {
			t.Errorf("GET %s: %d to %q, want a redirect to %q", path, resp.StatusCode, loc, want)
		}
	}
	// A script's fragment request gets 401, not the sign-in page.
	if status, _ := b.Get(t, "/admin/keys?fragment=live"); status != http.StatusUnauthorized {
		t.Errorf("fragment while signed out: %d, want 401", status)
	}
	// The embedded assets are served by recsink itself.
	for _, p := range []string{"/admin/static/admin.css", "/admin/static/admin.js"} {
		if status, body := b.Get(t, p); status != 200 || len(body) < 100 {
			t.Errorf("GET %s: %d, %d bytes", p, status, len(body))
		}
	}
}

func TestAdminSignIn(t *testing.T) {
	t.Parallel()

	t.Run("CookieFlags", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name       string
			o          appOptions
			wantSecure bool
		}{
			{"HTTP", appOptions{}, false},
			{"SecureCookies", appOptions{secure: true}, true},
			{"TLS", appOptions{tls: true}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				app := MustApp(t, tc.o)
				_, email, password := app.MustOrg(t)
				b := app.NewBrowser(t)
				resp, body := b.SignIn(t, email, password)
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("sign in: %d\n%s", resp.StatusCode, body)
				}
				var c *http.Cookie
				for _, rc := range resp.Cookies() {
					if rc.Name == "recsink_admin" {
						c = rc
					}
				}
				if c == nil {
					t.Fatalf("no session cookie in %v", resp.Header["Set-Cookie"])
				}
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tc.wantSecure || c.Path != "/admin/" {
					t.Fatalf("session cookie %q: HttpOnly=%v SameSite=%v Secure=%v Path=%q; want HttpOnly, Lax, Secure=%v, /admin/",
						resp.Header["Set-Cookie"], c.HttpOnly, c.SameSite, c.Secure, c.Path, tc.wantSecure)
				}
				if c.MaxAge != int(admin.SessionTTL/time.Second) {
					t.Fatalf("session cookie MaxAge %d, want %d", c.MaxAge, int(admin.SessionTTL/time.Second))
				}
				// The cookie's value is not what the store keeps.
				if _, err := app.Store.FindAdminSession(context.Background(), []byte(c.Value), time.Now()); recsink.ErrorCode(err) != recsink.ENOTFOUND {
					t.Fatalf("the raw cookie value finds a session: %v", err)
				}
				if _, err := app.Store.FindAdminSession(context.Background(), recsink.HashToken(c.Value), time.Now()); err != nil {
					t.Fatalf("session not stored by the token's hash: %v", err)
				}
			})
		}
	})

	t.Run("FailedSlowedDown", func(t *testing.T) {
		t.Parallel()
		app := MustApp(t, appOptions{})
		_, email, password := app.MustOrg(t)
		b := app.NewBrowser(t)
		resp, body := b.SignIn(t, email, "wrong password!")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "The email or password is wrong.") {
			t.Fatalf("wrong password: %d\n%s", resp.StatusCode, body)
		}
		// Straight after a failure, even the right password must wait.
		resp, body = b.SignIn(t, email, password)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many failed sign-ins") {
			t.Fatalf("sign-in right after a failure: %d Retry-After=%q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		// An unknown email is refused the same way, and slowed down too.
		resp, _ = b.SignIn(t, "nobody@example.com", "whatever password")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown email: %d, want 401", resp.StatusCode)
		}
		// Once the delay (1 s after one failure) has passed, the right
		// password works. A refused attempt counts as no failure, so asking
		// again until then does not lengthen it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, body = b.SignIn(t, email, password)
			if resp.StatusCode != http.StatusTooManyRequests {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still slowed down 10 s after one failure\n%s", body)
			}
			time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
		}
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/storage" {
			t.Fatalf("sign in after the delay: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
	})

	t.Run("SignOut", func(t *testing.T) {
		t.Parallel()
		app := MustApp(t, appOptions{})
		_, email, password := app.MustOrg(t)
		b := app.NewBrowser(t)
		b.MustSignIn(t, email, password)
		status, body := b.Get(t, "/admin/storage")
		if status != 200 {
			t.Fatalf("storage page: %d", status)
		}
		resp, _ := b.Post(t, "/admin/signout", url.Values{"csrf": {CSRF(t, body)}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/signin" {
			t.Fatalf("sign out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		if status, _ := b.Get(t, "/admin/storage"); status != http.StatusSeeOther {
			t.Fatalf("storage page after sign out: %d, want a redirect to sign in", status)
		}
	})

	t.Run("ErrSignInWithoutCSRF", func(t *testing.T) {
		t.Parallel()
		app := MustApp(t, appOptions{})
		_, email, password := app.MustOrg(t)
		b := app.NewBrowser(t)
		b.Get(t, "/admin/signin") // sets the form's cookie
		resp, _ := b.Post(t, "/admin/signin", url.Values{"email": {email}, "password": {password}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sign-in without the form's token: %d, want 403", resp.StatusCode)
		}
	})
}

func TestAdminCSRF(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{})
	org, email, password := app.MustOrg(t)
	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	_, page := b.Get(t, "/admin/storage")
	token := CSRF(t, page)
	form := url.Values{
		"bucket": {"my-bucket"}, "accessKeyId": {"AKIAEXAMPLE"}, "accessKeySecret": {"secret"},
		"action": {"save"},
	}
	for name, csrf := range map[string][]string{
		"Missing": nil,
		"Empty":   {""},
		"Wrong":   {token[:len(token)-2] + "xx"},
	} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			if csrf != nil {
				f["csrf"] = csrf
			}
			for _, path := range []string{"/admin/storage", "/admin/signout"} {
				resp, body := b.Post(t, path, f)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form was refused") {
					t.Fatalf("POST %s: %d, want 403\n%s", path, resp.StatusCode, body)
				}
			}
			if _, err := app.Service.FindStorage(context.Background(), org.ID, recsink.ScopeOrganization); recsink.ErrorCode(err) != recsink.ENOTFOUND {
				t.Fatalf("storage saved by a refused form: %v", err)
			}
		})
	}
	// Another site's form, even with the token, is refused by its Origin.
	req, _ := http.NewRequest("POST", app.Server.URL+"/admin/storage", strings.NewReader(url.Values{"csrf": {token}, "bucket": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST: %d, want 403", resp.StatusCode)
	}
	// The right token gets through to the form's own checks.
	f := url.Values{"csrf": {token}, "bucket": {"Not A Bucket"}, "accessKeyId": {"AKIAEXAMPLE"}, "accessKeySecret": {"secret"}, "action": {"save"}}
	resp, body := b.Post(t, "/admin/storage", f)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "bucket name") {
		t.Fatalf("POST with the token: %d, want 422 for the bucket name\n%s", resp.StatusCode, body)
	}
	// The session still works: the refusals did not sign out.
	if status, _ := b.Get(t, "/admin/storage"); status != 200 {
		t.Fatalf("storage page: %d", status)
	}
}

// TestAdminIsolation: an organization's admin sees its own rooms,
// recordings and keys, and none of another organization's.
func TestAdminIsolation(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{})
	ctx := context.Background()
	type world struct {
		org              *recsink.Organization
		email, password  string
		room, rec, keyID string
	}
	mk := func() world {
		org, email, password := app.MustOrg(t)
		m := storetest.NewMeeting(org.ID)
		m.EndDate = time.Now().Add(time.Hour)
		if err := app.Store.CreateMeeting(ctx, m); err != nil {
			t.Fatal(err)
		}
		c := storetest.MustCreateCredential(t, app.Store, org.ID, recsink.ScopeOrganization, time.Now().UTC().Truncate(time.Microsecond))
		room := storetest.MustCreateCredential(t, app.Store, org.ID, m.ID, time.Now().UTC().Truncate(time.Microsecond))
		r := storetest.NewRecording(org.ID, m.RoomName, recsink.RecordingBlocked)
		r.MeetingID, r.CredentialID, r.AccessKeyID = m.ID, c.ID, c.AccessKeyID
		r.StartDate = time.Now().UTC().Truncate(time.Microsecond)
		if err := app.Store.CreateRecording(ctx, r, storetest.TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
		return world{org: org, email: email, password: password, room: strings.TrimPrefix(m.RoomName, "/"), rec: r.ID, keyID: c.AccessKeyID + "|" + room.AccessKeyID}
	}
	a, b := mk(), mk()

	for _, tc := range []struct{ me, other world }{{a, b}, {b, a}} {
		br := app.NewBrowser(t)
		br.MustSignIn(t, tc.me.email, tc.me.password)
		var all strings.Builder
		for _, p := range []string{"/admin/storage", "/admin/keys", "/admin/keys?fragment=live", "/admin/recordings", "/admin/recordings?fragment=live", "/admin/rooms", "/admin/rooms?fragment=live"} {
			status, body := br.Get(t, p)
			if status != 200 {
				t.Fatalf("GET %s: %d\n%s", p, status, body)
			}
			all.WriteString(body)
		}
		page := all.String()
		mine := append([]string{tc.me.room, tc.me.rec}, strings.Split(tc.me.keyID, "|")...)
		theirs := append([]string{tc.other.room, tc.other.rec, tc.other.org.ID}, strings.Split(tc.other.keyID, "|")...)
		for _, s := range mine {
			if !strings.Contains(page, s) {
				t.Errorf("%s's admin does not see its own %q", tc.me.org.Name, s)
			}
		}
		for _, s := range theirs {
			if strings.Contains(page, s) {
				t.Errorf("%s's admin sees %q of %s", tc.me.org.Name, s, tc.other.org.Name)
			}
		}
		// The blocked recording stands out with what to do.
		if _, body := br.Get(t, "/admin/recordings"); !strings.Contains(body, "1 recording is blocked") || !strings.Contains(body, "What to do:") {
			t.Errorf("blocked recording not called out:\n%s", body)
		}
	}
}

// MustBrowser starts headless Chromium for tb, its window the size the
// screenshots are taken at.
func MustBrowser(tb testing.TB) context.Context {
	tb.Helper()
	return browsertest.MustBrowser(tb, chromedp.WindowSize(1280, 900))
}

// artifactsDir returns the folder for screenshots: $RECSINK_ARTIFACTS, else
// artifacts/admin under the repository root.
func artifactsDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("RECSINK_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs("..")
		if err != nil {
			tb.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts", "admin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// screenshot saves the whole page as name.png in the artifacts folder.
func screenshot(tb testing.TB, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		path := filepath.Join(artifactsDir(tb), name+".png")
		tb.Logf("screenshot %s", path)
		return os.WriteFile(path, buf, 0o644)
	})
}

// submit clicks a form's button and waits until the next page has loaded.
func submit(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Evaluate[chromedp.Void](`window.__before = true`),
		chromedp.Click(chromedp.CSS(sel)),
		waitJS(`!window.__before && document.readyState === "complete"`),
	)
}

// waitText waits until the page's main text contains s.
func waitText(s string) chromedp.Action[chromedp.Void] {
	return waitJS(fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector("main") && document.querySelector("main").innerText.includes(%q)`, s))
}

// waitJS waits until expr is true. Unlike Poll it survives the page being
// replaced while it waits, as it is after a form is posted.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		var lastErr error
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, t)
			if err == nil && ok {
				return nil
			}
			lastErr = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w (last error: %v)", expr, ctx.Err(), lastErr)
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// mainText returns the page's main text.
func mainText(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// must runs steps in the browser and fails tb on an error.
func must(tb testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("browser: %v", err)
	}
}

// TestAdminRotation drives the page in Chromium through a key rotation: sign
// in, a wrong secret refused with S3's explanation, a working key saved, a
// recording started, a new key saved while it runs, the old key draining
// with its safe-to-delete time and timeline, the recording stopped, and the
// old key safe to delete now.
func TestAdminRotation(t *testing.T) {
	t.Parallel()
	ctx := MustBrowser(t)
	srv := s3test.MustStart(t)
	app := MustApp(t, appOptions{s3: srv})
	org, email, password := app.MustOrg(t)
	oldKey := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, oldKey.ID)
	newKey := srv.CreateUser(t, "user")
	srv.PutBucketPolicy(t, bucket, oldKey, oldKey.ID, newKey.ID)
	meeting, err := app.Service.CreateMeeting(context.Background(), org.ID,
		&recsink.Meeting{RoomName: "/weekly-standup", EndDate: time.Now().Add(2 * time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := app.Server.URL
	bg := context.Background()

	fill := func(keyID, secret string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#bucket"), bucket+"/recordings"),
			chromedp.SetValue(chromedp.CSS("#accessKeyId"), keyID),
			chromedp.SetValue(chromedp.CSS("#accessKeySecret"), secret),
			chromedp.SetValue(chromedp.CSS("#region"), s3test.Region),
			chromedp.SetValue(chromedp.CSS("#endpoint"), srv.Endpoint),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("forcePathStyle").checked = true`),
		)
	}

	// Sign in.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		screenshot(t, "01-signin"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		submit(`form[action="/admin/signin"] button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS(`nav a[aria-current="page"]`)),
	)
	if text := mainText(t, ctx); !strings.Contains(text, "No storage is saved yet") {
		t.Fatalf("storage page after sign-in:\n%s", text)
	}

	// A wrong secret: not saved, with S3's explanation.
	must(t, ctx,
		fill(oldKey.ID, oldKey.Secret+"x"),
		submit(`button[value="save"]`),
		waitText("SignatureDoesNotMatch"),
		screenshot(t, "02-storage-wrong-secret"),
	)
	if text := mainText(t, ctx); !strings.Contains(text, "Not saved") || !strings.Contains(text, "The access secret is wrong: S3 could not verify the request signature.") {
		t.Fatalf("wrong secret page:\n%s", text)
	}
	if _, err := app.Service.FindStorage(bg, org.ID, recsink.ScopeOrganization); recsink.ErrorCode(err) != recsink.ENOTFOUND {
		t.Fatalf("a wrong secret was saved: %v", err)
	}

	// Test connection with the right secret saves nothing; Save saves.
	must(t, ctx,
		fill(oldKey.ID, oldKey.Secret),
		submit(`button[value="test"]`),
		waitText("Connection works"),
	)
	if _, err := app.Service.FindStorage(bg, org.ID, recsink.ScopeOrganization); recsink.ErrorCode(err) != recsink.ENOTFOUND {
		t.Fatalf("Test connection saved: %v", err)
	}
	must(t, ctx,
		submit(`button[value="save"]`),
		waitText("Saved. Every check passed"),
		waitText("A secret is saved for this key"),
		screenshot(t, "03-storage-saved"),
	)
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#accessKeySecret"))); err != nil {
		t.Fatal(err)
	} else if v != "" {
		t.Fatalf("the secret field holds %d characters after saving, want it empty", len(v))
	}
	if c, err := app.Service.FindStorage(bg, org.ID, recsink.ScopeOrganization); err != nil || c.AccessKeyID != oldKey.ID {
		t.Fatalf("saved storage: %v, %v", c, err)
	}

	// A recording starts with the old key and takes some media.
	rec, token, err := app.Service.StartRecording(bg, org.ID, meeting.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Service.Append(bg, rec.ID, token, 0, bytes.NewReader(bytes.Repeat([]byte("media"), 2000))); err != nil {
		t.Fatal(err)
	}

	// The new key is saved in the page while the recording runs.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/storage"),
		chromedp.WaitVisible(chromedp.CSS("#accessKeyId")),
		chromedp.SetValue(chromedp.CSS("#accessKeyId"), newKey.ID),
		chromedp.SetValue(chromedp.CSS("#accessKeySecret"), newKey.Secret),
		submit(`button[value="save"]`),
		waitText("Saved. Every check passed; recordings that start from now on use key "+newKey.ID),
	)

	// The old key drains: held by the recording, safe to delete after its
	// latest possible end, drawn on the timeline.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/keys"),
		waitText("Safe to delete after"),
		screenshot(t, "04-keys-draining"),
	)
	text := mainText(t, ctx)
	safeAfter := rec.StartDate.Add(24 * time.Hour).UTC().Format("2006-01-02 15:04 UTC")
	for _, want := range []string{oldKey.ID, newKey.ID, "draining", "Safe to delete after " + safeAfter, "weekly-standup",
		"Old key " + oldKey.ID + " is draining: 1 recording still holds it."} {
		if !strings.Contains(text, want) {
			t.Errorf("keys page lacks %q:\n%s", want, text)
		}
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg .tl-row").length`))
	if err != nil {
		t.Fatal(err)
	} else if rows != 1 {
		t.Errorf("timeline has %d recording rows, want 1", rows)
	}
	lines, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg line.tl-now, svg line.tl-safe").length`))
	if err != nil {
		t.Fatal(err)
	} else if lines != 2 {
		t.Errorf("timeline has %d of the now and safe-to-delete lines, want 2", lines)
	}

	// The other views, for the record.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/recordings"),
		waitText("weekly-standup"),
		screenshot(t, "05-recordings"),
		chromedp.Navigate(base+"/admin/keys"),
		waitText("Safe to delete after"),
	)

	// Stop the recording and wait for the upload; the open keys page
	// refreshes by itself to "safe to delete now".
	if _, err := app.Service.StopRecording(bg, org.ID, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, _, err := app.Service.FindRecording(bg, org.ID, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == recsink.RecordingUploaded {
			break
		}
		if r.Finished() || time.Now().After(deadline) {
			t.Fatalf("recording %s is %s (%s), want uploaded", r.ID, r.State, r.LastError)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
	must(t, ctx,
		waitText("Safe to delete now"),
		screenshot(t, "07-keys-drained"),
	)
	text = mainText(t, ctx)
	for _, want := range []string{"Drained: no recording holds " + oldKey.ID, "Safe to delete " + oldKey.ID + " now"} {
		if !strings.Contains(text, want) {
			t.Errorf("keys page lacks %q:\n%s", want, text)
		}
	}

	// A room with its own destination and key, as the REST API makes one.
	if _, err := app.Service.CreateMeeting(bg, org.ID, &recsink.Meeting{RoomName: "/board-meeting", EndDate: time.Now().Add(3 * time.Hour)},
		&recsink.Destination{Bucket: bucket, Prefix: "board", Region: s3test.Region, Endpoint: srv.Endpoint, ForcePathStyle: true}, &newKey); err != nil {
		t.Fatal(err)
	}
	must(t, ctx,
		chromedp.Navigate(base+"/admin/rooms"),
		waitText("board-meeting"),
		screenshot(t, "06-rooms"),
	)
	if text := mainText(t, ctx); !strings.Contains(text, bucket+"/board") || !strings.Contains(text, "Rooms with their own destination: 1 of 2") {
		t.Errorf("rooms page:\n%s", text)
	}

	// The recording's page, and the storage page on a phone.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/recordings"),
		waitText("uploaded"),
		screenshot(t, "08-recordings-uploaded"),
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/storage"),
		chromedp.WaitVisible(chromedp.CSS("#bucket")),
		screenshot(t, "09-storage-phone"),
		chromedp.Navigate(base+"/admin/keys"),
		waitText("Safe to delete now"),
		screenshot(t, "10-keys-phone"),
	)
}
