package rtmp_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media/mkvmux"
	"github.com/recsink/recsink/rtmp"
)

// acceptAll is a Publisher that takes every key.
type acceptAll struct {
	mu        sync.Mutex
	published int
}

func (p *acceptAll) Authorize(context.Context, string) error { return nil }

func (p *acceptAll) Publish(context.Context, string, string, mkvmux.Tracks, time.Time) (rtmp.Publication, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published++
	return nopPublication{}, nil
}

type nopPublication struct{}

func (nopPublication) WriteVideo(time.Duration, time.Duration, [][]byte, bool) error { return nil }
func (nopPublication) WriteAudio(time.Duration, []byte) error                        { return nil }
func (nopPublication) End(bool, string)                                              {}

func mustServer(tb testing.TB, p rtmp.Publisher) *rtmp.Server {
	tb.Helper()
	s := &rtmp.Server{Publisher: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	go s.Serve()
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestServer_Garbage sends random bytes, and random bytes after a valid
// RTMP handshake prefix, on many connections: the server neither crashes
// nor holds memory or goroutines once they are closed.
func TestServer_Garbage(t *testing.T) {
	p := &acceptAll{}
	s := mustServer(t, p)
	before := runtime.NumGoroutine()
	prefixes := [][]byte{
		nil,
		{0x03},       // RTMP version 3, then a random C1
		{0x06},       // encrypted handshake
		{0x03, 0, 0}, // a short C1
	}
	deadline := time.Now().Add(10 * time.Second) // a bounded run
	var wg sync.WaitGroup
	for i := 0; i < 400 && time.Now().Before(deadline); i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			junk := make([]byte, 1+i*97%(64<<10))
			rand.Read(junk)
			c.Write(append(prefixes[i%len(prefixes)], junk...))
			if i%2 == 0 {
				// A valid handshake answer is 3073 bytes; read what comes.
				io.CopyN(io.Discard, c, 3073)
				c.Write(junk)
			}
		}(i)
		if i%32 == 31 {
			wg.Wait()
		}
	}
	wg.Wait()
	// Every connection's goroutine ends once its peer is gone.
	for end := time.Now().Add(15 * time.Second); ; {
		if n := runtime.NumGoroutine(); n <= before+2 {
			break
		} else if time.Now().After(end) {
			t.Fatalf("%d goroutines left, %d before", n, before)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.published != 0 {
		t.Fatalf("garbage published %d streams", p.published)
	}
	// The server still accepts.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestServer_KeyShape: only keys of the right shape reach the store.
func TestServer_KeyShape(t *testing.T) {
	if recsink.ValidStreamKeyShape("rsl_short") || !recsink.ValidStreamKeyShape(recsink.NewStreamKey()) {
		t.Fatal("ValidStreamKeyShape")
	}
	key := recsink.NewStreamKey()
	if got := recsink.RedactStreamKeys("publish rtmp://h/live/" + key + " failed"); got != "publish rtmp://h/live/rsl_*** failed" {
		t.Fatalf("RedactStreamKeys: %q", got)
	}
}
