package srt_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink/media/mkvmux"
	"github.com/recsink/recsink/srt"
)

type acceptAll struct {
	mu        sync.Mutex
	published int
}

func (p *acceptAll) Authorize(context.Context, string) error { return nil }

func (p *acceptAll) Publish(context.Context, string, string, mkvmux.Tracks, time.Time) (srt.Publication, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published++
	return nil, io.EOF
}

// TestServer_Garbage sends random datagrams, and random datagrams shaped
// like SRT control packets (handshakes), to the SRT port for a bounded
// time: the server keeps running and publishes nothing.
func TestServer_Garbage(t *testing.T) {
	p := &acceptAll{}
	s := &srt.Server{Publisher: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	defer s.Close()

	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second) // a bounded run
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		b := make([]byte, 16+i%1500)
		rand.Read(b)
		switch i % 3 {
		case 0:
			b[0] |= 0x80                              // a control packet
			binary.BigEndian.PutUint16(b[0:], 0x8000) // handshake
		case 1:
			b[0] &^= 0x80 // a data packet
		}
		c.Write(b)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve ended: %v", err)
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.published != 0 {
		t.Fatalf("garbage published %d streams", p.published)
	}
}
