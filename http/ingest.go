package http

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recsink/recsink"
)

// The ingest routes take media from recorders at
// /v1/recordings/{recordingId}/ingest, authenticated by the recording's
// ingest token: "Authorization: Bearer <token>", or the query parameter
// "token" for recorders that cannot set headers (such as ffmpeg without
// -headers). The request log records the path without the query, so the
// token is never logged.
//
// Two protocols share the URL:
//   - PUT streams the body (chunked or sized) onto the end of the recording:
//     what "ffmpeg -method PUT" and "curl -T -" send.
//   - tus 1.0.0 core (https://tus.io/protocols/resumable-upload): HEAD for
//     the offset, PATCH to append at it, OPTIONS for discovery. The upload's
//     length is deferred: it is unknown while the meeting runs.

// tusVersion is the only tus protocol version served.
const tusVersion = "1.0.0"

// ingestToken returns the token of the request.
func ingestToken(r *http.Request) (string, bool) {
	if token, ok := bearerToken(r); ok {
		return token, true
	}
	token := r.URL.Query().Get("token")
	return token, token != ""
}

// ingestRequest checks that an ingest request carries a token (the service
// checks its value before it reads any media) and replaces the server's
// whole-request read deadline, which would cut a recording that streams for
// hours, by an idle deadline: each read of the body must deliver bytes
// within IngestIdleTimeout. The returned body replaces r.Body. (The write
// deadline is set when the response starts, as on every route.)
func (s *Server) ingestRequest(w http.ResponseWriter, r *http.Request) (string, *idleBody, bool) {
	token, ok := s.ingestTokenOf(w, r)
	if !ok {
		return "", nil, false
	}
	return token, s.streamBody(w, r), true
}

// ingestTokenOf returns the request's ingest token, or answers 401.
func (s *Server) ingestTokenOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, ok := ingestToken(r)
	if !ok {
		s.Error(w, r, recsink.Errorf(recsink.EUNAUTHORIZED, "missing ingest token: send Authorization: Bearer <token> or ?token=<token>"))
	}
	return token, ok
}

// streamBody puts the idle deadline on r's body (see ingestRequest).
func (s *Server) streamBody(w http.ResponseWriter, r *http.Request) *idleBody {
	body := &idleBody{body: r.Body, rc: http.NewResponseController(w), idle: cmp.Or(s.IngestIdleTimeout, DefaultIngestIdleTimeout)}
	// ErrNotSupported only where there is no connection (tests): the
	// service then reads the body as one it cannot interrupt.
	body.interruptible = body.rc.SetReadDeadline(time.Now().Add(body.idle)) == nil
	r.Body = body
	return body
}

// idleBody is an ingest body with a rolling read deadline: each read must
// return bytes within the idle timeout, counted from the read's start, so
// that time the service spends between reads (a sync, a wait for the
// recording's previous request) is not charged to the client. It keeps the
// first error the transport gave, so that a cut or malformed body is
// answered as such whatever the service made of it.
type idleBody struct {
	body          io.ReadCloser
	rc            *http.ResponseController
	idle          time.Duration
	interruptible bool        // the connection takes read deadlines
	interrupted   atomic.Bool // see Interrupt

	mu  sync.Mutex
	err error
}

var _ recsink.InterruptibleBody = (*idleBody)(nil)

// errInterrupted is what a Read returns once the service has interrupted
// the body: the service knows why, and says so.
var errInterrupted = errors.New("the body's read was interrupted: the recording was taken over or stopped")

func (b *idleBody) Read(p []byte) (int, error) {
	if b.interrupted.Load() {
		return 0, errInterrupted
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	if b.interrupted.Load() {
		// Interrupt ran since the check above, and its deadline may have
		// been replaced by this one.
		_ = b.rc.SetReadDeadline(time.Now())
	}
	n, err := b.body.Read(p)
	if b.interrupted.Load() && err != nil && err != io.EOF {
		return n, errInterrupted // the deadline Interrupt set, not the client's doing
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *idleBody) Close() error { return b.body.Close() }

// CanInterrupt implements recsink.InterruptibleBody.
func (b *idleBody) CanInterrupt() bool { return b.interruptible }

// Interrupt implements recsink.InterruptibleBody: a read deadline in the
// past ends a Read blocked on the connection at once. The connection is not
// used again.
func (b *idleBody) Interrupt() {
	b.interrupted.Store(true)
	_ = b.rc.SetReadDeadline(time.Now())
}

// failure returns the client error for the body's transport error, if
// there was one: 408 when it went silent, 400 when its chunked encoding
// was malformed, and a client-gone error when the connection broke.
func (b *idleBody) failure() error {
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if err == nil {
		return nil
	}
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return withStatus(http.StatusRequestTimeout, &recsink.Error{Code: recsink.EINVALID, Field: "body",
			Message: fmt.Sprintf("the body sent nothing for %s and was cut; what arrived before is kept: resume at Upload-Offset", b.idle)})
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &opErr), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, http.ErrBodyReadAfterClose):
		return &clientGoneError{err: err}
	}
	// What remains is net/http's chunked-encoding errors ("invalid byte in
	// chunk length"): the client's bytes are wrong. The text is net/http's
	// own and quotes no byte of the body.
	return &recsink.Error{Code: recsink.EINVALID, Field: "body",
		Message: "the request body is malformed (" + err.Error() + "); what arrived before it is kept: resume at Upload-Offset"}
}

// clientGoneError is a body that broke off: nobody is left to answer.
type clientGoneError struct{ err error }

func (e *clientGoneError) Error() string { return "client went away: " + e.err.Error() }
func (e *clientGoneError) Unwrap() error { return e.err }

