package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/http"
	"github.com/recsink/recsink/internal/humanize"
)

// defaultURL is where the client commands find recsink by default: the
// address `recsink serve` listens on by default.
const defaultURL = "http://127.0.0.1:8080"

// clientFlags are the flags of the commands that call a running server.
type clientFlags struct {
	url    string
	apiKey string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", defaultURL, "base URL of the recsink server")
	fs.StringVar(&f.apiKey, "api-key", "", "the organization's API key")
}

// client returns the API client, once both flags are usable.
func (f *clientFlags) client(hc *nethttp.Client) (*http.Client, error) {
	if f.apiKey == "" {
		return nil, fmt.Errorf("an API key is required: --api-key or RECSINK_API_KEY (recsink org create prints one)")
	}
	if !strings.HasPrefix(f.url, "http://") && !strings.HasPrefix(f.url, "https://") {
		return nil, fmt.Errorf("--url must be an http:// or https:// URL, such as %s", defaultURL)
	}
	c := http.NewClient(f.url, f.apiKey)
	c.HTTPClient = hc
	return c, nil
}

// parseArgs parses flags given before or after the positional arguments
// and returns those, then fills flags from RECSINK_* variables.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// recordCmd is `recsink record` with its tunables; tests shrink them.
type recordCmd struct {
	// ChunkSize is the most bytes sent in one PATCH. The resend buffer
	// holds at most about one chunk: the bytes past the last offset
	// recsink acknowledged.
	ChunkSize int
	// RetryBudget is the longest run of failures without progress before
	// the command gives up.
	RetryBudget time.Duration
	// WaitBudget is how long the command waits for the object after the
	// stop.
	WaitBudget time.Duration
	// Refresh is how often the progress line is redrawn on a terminal;
	// LogEvery how often a progress line is printed to anything else.
	Refresh  time.Duration
	LogEvery time.Duration
	// PollEvery is how often the recording is fetched for its progress.
	PollEvery time.Duration
	// HTTPClient sends the requests; nil means http.DefaultHTTPClient.
	HTTPClient *nethttp.Client
	// TTY forces the terminal (true) or log (false) progress display;
	// nil means detect it from stderr.
	TTY *bool

	status recordingStatus
}

func newRecordCmd() *recordCmd {
	return &recordCmd{
		ChunkSize:   4 << 20,
		RetryBudget: 10 * time.Minute,
		WaitBudget:  10 * time.Minute,
		Refresh:     500 * time.Millisecond,
		LogEvery:    5 * time.Second,
		PollEvery:   time.Second,
	}
}

const recordUsage = "usage: recsink record --meeting ID [--url URL] [--api-key KEY] [FILE]"

// runRecord runs `recsink record --meeting ID [FILE]`: start a recording,
// stream FILE (or stdin) into it with the resumable ingest, stop it, wait
// for the object and print where it is.
func runRecord(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return newRecordCmd().run(ctx, args, stdin, stdout, stderr)
}

