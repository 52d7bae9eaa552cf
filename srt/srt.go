// Package srt takes live publishes over SRT (gosrt): a caller whose stream
// ID is "publish:KEY" (or "#!::r=KEY,m=publish", the SRT access-control
// form) with a room's stream key records the room. The MPEG-TS it sends is
// demuxed (mediacommon) and its H.264 and AAC handed on as they are.
package srt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	gosrt "github.com/datarhei/gosrt"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/live"
	"github.com/recsink/recsink/media/mkvmux"
)

// Protocol names the protocol in logs and metrics.
const Protocol = "srt"

// Publication takes one publisher's media; see live.Publication.
type Publication = live.Publication

// Publisher authenticates publishes and starts their recordings; see
// live.Publisher.
type Publisher = live.Publisher

const (
	// MaxConns bounds the connections served at once.
	MaxConns = 256
	// tracksTimeout bounds the wait for the tracks and the first keyframe.
	tracksTimeout = 10 * time.Second
	// cleanEOF: an end of stream that comes this soon after the last data
	// is the publisher's shutdown; one that comes later is gosrt's peer
	// idle timeout (2 s) after a drop.
	cleanEOF = time.Second
)

// Server accepts SRT publishers.
type Server struct {
	Publisher Publisher
	Logger    *slog.Logger

	ln     gosrt.Listener
	sem    chan struct{}
	mu     sync.Mutex
	conns  map[gosrt.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen opens addr (UDP); Serve must follow.
func (s *Server) Listen(addr string) error {
	cfg := gosrt.DefaultConfig()
	ln, err := gosrt.Listen("srt", addr, cfg)
	if err != nil {
		return fmt.Errorf("srt: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.sem = make(chan struct{}, MaxConns)
	s.conns = map[gosrt.Conn]struct{}{}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// keyOf returns the stream key of a stream ID: "publish:KEY", or the SRT
// access-control form "#!::r=KEY,m=publish".
func keyOf(streamID string) (string, bool) {
	if key, ok := strings.CutPrefix(streamID, "publish:"); ok && key != "" {
		return key, true
	}
	if rest, ok := strings.CutPrefix(streamID, "#!::"); ok {
		var key, mode string
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "r":
				key = v
			case "m":
				mode = v
			}
		}
		return key, key != "" && mode == "publish"
	}
	return "", false
}

// Serve accepts connections until Close.
func (s *Server) Serve() error {
	for {
		req, err := s.ln.Accept2()
		if err != nil {
			if errors.Is(err, gosrt.ErrListenerClosed) {
				return nil
			}
			return fmt.Errorf("srt: accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		default:
			req.Reject(gosrt.REJX_OVERLOAD)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			req.Reject(gosrt.REJX_OVERLOAD)
			return nil
		}
		s.wg.Add(1) // under mu: Close's Wait starts after every Add
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.handle(req)
		}()
	}
}

// Close stops accepting and cuts every connection.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) handle(req gosrt.ConnRequest) {
	log := s.Logger.With("protocol", Protocol, "remote", req.RemoteAddr().String())
	defer func() {
		// A bug in parsing a publisher's bytes must not take recsink down.
		if v := recover(); v != nil {
			log.Error("srt: panic while serving a connection", "panic", fmt.Sprint(v))
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key, ok := keyOf(req.StreamId())
	if !ok {
		req.Reject(gosrt.REJX_BAD_REQUEST)
		log.Info("srt: refused a connection: its stream ID is not publish:KEY")
		return
	}
	// The key is never logged: only whether it was accepted.
	if err := s.Publisher.Authorize(ctx, key); err != nil {
		reason := gosrt.REJX_UNAUTHORIZED
		if recsink.ErrorCode(err) == recsink.ECONFLICT {
			reason = gosrt.REJX_CONFLICT
		} else if recsink.ErrorCode(err) == recsink.EUNAVAILABLE {
			reason = gosrt.REJX_OVERLOAD
		}
		req.Reject(reason)
		log.Info("srt: refused a publish", "err", recsink.ErrorMessage(err))
		return
	}
	conn, err := req.Accept()
	if err != nil {
		log.Info("srt: accept", "err", recsink.RedactStreamKeys(err.Error()))
		return
	}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	if err := s.serve(ctx, conn, key); err != nil {
		log.Info("srt: connection ended", "err", recsink.RedactStreamKeys(err.Error()))
	}
}

// lastRead remembers when data last arrived, to tell a shutdown from a drop.
type lastRead struct {
	conn gosrt.Conn
	mu   sync.Mutex
	at   time.Time
}

func (r *lastRead) Read(p []byte) (int, error) {
	n, err := r.conn.Read(p)
	if n > 0 {
		r.mu.Lock()
		r.at = time.Now()
		r.mu.Unlock()
	}
	return n, err
}

func (r *lastRead) since() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.at)
}

func (s *Server) serve(ctx context.Context, conn gosrt.Conn, key string) error {
	since := time.Now()
	lr := &lastRead{conn: conn, at: since}
	tr := &mpegts.Reader{R: bufio.NewReaderSize(lr, 64<<10)}
	// The tracks are in the first PMT; a publisher that sends none is cut.
	timer := time.AfterFunc(tracksTimeout, func() { conn.Close() })
	defer timer.Stop()
	if err := tr.Initialize(); err != nil {
		return fmt.Errorf("read tracks: %w", err)
	}
	var video, audio *mpegts.Track
	var audioTrack *mkvmux.Audio
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *mpegts.CodecH264:
			if video == nil {
				video = t
			}
		case *mpegts.CodecMPEG4Audio:
			if audio != nil {
				continue
			}
			cfg, err := c.Config.Marshal()
			if err != nil {
				return fmt.Errorf("refused a publish: its AAC configuration: %w", err)
			}
			audio, audioTrack = t, &mkvmux.Audio{Config: cfg, SampleRate: c.Config.SampleRate, Channels: int(c.Config.ChannelConfig)}
		default:
			// The codec's type name without its package, as the RTMP listener names it: "MPEG1Audio".
			name := fmt.Sprintf("%T", t.Codec)
			name = name[strings.LastIndex(name, ".")+1:]
			return fmt.Errorf("refused a publish: codec %s is not supported (recsink records H.264 and AAC from SRT)", name)
		}
	}
	if video == nil && audio == nil {
		return errors.New("refused a publish: it has neither H.264 video nor AAC audio")
	}

	// H.264 in MPEG-TS carries its SPS and PPS in-band: the publication
	// (whose Matroska header needs them) starts at the first keyframe that
	// has them; what comes before it cannot be decoded anyway.
	var pub Publication
	var werr error
	start := func(sps, pps []byte) {
		tracks := mkvmux.Tracks{Audio: audioTrack}
		if sps != nil {
			v := &mkvmux.Video{SPS: sps, PPS: pps}
			var p h264.SPS
			if err := p.Unmarshal(sps); err == nil {
				v.Width, v.Height = p.Width(), p.Height()
			}
			tracks.Video = v
		}
		pub, werr = s.Publisher.Publish(ctx, Protocol, key, tracks, since)
		timer.Stop()
	}
	ts := func(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }
	if video != nil {
		tr.OnDataH264(video, func(pts, dts int64, au [][]byte) error {
			if werr != nil {
				return werr
			}
			if pub == nil {
				var sps, pps []byte
				for _, n := range au {
					if len(n) == 0 {
						continue
					}
					switch h264.NALUType(n[0] & 0x1f) {
					case h264.NALUTypeSPS:
						sps = n
					case h264.NALUTypePPS:
						pps = n
					}
				}
				if sps == nil || pps == nil || !h264.IsRandomAccess(au) {
					return nil
				}
				if start(sps, pps); werr != nil {
					return werr
				}
			}
			werr = pub.WriteVideo(ts(pts), ts(dts), au, h264.IsRandomAccess(au))
			return werr
		})
	}
	if audio != nil {
		tr.OnDataMPEG4Audio(audio, func(pts int64, aus [][]byte) error {
			if werr != nil {
				return werr
			}
			if pub == nil {
				if video != nil {
					return nil // audio waits for the first keyframe
				}
				if start(nil, nil); werr != nil {
					return werr
				}
			}
			// An ADTS PES holds several frames, 1024 samples each.
			for i, au := range aus {
				d := time.Duration(i) * 1024 * time.Second / time.Duration(max(audioTrack.SampleRate, 1))
				if werr = pub.WriteAudio(ts(pts)+d, au); werr != nil {
					return werr
				}
			}
			return nil
		})
	}
	for {
		err := tr.Read()
		if err == nil {
			continue
		}
		if pub == nil {
			if werr != nil {
				return fmt.Errorf("refused a publish: %s", recsink.ErrorMessage(werr))
			}
			return fmt.Errorf("before the first keyframe: %w", err)
		}
		if werr != nil {
			pub.End(true, werr.Error())
			return werr
		}
		clean := lr.since() < cleanEOF
		pub.End(clean, err.Error())
		if clean {
			return nil
		}
		return err
	}
}
