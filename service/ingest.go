package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media"
)

// ingestRecorder finds the running recording that token opens.
func (s *Service) ingestRecorder(ctx context.Context, id, token string) (*recorder, error) {
	r := s.recorder(id)
	if r == nil {
		rec, err := s.ingestRecording(ctx, id, token)
		if err != nil {
			return nil, err
		}
		if err := s.elsewhere(rec); err != nil {
			return nil, err
		}
		return nil, recsink.Errorf(recsink.ECONFLICT, "the recording has stopped (state %s)", rec.State)
	}
	if !tokenMatches(token, r.rec.IngestTokenHash) {
		return nil, errIngestToken()
	}
	return r, nil
}

// ingestRecording reads a recording that this node does not run and checks
// the token against it. Only a recording that does not exist makes the token
// invalid: any other failure of the store (a database that is down) is
// returned as it is, so that the recorder hears 503 and retries, where a 401
// would make it give up recording.
func (s *Service) ingestRecording(ctx context.Context, id, token string) (*recsink.Recording, error) {
	rec, err := s.store.FindRecordingByID(ctx, id)
	switch {
	case recsink.ErrorCode(err) == recsink.ENOTFOUND:
		return nil, errIngestToken()
	case err != nil:
		return nil, fmt.Errorf("ingest: find recording %s: %w", id, err)
	case !tokenMatches(token, rec.IngestTokenHash):
		return nil, errIngestToken()
	}
	return rec, nil
}

func errIngestToken() error {
	return recsink.Errorf(recsink.EUNAUTHORIZED, "the ingest token is not valid for this recording")
}

// Offset implements recsink.IngestService.
func (s *Service) Offset(ctx context.Context, id, token string) (int64, error) {
	r := s.recorder(id)
	if r == nil {
		// A finished recording still answers its offset, so that a recorder
		// that reconnects after the stop learns that everything arrived.
		rec, err := s.ingestRecording(ctx, id, token)
		if err != nil {
			return 0, err
		}
		if err := s.elsewhere(rec); err != nil {
			return 0, err
		}
		return rec.BytesReceived, nil
	}
	if !tokenMatches(token, r.rec.IngestTokenHash) {
		return 0, errIngestToken()
	}
	return r.file.Offset(), nil
}

// Append implements recsink.IngestService. A new request on a recording
// takes over from one still running: see beginAppend.
func (s *Service) Append(ctx context.Context, id, token string, offset int64, body io.Reader) (int64, error) {
	r, err := s.ingestRecorder(ctx, id, token)
	if err != nil {
		return 0, err
	}
	call, err := r.beginAppend(ctx)
	if err != nil {
		return r.file.Offset(), err
	}
	defer func() {
		r.endAppend(call)
		<-r.appendSem
	}()
	r.mu.Lock()
	if r.rec.State != recsink.RecordingRecording && r.rec.State != recsink.RecordingBlocked || r.file.Finished() {
		r.mu.Unlock()
		return r.file.Offset(), recsink.Errorf(recsink.ECONFLICT, "the recording has stopped")
	}
	if r.lost() {
		// Another node claimed the recording: nothing more is taken here.
		r.mu.Unlock()
		return r.file.Offset(), recsink.ErrLeaseLost
	}
	r.mu.Unlock()
	before := r.file.Offset()
	cr := newCancelableReader(call.ctx, body)
	var in io.Reader = cr
	if before == 0 && offset <= 0 { // -1: a PUT, at the end
		// The first bytes tell the container: one that the destination's
		// file format does not take is refused before a byte is kept; the
		// object is named after it (see placeObject) and only then
		// announced.
		br := bufio.NewReader(cr)
		head, _ := br.Peek(media.SniffLen)
		kind := media.Sniff(head)
		if err := checkContainer(r.rec.Destination.FileFormat, kind); err != nil {
			cr.close()
			return 0, err
		}
		if err := r.placeObject(call.ctx, kind); err != nil {
			cr.close()
			if call.takenOver() {
				return 0, r.cutOff(call, 0)
			}
			return 0, err
		}
		r.announce()
		in = br
	}
	n, err := r.file.Append(call.ctx, in, offset)
	cr.close()
	if n > before {
		s.cfg.Observer.Received(n - before)
	}
	if err != nil && call.takenOver() {
		// Cut off by a newer request or a stop: what was synced is kept,
		// and the recorder is told.
		return n, r.cutOff(call, n)
	}
	return n, err
}