func (c *recordCmd) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cf clientFlags
	var meetingID string
	fs := flag.NewFlagSet("recsink record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, recordUsage)
		fmt.Fprintln(stderr, "Streams FILE, or standard input (such as ffmpeg ... -f matroska - | recsink record ...), into a new recording.")
		fs.PrintDefaults()
	}
	cf.register(fs)
	fs.StringVar(&meetingID, "meeting", "", "ID of the meeting to record in")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if meetingID == "" || len(pos) > 1 {
		return errors.New(recordUsage)
	}
	api, err := cf.client(c.HTTPClient)
	if err != nil {
		return err
	}

	in, name := stdin, "standard input"
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, pos[0]
	} else if isTerminal(stdin) {
		return fmt.Errorf("standard input is a terminal: give a FILE, or pipe media in (ffmpeg ... -f matroska - | recsink record --meeting ID)")
	}

	// Requests use a context that Ctrl-C does not cancel: an interrupt
	// stops reading the input, and what was read is still sent, the
	// recording stopped and its object awaited.
	ioCtx := context.WithoutCancel(ctx)
	rec, ingestURL, token, err := api.StartRecording(ctx, meetingID)
	if err != nil {
		return fmt.Errorf("start recording in meeting %s: %w", meetingID, err)
	}
	fmt.Fprintf(stderr, "recording %s started; streaming %s to %s\n", rec.ID, name, rec.ObjectKey)

	quit := make(chan struct{})
	defer close(quit)
	s := newStream(&http.Uploader{URL: ingestURL, Token: token, HTTPClient: c.HTTPClient}, in, ctx.Done(), quit, c.ChunkSize)
	p := newProgress(stderr, c.tty(stderr), c.Refresh, c.LogEvery)
	stopProgress := p.start(func() string { return c.streamLine(ioCtx, api, rec.ID, s) })
	err = s.run(ioCtx, api, rec.ID, c.RetryBudget, p.note)
	stopProgress()

	if err != nil {
		// Do not leave the recording running: stop it with what recsink
		// acknowledged. The stop may fail too when recsink is unreachable.
		sctx, cancel := context.WithTimeout(ioCtx, 10*time.Second)
		defer cancel()
		if _, serr := api.StopRecording(sctx, rec.ID); serr == nil {
			fmt.Fprintf(stderr, "recording %s stopped with the %d bytes recsink acknowledged\n", rec.ID, s.acked.Load())
		} else if recsink.ErrorCode(serr) != recsink.ECONFLICT {
			fmt.Fprintf(stderr, "recording %s could not be stopped: %v\n", rec.ID, serr)
		}
		return fmt.Errorf("recording %s: %w", rec.ID, err)
	}
	if s.interrupted {
		fmt.Fprintf(stderr, "interrupted: stopping recording %s with the %s read\n", rec.ID, humanize.Bytes(s.read.Load()))
	}
	if s.inErr != nil {
		fmt.Fprintf(stderr, "reading %s failed: %v; stopping recording %s with the %s read\n", name, s.inErr, rec.ID, humanize.Bytes(s.read.Load()))
	}

	if _, err := api.StopRecording(ioCtx, rec.ID); err != nil && recsink.ErrorCode(err) != recsink.ECONFLICT {
		return fmt.Errorf("stop recording %s: %w", rec.ID, err)
	}
	stopProgress = p.start(func() string { return c.waitLine(rec.ID) })
	final, err := c.wait(ioCtx, api, rec.ID)
	stopProgress()
	if err != nil {
		return err
	}

	sum := hex.EncodeToString(s.hash.Sum(nil))
	size := int64(-1)
	if final.SizeBytes != nil {
		size = *final.SizeBytes
	}
	fmt.Fprintf(stdout, "recording: %s\n", final.ID)
	fmt.Fprintf(stdout, "bucket: %s\n", final.Destination.Bucket)
	fmt.Fprintf(stdout, "object key: %s\n", final.ObjectKey)
	fmt.Fprintf(stdout, "size: %d\n", size)
	fmt.Fprintf(stdout, "sha256: %s\n", final.SHA256)
	if final.Checksum != "" {
		fmt.Fprintf(stdout, "checksum: %s\n", final.Checksum)
	}
	// The SHA-256 is of the bytes received; the object may be longer than
	// them when recsink finalized a live Matroska, WebM or MP4 stream (a
	// duration and an index).
	if final.BytesReceived != s.read.Load() || final.SHA256 != sum {
		return fmt.Errorf("recording %s: recsink received %d bytes with SHA-256 %s; %d bytes were sent, SHA-256 %s",
			final.ID, final.BytesReceived, final.SHA256, s.read.Load(), sum)
	}
	if s.inErr != nil {
		return fmt.Errorf("read %s: %w", name, s.inErr)
	}
	return nil
}

// tty reports whether progress is drawn in place on w.
func (c *recordCmd) tty(w io.Writer) bool {
	if c.TTY != nil {
		return *c.TTY
	}
	return isTerminal(w)
}

// isTerminal reports whether v is a character device such as a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// recordingStatus is the last recording fetched for the progress line.
type recordingStatus struct {
	mu      sync.Mutex
	rec     *recsink.Recording
	fetched time.Time
}

// poll fetches the recording at most every PollEvery.
func (c *recordCmd) poll(ctx context.Context, api *http.Client, id string) *recsink.Recording {
	c.status.mu.Lock()
	defer c.status.mu.Unlock()
	if time.Since(c.status.fetched) >= c.PollEvery {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rec, _, err := api.FindRecording(pctx, id)
		cancel()
		c.status.fetched = time.Now()
		if err == nil {
			c.status.rec = rec
		}
	}
	return c.status.rec
}

