package s3_test

import (
	"net"
	"testing"
	"time"
)

// strayListener is a listener of the test's own that stands for an endpoint
// recsink must never connect to.
type strayListener struct {
	net.Listener
	accepted chan string // the remote address of each connection, in order
}

func newStrayListener(t *testing.T) *strayListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &strayListener{Listener: l, accepted: make(chan string, 64)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case sl.accepted <- c.RemoteAddr().String():
			default: // past 64 strays the count is wrong anyway
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return sl
}

// strays returns the connections made to the listener so far. It dials one
// of its own and counts those accepted before it: the kernel queues
// connections in the order they were made, so every one made before the
// call is counted, with no pause to guess at.
func (l *strayListener) strays(t *testing.T) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mine := c.LocalAddr().String()
	deadline := time.After(10 * time.Second)
	for n := 0; ; n++ {
		select {
		case addr := <-l.accepted:
			if addr == mine {
				return n
			}
		case <-deadline:
			t.Fatalf("the listener did not accept the test's own connection within 10 s (%d before it)", n)
		}
	}
}
