package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/http"
	"github.com/recsink/recsink/live"
	"github.com/recsink/recsink/media/mkvmux"
	"github.com/recsink/recsink/rtmp"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/srt"
	"github.com/recsink/recsink/whip"
)

// startLive starts the live publishing side (issue 15): the rooms' stream
// keys on the API and the listeners that are set: RTMP (--rtmp-addr), SRT
// (--srt-addr), WHIP (--whip-udp-addr, its offers on the HTTP listener).
func (m *Main) startLive(cfg Config, api *http.Server) error {
	keys, ok := m.Store.(recsink.StreamKeyStore)
	if !ok {
		return errors.New("the store does not keep stream keys")
	}
	m.Live = service.NewLive(service.LiveConfig{
		Keys:       keys,
		Recordings: m.Service,
		Ingest:     m.Service,
		Storage:    m.Service,
		Grace:      cfg.StreamGrace,
		Logger:     m.Logger,
		Observer:   m.Metrics.NewLive(),
	})
	api.StreamKeyService = m.Live
	nodeID, err := loadNodeID(cfg.Data)
	if err != nil {
		return err
	}
	gate := &liveGate{store: m.Store, keys: keys, node: nodeID}
	if cfg.RTMPAddr != "" {
		m.RTMP = &rtmp.Server{Publisher: livePublisher{m.Live, gate}, Logger: m.Logger}
		if err := m.RTMP.Listen(cfg.RTMPAddr); err != nil {
			return fmt.Errorf("--rtmp-addr: %w", err)
		}
		api.RTMPAddr = m.RTMP.Addr().String()
		go func() {
			if err := m.RTMP.Serve(); err != nil {
				m.Logger.Error("serve rtmp", "err", err)
			}
		}()
		m.Logger.Info("rtmp listening", "addr", api.RTMPAddr)
	}
	if cfg.SRTAddr != "" {
		m.SRT = &srt.Server{Publisher: livePublisher{m.Live, gate}, Logger: m.Logger}
		if err := m.SRT.Listen(cfg.SRTAddr); err != nil {
			return fmt.Errorf("--srt-addr: %w", err)
		}
		api.SRTAddr = m.SRT.Addr()
		go func() {
			if err := m.SRT.Serve(); err != nil {
				m.Logger.Error("serve srt", "err", err)
			}
		}()
		m.Logger.Info("srt listening", "addr", api.SRTAddr)
	}
	if cfg.WHIPUDPAddr != "" {
		m.WHIP = &whip.Server{Publisher: livePublisher{m.Live, gate}, Logger: m.Logger, Error: api.Error, PublicIPs: cfg.WHIPPublicIPs}
		if err := m.WHIP.Listen(cfg.WHIPUDPAddr); err != nil {
			return fmt.Errorf("--whip-udp-addr: %w", err)
		}
		m.WHIP.Handle(api.Handle)
		api.WHIP = true
		m.Logger.Info("whip listening", "path", whip.Path, "udp", m.WHIP.UDPAddr().String())
	}
	return nil
}

// closeLive stops taking publishes and stops the live recordings with what
// they received.
func (m *Main) closeLive() {
	if m.RTMP != nil {
		m.RTMP.Close()
		m.RTMP = nil
	}
	if m.SRT != nil {
		m.SRT.Close()
		m.SRT = nil
	}
	if m.WHIP != nil {
		m.WHIP.Close()
		m.WHIP = nil
	}
	if m.Live != nil {
		m.Live.Close()
		m.Live = nil
	}
}

// livePublisher adapts service.Live to the listeners' live.Publisher, with
// the gate that refuses a key live on another node.
type livePublisher struct {
	live *service.Live
	gate *liveGate
}

func (p livePublisher) Authorize(ctx context.Context, key string) error {
	if err := p.live.Authorize(ctx, key); err != nil {
		return err
	}
	return p.gate.check(ctx, key)
}

func (p livePublisher) Publish(ctx context.Context, protocol, key string, t mkvmux.Tracks, since time.Time) (live.Publication, error) {
	if err := p.gate.check(ctx, key); err != nil {
		return nil, err
	}
	pub, err := p.live.Publish(ctx, protocol, key, t, since)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return pub, nil
}

// liveGate refuses a publish on a key that is live on another node: each
// node knows only its own sessions, and the database knows every node's
// recordings. A room's recording received live (rtmp, srt, whip), still
// recording or blocked, held by another node under a valid lease and never
// moved from the node that started it (lease epoch 1), is a publish live
// there, or in its grace period there. One moved to another node lost its
// publisher with its node and does not block the key.
//
// Two publishers that arrive on two nodes within the same few milliseconds
// can both pass; the refusal covers a second publisher, not a race.
type liveGate struct {
	store interface {
		ListHoldingRecordings(ctx context.Context, orgID string) ([]*recsink.Recording, error)
	}
	keys recsink.StreamKeyStore
	node string
}

func (g *liveGate) check(ctx context.Context, key string) error {
	if !recsink.ValidStreamKeyShape(key) {
		return nil // the live service refuses it
	}
	k, err := g.keys.FindStreamKeyByHash(ctx, recsink.HashToken(key))
	if err != nil {
		return nil // the live service refuses it, or fails on it
	}
	recs, err := g.store.ListHoldingRecordings(ctx, k.OrgID)
	if err != nil {
		return fmt.Errorf("live: list the room's recordings: %w", err)
	}
	now := recsink.Now()
	for _, r := range recs {
		switch {
		case r.MeetingID != k.MeetingID || r.Owner.Node == g.node:
		case r.Source != recsink.SourceRTMP && r.Source != recsink.SourceSRT && r.Source != recsink.SourceWHIP:
		case r.State != recsink.RecordingRecording && r.State != recsink.RecordingBlocked:
		case r.Owner.Epoch != 1 || r.Owner.LeaseExpiresAt == nil || !r.Owner.LeaseExpiresAt.After(now):
		default:
			return recsink.Errorf(recsink.ECONFLICT, "the stream key is live on another recsink node: a second publisher is refused")
		}
	}
	return nil
}