// streamLine is the progress line while media streams.
func (c *recordCmd) streamLine(ctx context.Context, api *http.Client, id string, s *stream) string {
	sent, acked := s.sent.Load(), s.acked.Load()
	durable, uploaded := acked, int64(0)
	if rec := c.poll(ctx, api, id); rec != nil {
		durable, uploaded = max(acked, rec.BytesReceived), rec.BytesUploaded
	}
	line := fmt.Sprintf("sent %s (%s/s), durable %s, in S3 %s", humanize.Bytes(sent), humanize.Bytes(s.rate(sent)), humanize.Bytes(durable), humanize.Bytes(uploaded))
	if st := s.state(); st != "" {
		line += ", " + st
	}
	return line
}

// waitLine is the progress line while the object completes.
func (c *recordCmd) waitLine(id string) string {
	c.status.mu.Lock()
	defer c.status.mu.Unlock()
	rec := c.status.rec
	if rec == nil {
		return "stopping"
	}
	line := fmt.Sprintf("%s: in S3 %s of %s", rec.State, humanize.Bytes(rec.BytesUploaded), humanize.Bytes(rec.BytesReceived))
	if rec.LastError != "" {
		line += " (" + rec.LastError + ")"
	}
	return line
}

// wait polls the recording until its object is complete.
func (c *recordCmd) wait(ctx context.Context, api *http.Client, id string) (*recsink.Recording, error) {
	deadline := time.Now().Add(c.WaitBudget)
	for {
		rec, _, err := api.FindRecording(ctx, id)
		if err == nil {
			c.status.mu.Lock()
			c.status.rec, c.status.fetched = rec, time.Now()
			c.status.mu.Unlock()
			switch rec.State {
			case recsink.RecordingUploaded:
				return rec, nil
			case recsink.RecordingFailed:
				return nil, fmt.Errorf("recording %s failed: %s", id, rec.LastError)
			case recsink.RecordingDeleted:
				return nil, fmt.Errorf("recording %s was deleted", id)
			}
		} else if !http.Retryable(err) {
			return nil, fmt.Errorf("recording %s: %w", id, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("recording %s is not complete after %s (state %s); it completes in the background: GET /v1/recordings/%s shows it",
				id, c.WaitBudget, stateOf(rec), id)
		}
		time.Sleep(min(c.PollEvery, 250*time.Millisecond)) // polling under a deadline; ctx is never canceled here
	}
}

func stateOf(rec *recsink.Recording) string {
	if rec == nil {
		return "unknown"
	}
	return rec.State
}

// inputReadSize is the size of each read of the input.
const inputReadSize = 64 << 10

// stream sends the input to the ingest URL with tus PATCH requests and
// resumes by itself across failures. It keeps the bytes past the last
// offset recsink acknowledged (recsink acknowledges bytes only once they
// are synced to its disk) and resends them after asking the offset.
type stream struct {
	up    *http.Uploader
	ch    <-chan []byte   // the input's reads; closed at its end
	stop  <-chan struct{} // closed on Ctrl-C: read no more
	chunk int

	// mu guards the buffer against a request body that the transport may
	// still read after the request failed.
	mu          sync.Mutex
	buf         []byte // bytes from offset acked on, not yet acknowledged
	eof         bool   // no more input will be taken
	interrupted bool
	inErr       error // the input's read error other than EOF
	inErrp      *error
	hash        hash.Hash // of every byte taken from the input, in order
	retrying    string

	readN atomic.Int64 // bytes read from the input
	read  atomic.Int64 // bytes taken into the buffer
	sent  atomic.Int64 // the highest offset written to a request
	acked atomic.Int64 // bytes recsink confirmed durable

	rateMu   sync.Mutex
	rateAt   time.Time
	rateSent int64
	rateVal  float64
}

func newStream(up *http.Uploader, in io.Reader, stop, quit <-chan struct{}, chunk int) *stream {
	ch := make(chan []byte, 16)
	s := &stream{up: up, ch: ch, stop: stop, chunk: chunk, hash: sha256.New(), inErrp: new(error), rateAt: time.Now()}
	go s.readInput(in, ch, quit)
	return s
}

// readInput reads r into ch until its end or Ctrl-C. It may stay blocked in
// a read of a terminal or pipe after the command is done; the process
// exits anyway.
func (s *stream) readInput(r io.Reader, ch chan<- []byte, quit <-chan struct{}) {
	defer close(ch)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		b := make([]byte, inputReadSize)
		n, err := r.Read(b)
		if n > 0 {
			s.readN.Add(int64(n))
			select {
			case ch <- b[:n]:
			case <-quit:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				*s.inErrp = err // read by the stream after ch is closed
			}
			return
		}
	}
}

