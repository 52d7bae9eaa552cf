package oidc_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/sqlite"
)

// clock is a settable clock for the provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// MustProvider returns a provider over a fresh SQLite store, and the store.
func MustProvider(tb testing.TB, issuer string, clk *clock) (*oidc.Provider, *sqlite.DB) {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	mk := make([]byte, 32)
	rand.Read(mk)
	box, err := secrets.NewBox(mk)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := oidc.New(oidc.Config{Issuer: issuer, Store: db, Box: box, Now: clk.Now, TokenTTL: 5 * time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return p, db
}

func verify(t *testing.T, p *oidc.Provider, tok string) (jwt.Claims, string) {
	t.Helper()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	set, err := p.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kid := parsed.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %s published %d times, want once", kid, len(keys))
	}
	var c jwt.Claims
	if err := parsed.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("verify token with the published key: %v", err)
	}
	return c, kid
}

func TestToken(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	p, _ := MustProvider(t, "https://recsink.example.com", clk)
	tok, err := p.Token(context.Background(), oidc.Subject("org_1"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := verify(t, p, tok)
	err = c.ValidateWithLeeway(jwt.Expected{
		Issuer: "https://recsink.example.com", Subject: "org:org_1",
		AnyAudience: jwt.Audience{oidc.DefaultAudience}, Time: clk.Now(),
	}, 0)
	if err != nil {
		t.Fatalf("claims %+v: %v", c, err)
	}
	if got := c.Expiry.Time().Sub(c.IssuedAt.Time()); got != 5*time.Minute {
		t.Fatalf("token lifetime %v, want 5m", got)
	}
	clk.Add(5*time.Minute + time.Second)
	if err := c.ValidateWithLeeway(jwt.Expected{Time: clk.Now()}, 0); err == nil {
		t.Fatal("a token past its lifetime validated")
	}
}

// TestRotate: after a rotation new tokens use the new key; the old key stays
// published until every token it signed has expired, then goes.
func TestRotate(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	ctx := context.Background()
	p, db := MustProvider(t, "http://127.0.0.1:8080", clk)
	tok1, err := p.Token(ctx, "org:a")
	if err != nil {
		t.Fatal(err)
	}
	_, kid1 := verify(t, p, tok1)
	k2, err := p.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := p.Token(ctx, "org:a")
	_, kid2 := verify(t, p, tok2)
	if kid2 != k2.ID || kid2 == kid1 {
		t.Fatalf("after rotation the token's kid is %s, want the new key %s (old %s)", kid2, k2.ID, kid1)
	}
	verify(t, p, tok1) // the old token still verifies against the published set

	clk.Add(5*time.Minute + 15*time.Second)
	set, _ := p.JWKS(ctx)
	if len(set.Key(kid1)) != 1 {
		t.Fatal("the retired key left the JWKS before its last token's expiry plus the slack")
	}
	clk.Add(6 * time.Minute)
	set, _ = p.JWKS(ctx)
	if len(set.Key(kid1)) != 0 || len(set.Key(kid2)) != 1 {
		t.Fatalf("long after rotation the JWKS has %d keys: %v", len(set.Keys), set.Keys)
	}
	// The next rotation deletes the key no longer published.
	if _, err := p.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	ks, _ := db.ListSigningKeys(ctx)
	if len(ks) != 2 {
		t.Fatalf("%d keys stored after a third rotation, want 2 (the first deleted)", len(ks))
	}
	for _, k := range ks {
		if len(k.PrivateCiphertext) < 1000 || k.ID == kid1 {
			t.Fatalf("stored key %+v", k.ID)
		}
	}
}

// TestRotateAfter: a current key older than RotateAfter is replaced when a
// token is signed.
func TestRotateAfter(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	ctx := context.Background()
	p, _ := MustProvider(t, "https://x.example", clk)
	tok1, _ := p.Token(ctx, "s")
	_, kid1 := verify(t, p, tok1)
	clk.Add(oidc.DefaultRotateAfter + time.Minute)
	tok2, _ := p.Token(ctx, "s")
	if _, kid2 := verify(t, p, tok2); kid2 == kid1 {
		t.Fatal("a key older than RotateAfter still signs")
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	p, _ := MustProvider(t, "http://127.0.0.1:1/base", clk)
	if _, err := p.Token(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	var d oidc.Discovery
	get(t, srv.URL+"/base"+oidc.WellKnownPath, &d)
	if d.Issuer != "http://127.0.0.1:1/base" || d.JWKSURI != "http://127.0.0.1:1/base"+oidc.JWKSPath || d.IDTokenSigningAlgValuesSupported[0] != "RS256" {
		t.Fatalf("discovery = %+v", d)
	}
	var set jose.JSONWebKeySet
	get(t, srv.URL+"/base"+oidc.JWKSPath, &set)
	if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].Algorithm != "RS256" || set.Keys[0].Use != "sig" {
		t.Fatalf("jwks = %+v", set)
	}
	resp, err := http.Get(srv.URL + oidc.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("discovery outside the issuer's path: %s", resp.Status)
	}
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestValidateIssuer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, issuer string
		ok           bool
	}{
		{"HTTPS", "https://recsink.example.com", true},
		{"HTTPSPath", "https://example.com/recsink", true},
		{"LoopbackHTTP", "http://127.0.0.1:8080", true},
		{"LocalhostHTTP", "http://localhost:8080", true},
		{"IPv6LoopbackHTTP", "http://[::1]:8080", true},
		{"ErrPublicHTTP", "http://recsink.example.com", false},
		{"ErrPrivateHTTP", "http://10.0.0.1", false},
		{"ErrQuery", "https://example.com/?a=b", false},
		{"ErrNoHost", "https://", false},
		{"ErrScheme", "ftp://example.com", false},
		{"ErrUser", "https://u:p@example.com", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := oidc.ValidateIssuer(tt.issuer); (err == nil) != tt.ok {
				t.Fatalf("ValidateIssuer(%q) = %v, want ok=%v", tt.issuer, err, tt.ok)
			}
		})
	}
}
