package main_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/admin"
)

// AdminPage is an admin of an organization signed in to the admin page of
// a running recsink, posting its forms as a browser does (cookies, CSRF).
type AdminPage struct {
	m      *TestMain
	client *http.Client
}

// MustAdminPage creates an admin of the organization of API client c and
// signs in.
func MustAdminPage(tb testing.TB, m *TestMain, c *Client) *AdminPage {
	tb.Helper()
	ctx := context.Background()
	org, err := m.Store.FindOrganizationByAPIKeyHash(ctx, recsink.HashToken(c.Key))
	if err != nil {
		tb.Fatal(err)
	}
	email := "admin-" + strings.ToLower(recsink.RandomToken(6)) + "@example.com"
	password := "a long password " + recsink.RandomToken(6)
	hash, err := admin.HashPassword(password)
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Store.CreateAdminUser(ctx, &recsink.AdminUser{ID: recsink.NewID("adm"), OrgID: org.ID, Email: email, PasswordHash: hash, CreatedAt: recsink.Now()}); err != nil {
		tb.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	p := &AdminPage{m: m, client: &http.Client{
		Jar: jar, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	status, body := p.Post(tb, "/admin/signin", url.Values{"email": {email}, "password": {password}}, "/admin/signin")
	if status != http.StatusSeeOther {
		tb.Fatalf("admin sign-in: %d\n%s", status, body)
	}
	return p
}

// Get fetches a page and returns its status and body.
func (p *AdminPage) Get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	resp, err := p.client.Get(p.m.URL() + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var adminCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Post posts form to path with the CSRF token of the page at from, and
// returns the answer's status and body.
func (p *AdminPage) Post(tb testing.TB, path string, form url.Values, from string) (int, string) {
	tb.Helper()
	_, page := p.Get(tb, from)
	m := adminCSRF.FindStringSubmatch(page)
	if m == nil {
		tb.Fatalf("no CSRF token on %s:\n%s", from, page)
	}
	form.Set("csrf", m[1])
	resp, err := p.client.PostForm(p.m.URL()+path, form)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
