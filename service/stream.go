package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media/mkvmux"
)

// DefaultStreamGrace is how long a live recording waits for its publisher
// to come back after the connection dropped (--stream-grace).
const DefaultStreamGrace = 30 * time.Second

// LiveObserver is told about live publishes, for metrics. Implemented by
// package metrics.
type LiveObserver interface {
	PublishStarted(protocol string)
	PublishEnded(protocol string)
}

// LiveConfig is what Live needs.
type LiveConfig struct {
	Keys recsink.StreamKeyStore
	// Recordings and Ingest are the same services the HTTP API uses: a
	// publish starts, feeds and stops its recording through them, so it gets
	// the drain view, the webhooks, rotation, the blocked state and the
	// maximum duration of any recording.
	Recordings recsink.RecordingService
	Ingest     recsink.IngestService
	// Storage, when set, tells the room's file format before a recording
	// starts, so that an mp4 room refuses a publish without starting one.
	Storage recsink.StorageService
	// Grace is how long a recording waits for a publisher whose connection
	// dropped; zero means DefaultStreamGrace.
	Grace    time.Duration
	Logger   *slog.Logger
	Observer LiveObserver // optional
}

// Live runs the recordings of live publishes (RTMP, SRT): one session per
// room, which remuxes the received audio and video into Matroska and appends
// it to the room's recording. It also manages the rooms' stream keys.
type Live struct {
	cfg    LiveConfig
	log    *slog.Logger
	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*liveSession // by meeting ID
	closed   bool
	wg       sync.WaitGroup
}

var _ recsink.StreamKeyService = (*Live)(nil)

// NewLive returns a Live; Close ends its sessions.
func NewLive(cfg LiveConfig) *Live {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultStreamGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopLiveObserver{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Live{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, sessions: map[string]*liveSession{}}
}

type nopLiveObserver struct{}

func (nopLiveObserver) PublishStarted(string) {}
func (nopLiveObserver) PublishEnded(string)   {}

// Close ends every live session: each recording is stopped with what it
// received (a publisher that comes back starts a new one).
func (l *Live) Close() {
	l.mu.Lock()
	l.closed = true
	var ss []*liveSession
	for _, s := range l.sessions {
		ss = append(ss, s)
	}
	l.mu.Unlock()
	for _, s := range ss {
		s.finish("recsink is shutting down")
	}
	l.wg.Wait()
	l.cancel()
}

// LiveStatus implements recsink.StreamKeyService.
func (l *Live) LiveStatus(meetingID string) (bool, string) {
	l.mu.Lock()
	s := l.sessions[meetingID]
	l.mu.Unlock()
	if s == nil {
		return false, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A session in its grace period waits for its publisher: not live.
	return s.pub != nil, s.protocol
}

// errStreamKey is the refusal of a wrong or revoked key. The key itself is
// never logged or echoed.
func errStreamKey() error {
	return recsink.Errorf(recsink.EUNAUTHORIZED, "the stream key is not valid")
}

// Publish authenticates a publisher by its stream key and returns the
// publication that takes its media. A wrong or revoked key is EUNAUTHORIZED;
// a key already live is ECONFLICT. A publisher that comes back within the
// grace period with the same tracks continues the same recording.
//
// since is when the publisher's media began to arrive (before the tracks
// were known): a resumed recording's gap is the outage up to then.
func (l *Live) Publish(ctx context.Context, protocol, key string, tracks mkvmux.Tracks, since time.Time) (*Publication, error) {
	if !recsink.ValidStreamKeyShape(key) {
		return nil, errStreamKey()
	}
	k, err := l.cfg.Keys.FindStreamKeyByHash(ctx, recsink.HashToken(key))
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, errStreamKey()
	} else if err != nil {
		return nil, fmt.Errorf("live: find stream key: %w", err)
	}

	var s *liveSession
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2, Message: "recsink is shutting down"}
		}
		s = l.sessions[k.MeetingID]
		if s == nil {
			break // l.mu held
		}
		pub, err := s.resume(protocol, tracks, since)
		l.mu.Unlock()
		switch {
		case err == nil:
			l.touch(k.MeetingID)
			return pub, nil
		case errors.Is(err, errOtherTracks):
			// Different tracks cannot continue the same Matroska stream:
			// the waiting recording ends and a new one starts.
			s.finish("the publisher came back with other tracks")
		case errors.Is(err, errEnding):
		default:
			return nil, err
		}
		// The session is ending (its grace period just ran out, or the
		// tracks differ): once it has, this publish starts a new one.
		select {
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The session is in the map while the recording starts, so that a
	// second publisher is refused meanwhile.
	s = &liveSession{l: l, orgID: k.OrgID, meetingID: k.MeetingID, protocol: protocol, starting: true,
		appendDone: make(chan struct{}), done: make(chan struct{})}
	l.sessions[k.MeetingID] = s
	l.mu.Unlock()

	pub, err := s.start(ctx, tracks)
	if err != nil {
		l.mu.Lock()
		delete(l.sessions, k.MeetingID)
		l.mu.Unlock()
		return nil, err
	}
	l.touch(k.MeetingID)
	return pub, nil
}

