package faultproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink/internal/faultproxy"
)

// TestProxy: the proxy passes, hangs and refuses, and a connection hung
// before the switch back to Pass stays hung while new ones pass.
func TestProxy(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	p := faultproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	get := func(timeout time.Duration) (string, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(p.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(5 * time.Second); err != nil || got != "hello" {
		t.Fatalf("pass: %q, %v", got, err)
	}

	p.SetMode(faultproxy.Hang)
	began := time.Now()
	if _, err := get(300 * time.Millisecond); err == nil {
		t.Fatal("hang: got an answer")
	}
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Fatalf("hang: failed after %v, before the client's timeout", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().HangCut != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the hung connection that the client closed is not counted: %+v", p.Stats())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition under a deadline
	}

	p.SetMode(faultproxy.Refuse)
	if _, err := get(5 * time.Second); err == nil {
		t.Fatal("refuse: got an answer")
	}

	p.SetMode(faultproxy.Pass)
	if got, err := get(5 * time.Second); err != nil || got != "hello" {
		t.Fatalf("pass again: %q, %v", got, err)
	}
	if s := p.Stats(); s.Passed != 2 || s.Hung != 1 || s.Refused != 1 || s.HangOpen != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProxy_HangCutsPassing: a keep-alive connection passed before the
// switch to Hang is closed, so that the client's next request hangs.
func TestProxy_HangCutsPassing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	p := faultproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	c := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	p.SetMode(faultproxy.Hang)
	if _, err := c.Get(p.URL); err == nil {
		t.Fatal("the kept-alive connection still passes after the switch to Hang")
	}
	if s := p.Stats(); s.Hung != 1 {
		t.Fatalf("stats %+v", s)
	}
}
