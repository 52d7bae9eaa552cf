// Package rtmp takes live publishes over RTMP (gortmplib): a publish to
// rtmp://HOST:PORT/live/KEY with a room's stream key records the room. The
// received H.264 and AAC are handed on as they are, never decoded.
package rtmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/live"
	"github.com/recsink/recsink/media/mkvmux"
)

// Protocol names the protocol in logs and metrics.
const Protocol = "rtmp"

// App is the RTMP application that takes publishes: rtmp://HOST:PORT/live/KEY.
const App = "live"

// Publication takes one publisher's media; see live.Publication.
type Publication = live.Publication

// Publisher authenticates publishes and starts their recordings; see
// live.Publisher.
type Publisher = live.Publisher

// Limits on what a publisher can make the server hold.
const (
	// handshakeTimeout bounds the handshake, connect and publish commands
	// and the first media that tells the tracks.
	handshakeTimeout = 10 * time.Second
	// readTimeout cuts a publisher that sends nothing for this long; the
	// recording then waits out the grace period.
	readTimeout = 10 * time.Second
	// MaxConns bounds the connections served at once.
	MaxConns = 256
)

// Server accepts RTMP publishers.
type Server struct {
	Publisher Publisher
	Logger    *slog.Logger

	ln     net.Listener
	sem    chan struct{}
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}
}

// Listen opens addr; Serve must follow.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("rtmp: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.sem = make(chan struct{}, MaxConns)
	s.conns = map[net.Conn]struct{}{}
	s.done = make(chan struct{})
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close.
func (s *Server) Serve() error {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("rtmp: accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.Logger.Warn("rtmp: too many connections; refused one", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1) // under mu: Close's Wait starts after every Add
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.handle(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting and cuts every connection (their recordings wait
// out the grace period, or end with the service).
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	close(s.done)
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	log := s.Logger.With("protocol", Protocol, "remote", conn.RemoteAddr().String())
	defer func() {
		// A bug in parsing a publisher's bytes must not take recsink down.
		if v := recover(); v != nil {
			log.Error("rtmp: panic while serving a connection", "panic", fmt.Sprint(v))
		}
	}()
	if err := s.serve(conn, log); err != nil {
		log.Info("rtmp: connection ended", "err", recsink.RedactStreamKeys(err.Error()))
	}
}

// keyOf returns the stream key of a publish URL's path, /live/KEY.
func keyOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/"+App+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}

func (s *Server) serve(conn net.Conn, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	sc := &gortmplib.ServerConn{RW: conn}
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := sc.AcceptConn(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if !sc.Publish {
		_ = sc.RejectAction()
		return errors.New("refused a play request: recsink only takes publishes")
	}
	key, ok := keyOf(sc.URL.Path)
	if !ok {
		_ = sc.RejectAction()
		return errors.New("refused a publish: the URL is not rtmp://HOST:PORT/live/KEY")
	}
	// The key is never logged: only whether it was accepted.
	if err := s.Publisher.Authorize(ctx, key); err != nil {
		_ = sc.RejectAction()
		return fmt.Errorf("refused a publish: %s", recsink.ErrorMessage(err))
	}

	// Reader accepts the publish only when its Conn is the ServerConn
	// itself; ours is wrapped, so it is accepted here.
	if err := sc.AcceptAction(); err != nil {
		return fmt.Errorf("accept publish: %w", err)
	}
	since := time.Now()
	cc := &commandConn{Conn: sc}
	r := &gortmplib.Reader{Conn: cc}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("read tracks: %w", err)
	}
	var tracks mkvmux.Tracks
	var video, audio *gortmplib.Track
	for _, t := range r.Tracks() {
		switch c := t.Codec.(type) {
		case *codecs.H264:
			if video != nil {
				continue
			}
			v := &mkvmux.Video{SPS: c.SPS, PPS: c.PPS}
			var sps h264.SPS
			if err := sps.Unmarshal(c.SPS); err == nil {
				v.Width, v.Height = sps.Width(), sps.Height()
			}
			tracks.Video, video = v, t
		case *codecs.MPEG4Audio:
			if audio != nil || c.Config == nil {
				continue
			}
			cfg, err := c.Config.Marshal()
			if err != nil {
				return fmt.Errorf("refused a publish: its AAC configuration: %w", err)
			}
			tracks.Audio, audio = &mkvmux.Audio{Config: cfg, SampleRate: c.Config.SampleRate, Channels: int(c.Config.ChannelConfig)}, t
		default:
			return fmt.Errorf("refused a publish: codec %s is not supported (recsink records H.264 and AAC from RTMP)", codecName(t.Codec))
		}
	}
	if video == nil && audio == nil {
		return errors.New("refused a publish: it has neither H.264 video nor AAC audio")
	}
	pub, err := s.Publisher.Publish(ctx, Protocol, key, tracks, since)
	if err != nil {
		return fmt.Errorf("refused a publish: %s", recsink.ErrorMessage(err))
	}
	var werr error
	if video != nil {
		started := false
		r.OnDataH264(video, func(pts, dts time.Duration, au [][]byte) {
			// The video starts at its first keyframe, and an access unit
			// with no picture (ffmpeg's first one holds only the parameter
			// sets) is not a frame: a player that meets one at the start
			// decodes nothing there, and Chromium's seek stalled on it.
			if !hasPicture(au) {
				return
			}
			key := h264.IsRandomAccess(au)
			if !started && !key {
				return
			}
			started = true
			if werr == nil {
				werr = pub.WriteVideo(pts, dts, au, key)
			}
		})
	}
	if audio != nil {
		r.OnDataMPEG4Audio(audio, func(pts time.Duration, au []byte) {
			if werr == nil {
				werr = pub.WriteAudio(pts, au)
			}
		})
	}
	for {
		_ = conn.SetDeadline(time.Now().Add(readTimeout))
		err := r.Read()
		if werr != nil {
			pub.End(true, werr.Error())
			return werr
		}
		if err != nil {
			clean := cc.unpublished()
			pub.End(clean, err.Error())
			if clean {
				return nil
			}
			return err
		}
		if cc.unpublished() {
			pub.End(true, "unpublished")
			return nil
		}
	}
}

func codecName(c codecs.Codec) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", c), "*codecs.")
}

// commandConn sees the publisher's commands go by: FCUnpublish and
// deleteStream tell a stream that ended from a connection that dropped.
type commandConn struct {
	gortmplib.Conn
	mu    sync.Mutex
	ended bool
}

func (c *commandConn) Read() (message.Message, error) {
	msg, err := c.Conn.Read()
	if cmd, ok := msg.(*message.CommandAMF0); ok && (cmd.Name == "FCUnpublish" || cmd.Name == "deleteStream" || cmd.Name == "closeStream") {
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
	}
	return msg, err
}

func (c *commandConn) unpublished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// hasPicture reports whether an access unit holds a coded slice (NAL unit
// types 1 to 5).
func hasPicture(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1F >= 1 && n[0]&0x1F <= 5 {
			return true
		}
	}
	return false
}
