package s3

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/recsink/recsink"
)

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
	if !recsink.IsPublicAddr(ap.Addr()) {
		return &refusedAddressError{addr: address}
	}
	return nil
}
