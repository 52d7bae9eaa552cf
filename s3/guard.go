package s3

import (
	"fmt"
	"net/netip"
	"syscall"
)

// nonPublic lists address ranges that IsPrivate and its siblings miss but
// that still reach inside a network: shared address space (carrier-grade
// NAT, where some clouds put their metadata service), benchmarking,
// IETF protocol assignments and reserved space.
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

// refusedAddressError is returned by the dialer for a non-public address.
// It tells the SDK's retryer not to retry.
type refusedAddressError struct{ addr string }

func (e *refusedAddressError) Error() string {
	return fmt.Sprintf("s3: refusing to connect to non-public address %s for an AWS destination", e.addr)
}

// RetryableError tells the SDK's retryer that the dial will fail again.
func (e *refusedAddressError) RetryableError() bool { return false }

// publicOnlyControl is the dialer's Control for AWS destinations: it runs
// after name resolution, on the very address about to be connected, so a
// name that resolves (or re-resolves) to a private address cannot be used to
// reach recsink's own network (request forgery, metadata services).
func publicOnlyControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &refusedAddressError{addr: address}
	}
	if !isPublic(ap.Addr()) {
		return &refusedAddressError{addr: address}
	}
	return nil
}

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
