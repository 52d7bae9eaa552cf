package recsink

import "net/netip"

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

// IsPublicAddr reports whether a is a globally routable unicast address:
// the only kind a customer's S3 endpoint or webhook receiver may make recsink
// connect to, unless the operator allows its host:port. Everything else
// (loopback, private, link-local, metadata services) would let a customer
// reach into the operator's network.
func IsPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		return IsPublicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
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
