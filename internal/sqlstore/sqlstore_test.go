package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

func TestTransitions(t *testing.T) {
	list := sqlstore.Transitions()
	for _, from := range sqlstore.States {
		for _, to := range sqlstore.States {
			in := strings.Contains(list, "'"+from+sqlstore.TransitionSeparator+to+"'")
			if in != recsink.CanTransition(from, to) {
				t.Errorf("%s -> %s in the SQL list: %v, CanTransition: %v", from, to, in, !in)
			}
		}
	}
}

// TestBroadcaster checks that every watcher gets every value in order, that
// a watcher that does not read for a while gets one "" for what overflowed
// and never blocks the sender, and that a watch ends with its context.
func TestBroadcaster(t *testing.T) {
	var b sqlstore.Broadcaster
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fast, slow := b.Watch(ctx), b.Watch(ctx)

	b.Send("a")
	b.Send("b")
	for _, want := range []string{"a", "b"} {
		if got := recv(t, fast); got != want {
			t.Fatalf("fast got %q, want %q", got, want)
		}
	}
	// slow has not read: 1,000 more sends neither block nor grow without
	// bound; slow reads what it queued and then one "".
	done := make(chan struct{})
	go func() {
		for range 1000 {
			b.Send("x")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked on a watcher that does not read")
	}
	sawEmpty := false
	for !sawEmpty {
		if recv(t, slow) == "" {
			sawEmpty = true
		}
	}
	cancel()
	for _, ch := range []<-chan string{fast, slow} {
		deadline := time.After(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("a watch did not end with its context")
			}
		}
	}
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5s")
	}
	return ""
}
