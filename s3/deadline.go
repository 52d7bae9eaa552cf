package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 15 * time.Second
	DefaultMinTransferRate       = 64 << 10 // bytes per second
	DefaultMinCopyRate           = 1 << 20  // bytes per second
)

// Options bound every S3 call, so that an endpoint that accepts connections
// and then never answers, or answers a trickle, cannot hold an upload for
// long: the attempt is cut, its connection closed, and the call fails as a
// *recsink.StorageError with Code "Timeout". Zero values mean the defaults.
type Options struct {
	// DialTimeout bounds connecting, name resolution included.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake of a new connection.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout is the floor of every attempt: how long the
	// endpoint may take to answer once the request is sent, and how long an
	// attempt may go without a byte moving either way.
	ResponseHeaderTimeout time.Duration
	// MinTransferRate, in bytes per second, scales an attempt's deadline
	// to its body: an attempt that sends n bytes must be done within
	// ResponseHeaderTimeout + n/MinTransferRate of its connection, so a body
	// that trickles is cut.
	MinTransferRate int64
	// MinCopyRate, in bytes per second, is the rate at which the endpoint
	// must assemble (CompleteMultipartUpload) or copy (CopyObject) an object
	// before it answers: that many more seconds per byte of the object are
	// allowed for the answer.
	MinCopyRate int64
}

// withDefaults returns o with zero and negative values replaced by the
// defaults.
func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if o.MinTransferRate <= 0 {
		o.MinTransferRate = DefaultMinTransferRate
	}
	if o.MinCopyRate <= 0 {
		o.MinCopyRate = DefaultMinCopyRate
	}
	return o
}

// AttemptTimeout returns the deadline of one attempt that sends body bytes
// and makes the endpoint assemble or copy work bytes, counted from the moment
// it has a connection (which itself takes at most DialTimeout plus
// TLSHandshakeTimeout). A call makes at most Config.MaxAttempts attempts.
func (o Options) AttemptTimeout(body, work int64) time.Duration {
	o = o.withDefaults()
	return o.ResponseHeaderTimeout + perRate(body, o.MinTransferRate) + perRate(work, o.MinCopyRate)
}

// perRate returns how long n bytes take at rate bytes per second.
func perRate(n, rate int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / float64(rate) * float64(time.Second))
}

// workKey is the context key of the bytes the endpoint must assemble or copy
// before it answers.
type workKey struct{}

// withWork tells the transport that the request makes the endpoint assemble
// or copy n bytes before it answers, so that its deadline allows for it.
func withWork(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, workKey{}, n)
}

// timeoutError is the failure of an attempt that passed its deadline: the
// endpoint accepted the connection but did not answer in time. The SDK does
// not retry it: our own upload loop does, with backoff, so that a hanging
// endpoint costs one deadline per call rather than one per attempt.
type timeoutError struct {
	after time.Duration
	what  string // what the endpoint did not do in time
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("the endpoint accepted the connection but %s within %v; connection closed", e.what, e.after)
}

// Timeout implements net.Error.
func (e *timeoutError) Timeout() bool { return true }

// Temporary implements net.Error.
func (e *timeoutError) Temporary() bool { return true }

// RetryableError tells the SDK's retryer not to retry.
func (e *timeoutError) RetryableError() bool { return false }

var _ net.Error = (*timeoutError)(nil)

// deadlineTransport bounds each request it carries (one SDK attempt) with
// a watchdog that cancels the request, which closes its connection, when
// no byte moved for the idle limit or when the whole attempt passed its
// deadline. net/http's own ResponseHeaderTimeout cannot do this: it is one
// value for every request, where CompleteMultipartUpload of a large object
// may rightly take minutes before S3-compatible servers send headers.
type deadlineTransport struct {
	base http.RoundTripper
	opts Options // with defaults
}

