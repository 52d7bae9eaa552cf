// Package faultproxy is a TCP proxy for fault tests: it passes traffic to a
// target, or accepts connections and never answers them (a hanging
// endpoint), or resets them at once (a refusing one). The mode can change at
// any time; a connection keeps the mode it was accepted in, as a real hung
// server keeps the connections it already holds.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is what the proxy does with a new connection.
type Mode int32

const (
	// Pass forwards the connection to the target.
	Pass Mode = iota
	// Hang accepts the connection, reads and discards what the client
	// sends, and never writes a byte: the connection stays open until the
	// client closes it.
	Hang
	// Refuse resets the connection as soon as it is accepted.
	Refuse
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Hang:
		return "hang"
	case Refuse:
		return "refuse"
	}
	return "unknown"
}

// Proxy listens on a loopback port and treats each connection by its mode.
type Proxy struct {
	// Addr is the proxy's host:port; URL is http://Addr.
	Addr, URL string

	target string
	ln     net.Listener
	mode   atomic.Int32

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	passing map[net.Conn]struct{} // client sides of passed connections
	closed  bool
	wg      sync.WaitGroup

	stats struct {
		passed, hung, refused atomic.Int64
		// hangOpen is the number of hung connections still open;
		// hangCut counts those the client closed.
		hangOpen, hangCut atomic.Int64
	}
}

// Stats counts the connections by how they were treated.
type Stats struct {
	Passed, Hung, Refused int64
	// HangOpen is how many hung connections are open now; HangCut how many
	// the client gave up on and closed.
	HangOpen, HangCut int64
}

// Start starts a proxy to target (host:port) in mode Pass, closed when tb
// ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := New(target)
	if err != nil {
		tb.Fatalf("faultproxy: %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}

// New starts a proxy to target in mode Pass; Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}, passing: map[net.Conn]struct{}{}}
	p.Addr = ln.Addr().String()
	p.URL = "http://" + p.Addr
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// SetMode sets the mode of the connections accepted from now on. Switching
// to Hang or Refuse also closes the connections being passed, idle
// keep-alive ones included, as an endpoint that goes bad does: the client's
// next request dials anew and meets the new mode. Hung connections stay
// hung whatever the mode.
func (p *Proxy) SetMode(m Mode) {
	p.mode.Store(int32(m))
	if m == Pass {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.passing {
		c.Close()
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Passed: p.stats.passed.Load(), Hung: p.stats.hung.Load(), Refused: p.stats.refused.Load(),
		HangOpen: p.stats.hangOpen.Load(), HangCut: p.stats.hangCut.Load(),
	}
}

// Close stops listening and closes every connection, hung ones included.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c, or returns false when the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			switch p.Mode() {
			case Hang:
				p.hang(c)
			case Refuse:
				p.stats.refused.Add(1)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, not a clean close
				}
			default:
				p.pass(c)
			}
		}()
	}
}

// hang reads and discards until the client closes c (or Close does).
func (p *Proxy) hang(c net.Conn) {
	p.stats.hung.Add(1)
	p.stats.hangOpen.Add(1)
	defer p.stats.hangOpen.Add(-1)
	io.Copy(io.Discard, c) // until the client closes (EOF or reset), or Close does
	p.mu.Lock()
	closedByUs := p.closed
	p.mu.Unlock()
	if !closedByUs {
		p.stats.hangCut.Add(1) // the client gave up on the connection
	}
}

// pass forwards c to the target in both directions.
func (p *Proxy) pass(c net.Conn) {
	p.stats.passed.Add(1)
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	p.mu.Lock()
	p.passing[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.passing, c)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// One side is gone or was cut: end both directions (HTTP does not
		// half-close).
		c.Close()
		up.Close()
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}