// touch records the publish on the key; best effort.
func (l *Live) touch(meetingID string) {
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	if err := l.cfg.Keys.TouchStreamKey(ctx, meetingID, recsink.Now()); err != nil {
		l.log.Warn("record the last publish of a stream key", "meeting", meetingID, "err", err)
	}
}

var (
	errOtherTracks = errors.New("other tracks")
	errEnding      = errors.New("the session is ending")
)

// liveSession is one room's live recording: from the first publish to the
// end of the stream, or the end of the grace period after a drop.
type liveSession struct {
	l                  *Live
	orgID, meetingID   string
	protocol           string
	recordingID, token string

	mu       sync.Mutex
	starting bool
	mux      *mkvmux.Muxer
	pw       *io.PipeWriter
	pub      *Publication // the current publisher; nil in the grace period
	grace    *time.Timer
	lastWall time.Time // when the last frame was written
	ended    bool

	appendDone chan struct{}
	appendErr  error
	done       chan struct{}
}

// start starts the room's recording and its remuxer.
func (s *liveSession) start(ctx context.Context, tracks mkvmux.Tracks) (*Publication, error) {
	l := s.l
	if err := l.checkFormat(ctx, s.orgID, s.meetingID); err != nil {
		return nil, err
	}
	rec, token, err := l.cfg.Recordings.StartRecording(recsink.WithSource(ctx, s.protocol), s.orgID, s.meetingID)
	if err != nil {
		return nil, err
	}
	s.recordingID, s.token = rec.ID, token
	if rec.Destination.FileFormat != "mkv" {
		// The remuxer writes Matroska only; an mp4 room refuses live input
		// rather than store Matroska under a .mp4 name.
		_, _ = l.cfg.Recordings.StopRecording(context.WithoutCancel(ctx), s.orgID, rec.ID)
		return nil, errFormat(rec.Destination.FileFormat)
	}
	pr, pw := io.Pipe()
	s.pw = pw
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_, err := l.cfg.Ingest.Append(l.ctx, rec.ID, token, -1, pr)
		if err == nil {
			err = io.ErrClosedPipe
		}
		pr.CloseWithError(err)
		s.appendErr = err
		close(s.appendDone)
		// The recording ended on its own side (a stop by the API, the
		// maximum duration, a failure): so does the publish.
		go s.finish("the recording ended: " + recsink.ErrorMessage(err))
	}()
	// The header goes through the pipe: Append reads it.
	mux, err := mkvmux.New(pw, tracks)
	if err != nil {
		pw.Close()
		<-s.appendDone
		_, _ = l.cfg.Recordings.StopRecording(context.WithoutCancel(ctx), s.orgID, rec.ID)
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starting = false
	s.mux = mux
	s.lastWall = time.Now()
	s.pub = &Publication{s: s}
	l.cfg.Observer.PublishStarted(s.protocol)
	l.log.Info("live publish started", "protocol", s.protocol, "meeting", s.meetingID, "recording", rec.ID)
	return s.pub, nil
}

// resume gives the session to a publisher that came back, within the grace
// period. Called with l.mu held.
func (s *liveSession) resume(protocol string, tracks mkvmux.Tracks, since time.Time) (*Publication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.starting || s.pub != nil:
		return nil, recsink.Errorf(recsink.ECONFLICT, "the stream key is live: a second publisher is refused")
	case s.ended:
		return nil, errEnding
	case !s.mux.Tracks().Equal(tracks):
		return nil, errOtherTracks
	}
	s.grace.Stop()
	// Timestamps go on from the last frame plus the outage: the object's
	// timeline stays monotonic and keeps real time.
	gap := max(since.Sub(s.lastWall), 0)
	s.pub = &Publication{s: s, base: s.mux.Last() + gap}
	s.protocol = protocol
	s.l.cfg.Observer.PublishStarted(protocol)
	s.l.log.Info("live publish resumed", "protocol", protocol, "meeting", s.meetingID, "recording", s.recordingID, "gap", gap.Round(time.Millisecond))
	return s.pub, nil
}

// drop ends pub's part of the session: at once when the publisher ended the
// stream, else after the grace period.
func (s *liveSession) drop(pub *Publication, clean bool, why string) {
	s.mu.Lock()
	if s.pub != pub || s.ended {
		s.mu.Unlock()
		return
	}
	s.pub = nil
	s.l.cfg.Observer.PublishEnded(s.protocol)
	_ = s.mux.Flush()
	if clean {
		s.mu.Unlock()
		s.finish("the publisher ended the stream")
		return
	}
	s.l.log.Info("live publish dropped; waiting for the publisher", "meeting", s.meetingID, "recording", s.recordingID, "grace", s.l.cfg.Grace, "why", why)
	s.grace = time.AfterFunc(s.l.cfg.Grace, func() { s.finish("the publisher did not come back within the grace period") })
	s.mu.Unlock()
}