// handleIngestPut handles PUT /v1/recordings/{recordingId}/ingest: append the
// streamed body at the end of the recording. The body is passed on as it
// arrives, never buffered whole.
func (s *Server) handleIngestPut(w http.ResponseWriter, r *http.Request) {
	token, body, ok := s.ingestRequest(w, r)
	if !ok {
		return
	}
	id := r.PathValue("recordingId")
	offset, err := s.IngestService.Append(r.Context(), id, token, -1, r.Body)
	if err != nil {
		s.ingestError(w, r, id, token, offset, body, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.WriteHeader(http.StatusNoContent)
}

// handleIngestOptions handles OPTIONS: tus discovery, no authentication.
// No tus extension is served, so Tus-Extension is omitted as the protocol
// requires.
func (s *Server) handleIngestOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Tus-Version", tusVersion)
	w.WriteHeader(http.StatusNoContent)
}

// handleIngestHead handles HEAD: the tus offset of the upload.
func (s *Server) handleIngestHead(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Cache-Control", "no-store")
	token, ok := s.ingestTokenOf(w, r)
	if !ok {
		return
	}
	offset, err := s.IngestService.Offset(r.Context(), r.PathValue("recordingId"), token)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.Header().Set("Upload-Defer-Length", "1")
	w.WriteHeader(http.StatusOK)
}

// handleIngestPatch handles PATCH: append the body at Upload-Offset, tus core.
func (s *Server) handleIngestPatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	token, ok := s.ingestTokenOf(w, r)
	if !ok {
		return
	}
	offset, err := parseTusPatch(r.Header)
	if err != nil {
		if recsink.ErrorField(err) == "Tus-Resumable" {
			w.Header().Set("Tus-Version", tusVersion)
		}
		s.Error(w, r, err)
		return
	}
	body := s.streamBody(w, r)
	id := r.PathValue("recordingId")
	n, err := s.IngestService.Append(r.Context(), id, token, offset, r.Body)
	if err != nil {
		s.ingestError(w, r, id, token, n, body, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusNoContent)
}

// maxOffsetDigits is the length of the largest int64, 9223372036854775807.
const maxOffsetDigits = 19

// parseTusPatch checks the tus headers of a PATCH and returns its
// Upload-Offset. Each error names the header at fault: 412 for the
// protocol version, 415 for the media type, 400 for the offset.
func parseTusPatch(h http.Header) (int64, error) {
	if v := h.Values("Tus-Resumable"); len(v) != 1 || v[0] != tusVersion {
		return 0, withStatus(http.StatusPreconditionFailed,
			&recsink.Error{Code: recsink.EINVALID, Field: "Tus-Resumable", Message: "Tus-Resumable must be " + tusVersion})
	}
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "application/offset+octet-stream" || len(h.Values("Content-Type")) != 1 {
		return 0, withStatus(http.StatusUnsupportedMediaType,
			&recsink.Error{Code: recsink.EINVALID, Field: "Content-Type", Message: "Content-Type must be application/offset+octet-stream"})
	}
	bad := &recsink.Error{Code: recsink.EINVALID, Field: "Upload-Offset",
		Message: "Upload-Offset must be the number of bytes already received (see HEAD): one whole number from 0 to 9223372036854775807"}
	v := h.Values("Upload-Offset")
	if len(v) != 1 || v[0] == "" || len(v[0]) > maxOffsetDigits {
		return 0, bad
	}
	for _, c := range v[0] {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	offset, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return 0, bad // out of range
	}
	return offset, nil
}

// ingestError answers a failed append. The answer carries the offset
// acknowledged so far whenever it is known, so that the recorder resumes
// from it: after a conflict, a full spool, a body that went silent or
// broke its encoding. n is what Append returned with its error.
func (s *Server) ingestError(w http.ResponseWriter, r *http.Request, id, token string, n int64, body *idleBody, err error) {
	// A request cut off by a newer one (its connection presumed dead), a
	// stop or a failure: a Read of its body may be blocked still, which
	// holds the answer and the connection until the idle deadline ends it.
	// End it now.
	var cut interface{ BodyAbandoned() bool }
	if errors.As(err, &cut) && cut.BodyAbandoned() {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	if berr := body.failure(); berr != nil {
		// The service saw only a failed read; the transport knows why.
		err = berr
	}
	var gone *clientGoneError
	if errors.As(err, &gone) {
		s.logger().DebugContext(r.Context(), "http: client went away mid-body", "method", r.Method, "path", r.URL.Path, "recording", id, "err", err)
		w.WriteHeader(499)
		return
	}
	if _, ok := asElsewhere(err); ok {
		// Sent on to the owner node with the body still unread: the
		// stream runs on under the idle deadline.
		s.Error(w, r, err)
		return
	}
	switch recsink.ErrorCode(err) {
	case recsink.EUNAUTHORIZED, recsink.ENOTFOUND:
	default:
		s.setOffset(w, r, id, token, n)
	}
	s.Error(w, r, err)
}

// setOffset sets Upload-Offset to the recording's offset. The request's
// context may be done if the client went away; the offset is still worth
// reporting to one that did not. When the service cannot say (its database
// is down), n, the durable offset Append reached, stands in if it is known.
func (s *Server) setOffset(w http.ResponseWriter, r *http.Request, id, token string, n int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Second)
	defer cancel()
	offset, err := s.IngestService.Offset(ctx, id, token)
	switch {
	case err == nil:
	case n > 0:
		offset = n
	default:
		if !errors.Is(err, context.DeadlineExceeded) && recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
			s.logger().WarnContext(r.Context(), "http: ingest offset after failed append", "recording", id, "err", err)
		}
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
}
