package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/recsink/recsink"
)

// refusedAddressError is the dialer's error for a non-public address.
type refusedAddressError struct{ addr string }

func (e *refusedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to non-public address %s (the operator allows such receivers with --allow-endpoint)", e.addr)
}

// publicOnlyControl runs after name resolution, on the very address about
// to be connected, so a receiver's name that resolves (or re-resolves, DNS
// rebinding) to a private address cannot be used to reach recsink's own
// network.
func publicOnlyControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !recsink.IsPublicAddr(ap.Addr()) {
		return &refusedAddressError{addr: address}
	}
	return nil
}

// normalizeHostPort lowercases the host of a host:port so that an
// operator's entry compares equal to recsink.EndpointHostPort's result and
// to the address the transport dials.
func normalizeHostPort(hp string) string {
	h, p, err := net.SplitHostPort(strings.TrimSpace(hp))
	if err != nil {
		return strings.ToLower(strings.TrimSpace(hp))
	}
	return net.JoinHostPort(strings.ToLower(h), p)
}

// newHTTPClient returns the default client for deliveries: each dial to a
// host:port that is not in allow refuses non-public addresses, redirects
// are answers rather than directions, and a whole attempt takes at most
// AttemptTimeout.
func newHTTPClient(allow map[string]bool) *http.Client {
	guarded := &net.Dialer{Timeout: AttemptTimeout, KeepAlive: 30 * time.Second, Control: publicOnlyControl}
	open := &net.Dialer{Timeout: AttemptTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// No proxy: a proxy would resolve names itself and defeat the
		// dialer's address check.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if allow[normalizeHostPort(addr)] {
				return open.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
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
