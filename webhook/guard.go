package webhook

import (
	"net"
	"net/http"
	"time"

	"github.com/recsink/recsink"
)

// newHTTPClient returns the default client for deliveries: each dial to a
// host:port that is not in allow refuses non-public addresses, redirects
// are answers rather than directions, and a whole attempt takes at most
// AttemptTimeout.
func newHTTPClient(allow map[string]bool) *http.Client {
	d := &net.Dialer{Timeout: AttemptTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// No proxy: a proxy would resolve names itself and defeat the
		// dialer's address check.
		Proxy:                 nil,
		DialContext:           recsink.GuardDial(d, func(hp string) bool { return allow[hp] }),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   workers,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   AttemptTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: t,
		Timeout:   AttemptTimeout,
		// A redirect is the receiver's misconfiguration to report, and
		// following it could lead past the address check's intent (a public
		// host redirecting to an internal one is still refused by the dialer,
		// but the allowlist is per host:port).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
