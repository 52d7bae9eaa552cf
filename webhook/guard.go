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
)

// The address checks repeat s3/guard.go's: adapters do not import each
// other. Keep the two in step until they move to one shared package.

// nonPublic lists address ranges that IsPrivate and its siblings miss but
// that still reach inside a network: shared address space (carrier-grade
// NAT, where some clouds put their metadata service), benchmarking, IETF
// protocol assignments and reserved space.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// nat64 is the well-known NAT64 prefix, which embeds an IPv4 address that
// must be vetted in turn.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// isPublic reports whether a is a globally routable unicast address.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		return isPublic(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

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
	if err != nil || !isPublic(ap.Addr()) {
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