// RoundTrip implements http.RoundTripper.
func (t *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	work, _ := parent.Value(workKey{}).(int64)
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{
		cancel: cancel,
		floor:  t.opts.ResponseHeaderTimeout,
		answer: t.opts.ResponseHeaderTimeout + perRate(work, t.opts.MinCopyRate),
		total:  t.opts.ResponseHeaderTimeout + perRate(max(req.ContentLength, 0), t.opts.MinTransferRate) + perRate(work, t.opts.MinCopyRate),
		size:   req.ContentLength,
	}
	var tlsTimedOut atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { w.start() },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tlsTimedOut.Store(true)
			}
		},
	})
	r := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength > 0 {
		r.Body = &watchedBody{ReadCloser: req.Body, w: w}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				w.restartBody()
				return &watchedBody{ReadCloser: b, w: w}, nil
			}
		}
	} else {
		w.sent = true
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		w.stop()
		cancel(nil)
		if parent.Err() != nil {
			return nil, err
		}
		var te *timeoutError
		if errors.As(context.Cause(ctx), &te) {
			return nil, te
		}
		if tlsTimedOut.Load() {
			return nil, &timeoutError{after: t.opts.TLSHandshakeTimeout, what: "did not complete the TLS handshake"}
		}
		return nil, err
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		w.stop()
		cancel(nil)
		return resp, nil
	}
	w.answered()
	resp.Body = &watchedResponse{ReadCloser: resp.Body, w: w, ctx: ctx, parent: parent, cancel: cancel}
	return resp, nil
}

// watchdog cancels one request when no byte has moved for its idle limit,
// or when the attempt is over its total deadline. Both clocks start when
// the request has a connection: dialing has its own timeouts.
type watchdog struct {
	cancel context.CancelCauseFunc
	floor  time.Duration // idle limit while bytes flow either way
	answer time.Duration // idle limit between the end of the request and the answer
	total  time.Duration // limit of the whole attempt

	mu          sync.Mutex
	size, read  int64
	sent        bool // the request body is all read (or there is none)
	receiving   bool // the answer's headers arrived
	idle, whole *time.Timer
	stopped     bool
}

// limit returns the current idle limit and what the endpoint is failing to
// do while it runs.
func (w *watchdog) limit() (time.Duration, string) {
	switch {
	case w.receiving:
		return w.floor, "stopped sending its answer"
	case w.sent:
		return w.answer, "did not answer"
	}
	return w.floor, "stopped taking the request body"
}

func (w *watchdog) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.whole != nil {
		return
	}
	w.whole = time.AfterFunc(w.total, func() {
		w.cancel(&timeoutError{after: w.total, what: "did not answer"})
	})
	d, _ := w.limit()
	w.idle = time.AfterFunc(d, w.idleFired)
}

func (w *watchdog) idleFired() {
	w.mu.Lock()
	d, what := w.limit()
	w.mu.Unlock()
	w.cancel(&timeoutError{after: d, what: what})
}

// progress restarts the idle clock after n bytes moved.
func (w *watchdog) progress(n int, eof bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.read += int64(n)
	if eof || (w.size > 0 && w.read >= w.size) {
		w.sent = true
	}
	if w.idle != nil && !w.stopped {
		d, _ := w.limit()
		w.idle.Reset(d)
	}
}

// restartBody notes that the transport sends the body again from its start
// on a fresh connection.
func (w *watchdog) restartBody() {
	w.mu.Lock()
	w.read, w.sent = 0, false
	w.mu.Unlock()
}

// answered restarts the idle clock for the response body.
func (w *watchdog) answered() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent, w.receiving = true, true
	if w.idle != nil && !w.stopped {
		w.idle.Reset(w.floor)
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.idle != nil {
		w.idle.Stop()
		w.whole.Stop()
	}
}

// watchedBody is a request body whose reads feed the watchdog.
type watchedBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.progress(n, err == io.EOF)
	return n, err
}

// watchedResponse is a response body whose reads feed the watchdog, and
// whose end releases the request's context.
type watchedResponse struct {
	io.ReadCloser
	w           *watchdog
	ctx, parent context.Context
	cancel      context.CancelCauseFunc
}

func (b *watchedResponse) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// net/http has put the connection back in its pool by now.
		b.w.stop()
		b.cancel(nil)
	case err != nil:
		var te *timeoutError
		if b.parent.Err() == nil && errors.As(context.Cause(b.ctx), &te) {
			err = te
		}
	default:
		b.w.progress(n, false)
	}
	return n, err
}

func (b *watchedResponse) Close() error {
	err := b.ReadCloser.Close()
	b.w.stop()
	b.cancel(nil)
	return err
}