// take waits for the next read of the input and appends it to the buffer.
// It returns false when done closes first. The caller holds s.mu.
func (s *stream) take(done <-chan struct{}) bool {
	add := func(b []byte, ok bool) {
		if !ok {
			s.eof, s.inErr = true, *s.inErrp
			return
		}
		s.buf = append(s.buf, b...)
		s.hash.Write(b)
		s.read.Add(int64(len(b)))
	}
	// What was read already is taken before a Ctrl-C is looked at.
	select {
	case b, ok := <-s.ch:
		add(b, ok)
		return true
	default:
	}
	if s.interrupted {
		if s.read.Load() == s.readN.Load() {
			// Nothing read is on its way: the reader waits for input
			// that is not sent.
			s.eof = true
			return true
		}
	} else {
		select {
		case <-s.stop:
			s.interrupted = true
			return true
		default:
		}
	}
	select {
	case b, ok := <-s.ch:
		add(b, ok)
	case <-s.stop:
		s.interrupted = true
	case <-done:
		return false
	}
	return true
}

// errBodyClosed ends a request body read after its request was given up.
var errBodyClosed = errors.New("request body closed")

// patchBody is one PATCH request's body: the unacknowledged buffer, then
// new input, up to the chunk size.
type patchBody struct {
	s      *stream
	pos    int
	done   chan struct{}
	once   sync.Once
	closed bool // guarded by s.mu
}

func (b *patchBody) Read(p []byte) (int, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for !b.closed && b.pos >= len(s.buf) {
		if s.eof || len(s.buf) >= s.chunk {
			return 0, io.EOF
		}
		if !s.take(b.done) {
			b.closed = true
		}
	}
	if b.closed {
		return 0, errBodyClosed
	}
	n := copy(p, s.buf[b.pos:])
	b.pos += n
	if end := s.acked.Load() + int64(b.pos); end > s.sent.Load() {
		s.sent.Store(end)
	}
	return n, nil
}

// Close ends the body; a Read waiting for input returns at once.
func (b *patchBody) Close() error {
	b.once.Do(func() { close(b.done) })
	b.s.mu.Lock()
	b.closed = true
	b.s.mu.Unlock()
	return nil
}

// ack drops the bytes before offset n from the buffer.
func (s *stream) ack(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked := s.acked.Load()
	if n < acked || n > acked+int64(len(s.buf)) {
		return fmt.Errorf("recsink reports %d bytes received, but %d were acknowledged before and %d sent since", n, acked, len(s.buf))
	}
	s.buf = append(s.buf[:0], s.buf[n-acked:]...)
	s.acked.Store(n)
	return nil
}

func (s *stream) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eof && len(s.buf) == 0
}

// state is what the progress line adds about retries.
func (s *stream) state() string {
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	return s.retrying
}

func (s *stream) setState(v string) {
	s.rateMu.Lock()
	s.retrying = v
	s.rateMu.Unlock()
}

// rate returns the send rate in bytes per second, smoothed.
func (s *stream) rate(sent int64) int64 {
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	now := time.Now()
	if dt := now.Sub(s.rateAt).Seconds(); dt >= 0.2 {
		v := float64(sent-s.rateSent) / dt
		s.rateVal = 0.7*v + 0.3*s.rateVal
		s.rateAt, s.rateSent = now, sent
	}
	return int64(s.rateVal)
}