// checkContainer refuses media of a container that the destination's file
// format does not name: Matroska or WebM under mp4, MP4 under mkv. Unknown
// content is taken and stored as it is.
func checkContainer(format string, kind media.Kind) error {
	if kind == media.Unknown || formatMatches(format, kind) {
		return nil
	}
	want, other := "Matroska or WebM", recsink.FormatMP4
	if format == recsink.FormatMP4 {
		want, other = "MP4", recsink.FormatMKV
	}
	return &recsink.Error{Code: recsink.EUNSUPPORTED, Message: fmt.Sprintf(
		"the media is %s (%s), but the destination's fileFormat is %q, which takes %s: send %s, or set fileFormat to %q for new recordings",
		kind, kind.ContentType(), format, want, want, other)}
}

// appendCall is one ingest request on a recording.
type appendCall struct {
	ctx        context.Context // canceled when a newer request or a stop takes over
	cancel     context.CancelFunc
	superseded bool // a newer request took over; guarded by the recorder's mu
}

// errTakenOver is the cause of an append call's cancellation by the service:
// a newer request, a stop or a lost lease took the recording over.
var errTakenOver = errors.New("the recording was taken over")

// takenOver reports whether the service ended the call, rather than its
// client going away: interrupting the body of a call taken over ends its
// connection too, so the request's own context ends a moment after.
func (c *appendCall) takenOver() bool { return context.Cause(c.ctx) == errTakenOver }

// beginAppend makes a new ingest request the recording's current one. An
// earlier request that still runs is canceled: a recorder opens a second
// connection only when it gave up on the first, which is dead though the
// server has not noticed yet (no FIN or RST came; TCP would take minutes). It
// returns once the earlier request has ended (within appendWait), holding
// appendSem; the earlier one ends with 409, its synced bytes acknowledged.
func (r *recorder) beginAppend(ctx context.Context) (*appendCall, error) {
	actx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(errTakenOver) }
	call := &appendCall{ctx: actx, cancel: cancel}
	r.mu.Lock()
	if prev := r.appending; prev != nil {
		prev.superseded = true
		prev.cancel()
	}
	// appendCancel is what a stop cancels: the latest request, running or
	// waiting here.
	r.appending, r.appendCancel = call, cancel
	r.mu.Unlock()

	timer := time.NewTimer(appendWait)
	defer timer.Stop()
	select {
	case r.appendSem <- struct{}{}:
		if actx.Err() == nil {
			return call, nil
		}
		<-r.appendSem
	case <-actx.Done():
	case <-timer.C:
		// The earlier request is stuck in the disk, not in its body.
		r.endAppend(call)
		return nil, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 1,
			Message: "the previous upload to this recording has not ended yet; try again"}
	}
	r.endAppend(call)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, r.cutOff(call, r.file.Offset())
}

// endAppend forgets call, unless a newer request has taken its place.
func (r *recorder) endAppend(call *appendCall) {
	call.cancel()
	r.mu.Lock()
	if r.appending == call {
		r.appending, r.appendCancel = nil, nil
	}
	r.mu.Unlock()
}

