package recsink

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// nonPublic lists address ranges that IsPrivate and its siblings miss but
// that still reach inside a network or nowhere: shared address space
// (carrier-grade NAT, where some clouds put their metadata service),
// benchmarking, documentation, IETF protocol assignments, reserved space, and
// their IPv6 counterparts (discard-only, deprecated site-local, ORCHID, SRv6).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:2::/48"),
	netip.MustParsePrefix("2001:10::/28"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("3fff::/20"),
	netip.MustParsePrefix("5f00::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

// IPv6 prefixes that carry an IPv4 address, which must be vetted in turn: a
// host that translates or tunnels them delivers the packets to that IPv4
// address, private or not.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // deprecated IPv4-compatible (RFC 4291)
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT's IPv4-translated (RFC 2765)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // well-known NAT64 (RFC 6052)
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")  // local-use NAT64 (RFC 8215)
	nat64Local96   = netip.MustParsePrefix("64:ff9b:1::/96")  // its /96 form, the one DNS64 uses
	sixToFour      = netip.MustParsePrefix("2002::/16")       // 6to4 (RFC 3056)
	teredo         = netip.MustParsePrefix("2001::/32")       // Teredo (RFC 4380)
)

// IsPublicAddr reports whether a is a globally routable unicast address:
// the only kind a customer's S3 endpoint or webhook receiver may make recsink
// connect to, unless the operator allows its host:port. Everything else
// (loopback, private, link-local, metadata services) would let a customer
// reach into the operator's network. IPv6 forms that embed an IPv4 address
// (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) are public only when the
// embedded address is.
func IsPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() {
		embedded, ok := embeddedIPv4(a)
		if !ok {
			return false
		}
		for _, v4 := range embedded {
			if !IsPublicAddr(v4) {
				return false
			}
		}
		if len(embedded) > 0 {
			return true
		}
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

// embeddedIPv4 returns the IPv4 addresses that the IPv6 address a leads to,
// none when it is a plain IPv6 address, and ok false when a is in a
// translation prefix whose embedded address cannot be told.
func embeddedIPv4(a netip.Addr) (v4s []netip.Addr, ok bool) {
	b := a.As16()
	last := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case ipv4Compatible.Contains(a), ipv4Translated.Contains(a), nat64.Contains(a), nat64Local96.Contains(a):
		// :: and ::1 land here too, as 0.0.0.0 and 0.0.0.1: not public.
		return []netip.Addr{last}, true
	case nat64Local.Contains(a):
		// A local-use translator may put the IPv4 address at any of
		// RFC 6052's positions; only the /96 form (above) is unambiguous.
		return nil, false
	case sixToFour.Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})}, true
	case teredo.Contains(a):
		// The Teredo server's address, then the client's, which is stored
		// with every bit flipped.
		server := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return []netip.Addr{server, client}, true
	}
	return nil, true
}

// RefusedAddressError is the error of a guarded dial to an address that is
// not public (see IsPublicAddr).
type RefusedAddressError struct{ Addr string }

// Error implements error.
func (e *RefusedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to non-public address %s (the operator allows such endpoints with --allow-endpoint)", e.Addr)
}

// RetryableError tells the AWS SDK's retryer that the dial would fail again.
func (e *RefusedAddressError) RetryableError() bool { return false }

// CheckDialAddress returns a *RefusedAddressError unless address, an IP
// address and port as a dialer's Control sees it, is public.
func CheckDialAddress(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !IsPublicAddr(ap.Addr()) {
		return &RefusedAddressError{Addr: address}
	}
	return nil
}

// GuardDial returns the DialContext of every outbound client that a customer
// can point somewhere (S3 endpoints, virtual-hosted bucket names, webhook
// receivers). A dial to a host:port that allowed accepts (the operator's
// --allow-endpoint list) goes through d unchecked; any other is vetted after
// name resolution, on each address about to be connected, so a name that
// resolves or re-resolves (DNS rebinding) to a non-public address cannot be
// used to reach the operator's network. allowed receives the host:port as
// dialed, with the host in lower case; nil allows nothing.
func GuardDial(d *net.Dialer, allowed func(hostPort string) bool) func(ctx context.Context, network, address string) (net.Conn, error) {
	open, guarded := *d, *d
	inner, innerCtx := d.Control, d.ControlContext
	guarded.Control = nil
	guarded.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := CheckDialAddress(address); err != nil {
			return err
		}
		switch {
		case innerCtx != nil:
			return innerCtx(ctx, network, address, c)
		case inner != nil:
			return inner(network, address, c)
		}
		return nil
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if allowed != nil && allowed(NormalizeHostPort(address)) {
			return open.DialContext(ctx, network, address)
		}
		return guarded.DialContext(ctx, network, address)
	}
}

// NormalizeHostPort lowercases the host of a host:port so that an operator's
// allowlist entry compares equal to EndpointHostPort's result and to the
// address a transport dials.
func NormalizeHostPort(hp string) string {
	h, p, err := net.SplitHostPort(strings.TrimSpace(hp))
	if err != nil {
		return strings.ToLower(strings.TrimSpace(hp))
	}
	return net.JoinHostPort(strings.ToLower(h), p)
}