// run sends the input until its end (or Ctrl-C) and every byte is
// acknowledged. On a failure it waits with capped exponential backoff and
// jitter (or the server's Retry-After), asks the offset, drops what was
// acknowledged and goes on; it gives up after budget without progress.
func (s *stream) run(ctx context.Context, api *http.Client, id string, budget time.Duration, note func(string)) error {
	var failingSince time.Time
	var failures int
	for !s.done() {
		acked := s.acked.Load()
		body := &patchBody{s: s, done: make(chan struct{})}
		n, err := s.up.Patch(ctx, acked, body)
		body.Close()
		if err == nil {
			if err := s.ack(n); err != nil {
				return err
			}
			failures, failingSince = 0, time.Time{}
			s.setState("")
			continue
		}

		// Recover: wait, ask the offset, resend from there.
		for {
			var wait time.Duration
			switch code := recsink.ErrorCode(err); {
			case code == recsink.ECONFLICT:
				// The offset moved (a request cut off on our side was still
				// being finished), another request is still running, or the
				// recording takes no more media.
				rec, _, ferr := api.FindRecording(ctx, id)
				if ferr == nil && rec.State != recsink.RecordingRecording && rec.State != recsink.RecordingBlocked {
					return fmt.Errorf("recsink takes no more media (state %s%s) after %d bytes; %d bytes of the input were not sent",
						rec.State, stopReason(rec), s.acked.Load(), s.read.Load()-s.acked.Load())
				}
				wait = backoff(failures)
			case code == recsink.EUNAVAILABLE && err.(*recsink.Error).RetryAfter > 0:
				wait = min(time.Duration(err.(*recsink.Error).RetryAfter)*time.Second, time.Minute)
				wait += time.Duration(rand.Int64N(int64(wait)/4 + 1))
			case http.Retryable(err):
				wait = backoff(failures)
			default:
				return err
			}
			failures++
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > budget {
				return fmt.Errorf("gave up after %s without progress: %w", budget, err)
			}
			s.setState(fmt.Sprintf("retrying in %.1fs (attempt %d)", wait.Seconds(), failures))
			note(fmt.Sprintf("upload interrupted at %s: %v; resuming in %.1fs", humanize.Bytes(s.acked.Load()), describe(err), wait.Seconds()))
			time.Sleep(wait) // ctx is never canceled: Ctrl-C still flushes

			off, oerr := s.up.Offset(ctx)
			if oerr != nil {
				err = oerr
				continue
			}
			if off > s.acked.Load() {
				failures, failingSince = 0, time.Time{} // progress
			}
			if err := s.ack(off); err != nil {
				return err
			}
			note(fmt.Sprintf("resuming at %s: recsink holds that much durably", humanize.Bytes(off)))
			s.setState("")
			break
		}
	}
	return nil
}

func stopReason(rec *recsink.Recording) string {
	if rec.StopReason == "" {
		return ""
	}
	return ", stopped: " + rec.StopReason
}

// describe returns an error's message for people: the API's message for an
// error answer.
func describe(err error) string {
	var e *recsink.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// backoff returns the wait before retry n: 250 ms doubling to 10 s, with
// full jitter so that many recorders cut off together do not return
// together.
func backoff(n int) time.Duration {
	d := min(250*time.Millisecond<<min(n, 6), 10*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// progress draws a status line on stderr: redrawn in place on a terminal,
// printed every few seconds elsewhere.
type progress struct {
	w        io.Writer
	tty      bool
	refresh  time.Duration
	logEvery time.Duration

	mu    sync.Mutex
	drawn bool // a line is on screen without its newline (tty)
	line  func() string
}

func newProgress(w io.Writer, tty bool, refresh, logEvery time.Duration) *progress {
	return &progress{w: w, tty: tty, refresh: refresh, logEvery: logEvery}
}

// start draws line() until the returned function is called, which draws
// it a last time.
func (p *progress) start(line func() string) (stop func()) {
	every := p.logEvery
	if p.tty {
		every = p.refresh
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.draw(line())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			p.draw(line())
			p.mu.Lock()
			if p.drawn {
				fmt.Fprintln(p.w)
				p.drawn = false
			}
			p.mu.Unlock()
		})
	}
}

func (p *progress) draw(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", s)
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, s)
}

// note prints a line of its own above the progress line.
func (p *progress) note(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(p.w, s)
}