// finish ends the session: the remuxed stream is flushed and closed, the
// ingest returns once every byte is synced, and the recording is stopped.
func (s *liveSession) finish(why string) {
	s.mu.Lock()
	if s.ended || s.starting {
		s.mu.Unlock()
		return
	}
	s.ended = true
	if s.grace != nil {
		s.grace.Stop()
	}
	if s.pub != nil {
		s.pub = nil
		s.l.cfg.Observer.PublishEnded(s.protocol)
	}
	_ = s.mux.Flush()
	s.pw.Close()
	s.mu.Unlock()

	<-s.appendDone
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.l.ctx), 30*time.Second)
	defer cancel()
	if _, err := s.l.cfg.Recordings.StopRecording(ctx, s.orgID, s.recordingID); err != nil {
		s.l.log.Error("stop a live recording", "recording", s.recordingID, "err", err)
	}
	s.l.mu.Lock()
	if s.l.sessions[s.meetingID] == s {
		delete(s.l.sessions, s.meetingID)
	}
	s.l.mu.Unlock()
	s.l.log.Info("live recording ended", "meeting", s.meetingID, "recording", s.recordingID, "why", why)
	close(s.done)
}

// Publication is one publisher's connection to a live session. The protocol
// adapters (rtmp, srt) call its methods from the connection's goroutine.
type Publication struct {
	s         *liveSession
	base      time.Duration // where this connection's timeline starts in the object's
	origin    time.Duration // the connection's first timestamp
	originSet bool
}

// RecordingID returns the ID of the recording the publication feeds.
func (p *Publication) RecordingID() string { return p.s.recordingID }

// errPublishEnded is returned to a publisher whose session ended meanwhile.
var errPublishEnded = recsink.Errorf(recsink.ECONFLICT, "the recording of this publish has ended")

// ts maps a connection timestamp to the object's timeline. Called with the
// session's mu held.
func (p *Publication) ts(t time.Duration) time.Duration {
	if !p.originSet {
		p.origin, p.originSet = t, true
	}
	return p.base + max(t-p.origin, 0)
}

// WriteVideo adds an H.264 access unit with its presentation and decoding
// timestamps (from the connection's clock).
func (p *Publication) WriteVideo(pts, dts time.Duration, au [][]byte, keyframe bool) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != p {
		return errPublishEnded
	}
	p.ts(dts) // the origin is the first decoding time
	s.lastWall = time.Now()
	return s.mux.WriteVideo(p.ts(pts), au, keyframe)
}

// WriteAudio adds an AAC frame with its timestamp.
func (p *Publication) WriteAudio(pts time.Duration, frame []byte) error {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != p {
		return errPublishEnded
	}
	s.lastWall = time.Now()
	return s.mux.WriteAudio(p.ts(pts), frame)
}

// End ends the publication. clean means the publisher ended the stream (an
// RTMP deleteStream, an SRT shutdown): the recording stops now. Otherwise
// the connection dropped and the recording waits the grace period for the
// publisher to come back.
func (p *Publication) End(clean bool, why string) {
	p.s.drop(p, clean, why)
}

// Authorize refuses a publish before any media is read: a wrong or revoked
// key is EUNAUTHORIZED, a key live with another publisher ECONFLICT (a key
// in its grace period is not: its publisher may come back).
func (l *Live) Authorize(ctx context.Context, key string) error {
	if !recsink.ValidStreamKeyShape(key) {
		return errStreamKey()
	}
	k, err := l.cfg.Keys.FindStreamKeyByHash(ctx, recsink.HashToken(key))
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return errStreamKey()
	} else if err != nil {
		return fmt.Errorf("live: find stream key: %w", err)
	}
	l.mu.Lock()
	s := l.sessions[k.MeetingID]
	l.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		live := s.starting || s.pub != nil
		s.mu.Unlock()
		if live {
			return recsink.Errorf(recsink.ECONFLICT, "the stream key is live: a second publisher is refused")
		}
	}
	return l.checkFormat(ctx, k.OrgID, k.MeetingID)
}

func errFormat(format string) error {
	return recsink.FieldErrorf("fileFormat", "live ingest writes Matroska (mkv); the room's destination asks for %s", format)
}

// checkFormat refuses a publish into a room whose destination (its own,
// else the organization's) asks for another container than Matroska. A
// room without a destination is left to StartRecording to refuse.
func (l *Live) checkFormat(ctx context.Context, orgID, meetingID string) error {
	if l.cfg.Storage == nil {
		return nil
	}
	cred, err := l.cfg.Storage.FindStorage(ctx, orgID, meetingID)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		cred, err = l.cfg.Storage.FindStorage(ctx, orgID, recsink.ScopeOrganization)
	}
	if err != nil {
		return nil
	}
	if f := cred.Destination.FileFormat; f != "" && f != "mkv" {
		return errFormat(f)
	}
	return nil
}
