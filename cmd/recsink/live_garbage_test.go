package main_test

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestLive_GarbageOnPorts is issue 15's "garbage bytes on the RTMP and SRT
// ports do not crash recsink (a bounded fuzz run)" against the whole
// server, not only its listeners: for a bounded time, random bytes (some
// after a valid RTMP version byte, some read back after the handshake) on
// many RTMP connections, and random datagrams (some shaped as SRT
// handshakes) on the SRT port. No recording starts, the goroutines come
// back down, and recsink then takes a real RTMP publish and an SRT one.
func TestLive_GarbageOnPorts(t *testing.T) {
	e := mustLiveEnv(t, time.Second)
	rtmpHost := mustHost(t, e.URL)
	srtHost := mustHost(t, e.SRTURL)
	before := runtime.NumGoroutine()

	deadline := time.Now().Add(8 * time.Second) // a bounded run
	var wg sync.WaitGroup
	var conns, datagrams int
	wg.Add(1)
	go func() { // SRT: datagrams
		defer wg.Done()
		c, err := net.Dial("udp", srtHost)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			b := make([]byte, 16+i%1400)
			rand.Read(b)
			switch i % 3 {
			case 0:
				binary.BigEndian.PutUint16(b[0:], 0x8000) // a control packet: handshake
			case 1:
				b[0] &^= 0x80 // a data packet
			}
			c.Write(b)
			datagrams++
		}
	}()
	prefixes := [][]byte{nil, {0x03}, {0x06}, {0x03, 0, 0}}
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		wg.Add(1)
		conns++
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", rtmpHost)
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
				io.CopyN(io.Discard, c, 3073) // a handshake answer, if any
				c.Write(junk)
			}
		}(i)
		if i%16 == 15 {
			time.Sleep(10 * time.Millisecond) // spread the connections over the run, not a wait for a condition
		}
	}
	wg.Wait()
	t.Logf("%d RTMP connections of garbage, %d SRT datagrams", conns, datagrams)

	if recs := e.recordings(t); len(recs) != 0 {
		t.Fatalf("garbage started recordings: %v", recs)
	}
	var n int
	for end := time.Now().Add(30 * time.Second); ; {
		if n = runtime.NumGoroutine(); n <= before+20 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d goroutines 30 s after the garbage, %d before", n, before)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	t.Logf("goroutines: %d before, %d after", before, n)

	for _, u := range []string{e.URL, e.SRTURL + "&linger=2"} {
		p := startPublisher(t, u)
		e.waitLive(t, true, 20*time.Second)
		p.stop(t, os.Interrupt)
		e.waitLive(t, false, 20*time.Second)
	}
	if recs := e.recordings(t); len(recs) != 2 {
		t.Fatalf("%d recordings after two real publishes, want 2", len(recs))
	}
}

// mustHost returns the host:port of a publish URL.
func mustHost(tb testing.TB, raw string) string {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Host
}
