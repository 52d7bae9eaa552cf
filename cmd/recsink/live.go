package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/http"
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
	if cfg.RTMPAddr != "" {
		m.RTMP = &rtmp.Server{Publisher: livePublisher{m.Live}, Logger: m.Logger}
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
		m.SRT = &srt.Server{Publisher: srtPublisher{m.Live}, Logger: m.Logger}
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
		m.WHIP = &whip.Server{Publisher: whipPublisher{m.Live}, Logger: m.Logger, Error: api.Error}
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

// livePublisher adapts service.Live to the protocol packages' Publisher.
type livePublisher struct{ live *service.Live }

func (p livePublisher) Authorize(ctx context.Context, key string) error {
	return p.live.Authorize(ctx, key)
}

func (p livePublisher) Publish(ctx context.Context, protocol, key string, t mkvmux.Tracks, since time.Time) (rtmp.Publication, error) {
	pub, err := p.live.Publish(ctx, protocol, key, t, since)
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// srtPublisher adapts service.Live to package srt's Publisher.
type srtPublisher struct{ live *service.Live }

func (p srtPublisher) Authorize(ctx context.Context, key string) error {
	return p.live.Authorize(ctx, key)
}

func (p srtPublisher) Publish(ctx context.Context, protocol, key string, t mkvmux.Tracks, since time.Time) (srt.Publication, error) {
	pub, err := p.live.Publish(ctx, protocol, key, t, since)
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// whipPublisher adapts service.Live to package whip's Publisher.
type whipPublisher struct{ live *service.Live }

func (p whipPublisher) Authorize(ctx context.Context, key string) error {
	return p.live.Authorize(ctx, key)
}

func (p whipPublisher) Publish(ctx context.Context, protocol, key string, t mkvmux.Tracks, since time.Time) (whip.Publication, error) {
	pub, err := p.live.Publish(ctx, protocol, key, t, since)
	if err != nil {
		return nil, err
	}
	return pub, nil
}
