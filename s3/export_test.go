package s3

import (
	"net"
	"net/http"
)

// NewWithResolver returns a Storage whose own HTTP client resolves names with
// r, so that tests can make any name resolve anywhere.
func NewWithResolver(cfg Config, r *net.Resolver) *Storage {
	s := New(cfg)
	hc := newHTTPClient(s.opts, func(hp string) bool { return s.allow[hp] }, r, cfg.RootCAs)
	hc.Transport = &deadlineTransport{base: hc.Transport, opts: s.opts}
	s.http = hc
	return s
}

// NewDeadlineTransport returns the transport that bounds each attempt, over
// base, for tests of its clocks without the SDK.
func NewDeadlineTransport(base http.RoundTripper, o Options) http.RoundTripper {
	return &deadlineTransport{base: base, opts: o.withDefaults()}
}

// ClassifyAssumeRole names the reason of an STS refusal, for table tests.
var ClassifyAssumeRole = classifyAssumeRole

// StorageErrorOf converts an SDK error as the clients do, for table tests
// of the classification.
var StorageErrorOf = storageError