// cutOff returns the 409 of a request that was canceled by a newer one or
// ended by a stop or a failure, after n bytes were received.
func (r *recorder) cutOff(call *appendCall, n int64) error {
	r.mu.Lock()
	superseded, state := call.superseded, r.rec.State
	r.mu.Unlock()
	var err *recsink.Error
	switch {
	case superseded:
		err = recsink.Errorf(recsink.ECONFLICT, "superseded by a newer upload to this recording; %d bytes were received", n)
	case state == recsink.RecordingFailed:
		err = recsink.Errorf(recsink.ECONFLICT, "the recording failed while streaming; %d bytes were received", n)
	default:
		err = recsink.Errorf(recsink.ECONFLICT, "the recording was stopped while streaming; %d bytes were received", n)
	}
	return &cutOffError{err}
}

// cutOffError is the 409 of an ingest request whose body the service no
// longer reads. A Read of it may still be blocked on a connection that died
// silently; the HTTP server can end that Read (and answer at once) with a
// read deadline in the past.
type cutOffError struct{ err *recsink.Error }

func (e *cutOffError) Error() string { return e.err.Error() }
func (e *cutOffError) Unwrap() error { return e.err }

// BodyAbandoned reports that the request's body is read no more.
func (e *cutOffError) BodyAbandoned() bool { return true }

// cancelableReader reads r but returns as soon as ctx ends, even while a
// Read of r is blocked: the body of a connection that died silently blocks
// until TCP gives up, and a newer request or a stop must not wait for that.
// A body that can be interrupted (an HTTP request's: a read deadline ends
// its Read) is read directly and interrupted when ctx ends. Any other body
// (a pipe) is read in a goroutine per Read, into a buffer of the reader's
// own, so that a Read left behind writes nowhere the caller still uses; the
// buffer goes back to the pool when that Read returns.
type cancelableReader struct {
	ctx     context.Context
	r       io.Reader
	buf     *[]byte
	res     chan readResult
	pending bool  // a Read of r runs
	err     error // what r's last Read returned, once it failed or ended
	// stop unregisters the interrupt of a body read directly; nil for one
	// read through goroutines.
	stop func() bool
}

func newCancelableReader(ctx context.Context, body io.Reader) *cancelableReader {
	c := &cancelableReader{ctx: ctx, r: body}
	if ib, ok := body.(recsink.InterruptibleBody); ok && ib.CanInterrupt() {
		c.stop = context.AfterFunc(ctx, func() {
			// Only when the service takes the call over. The request's own
			// context ends when its transport failed a Read (a body gone
			// silent past its idle deadline, a broken connection); that
			// Read has failed already, and its error is the recorder's
			// answer (408, 400), which an interrupt would hide.
			if context.Cause(ctx) == errTakenOver {
				ib.Interrupt()
			}
		})
	}
	return c
}

type readResult struct {
	n   int
	err error
}

// readBufSize is the size of cancelableReader's buffers, the spool's read size.
const readBufSize = 64 << 10

var readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// Read implements io.Reader.
func (c *cancelableReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.stop != nil {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		// Interrupted when ctx ends: the Read returns then, and the caller
		// sees ctx's error.
		return c.r.Read(p)
	}
	if !c.pending {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		if c.buf == nil {
			c.buf = readBufPool.Get().(*[]byte)
			c.res = make(chan readResult, 1)
		}
		b := (*c.buf)[:min(len(p), readBufSize)]
		c.pending = true
		go func() {
			n, err := c.r.Read(b)
			c.res <- readResult{n, err}
		}()
	}
	select {
	case res := <-c.res:
		c.pending = false
		n := copy(p, (*c.buf)[:res.n])
		if res.err != nil {
			// The body has ended: its buffer goes back now, not after the
			// sync that the caller waits for next.
			c.err = res.err
			c.close()
		}
		return n, res.err
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
}

// close gives the buffer back once no Read of r uses it, and unregisters
// the interrupt of a body read directly.
func (c *cancelableReader) close() {
	if c.stop != nil {
		c.stop()
	}
	if c.buf == nil {
		return
	}
	buf, res, pending := c.buf, c.res, c.pending
	c.buf = nil
	if !pending {
		readBufPool.Put(buf)
		return
	}
	go func() {
		<-res
		readBufPool.Put(buf)
	}()
}
