package sqlstore

import (
	"context"
	"sync"
)

// maxPending is the most changes a watcher queues before they are folded
// into one "" (anything may have changed).
const maxPending = 64

// Broadcaster sends each value given to Send to every watcher, without ever
// blocking the sender: a watcher that falls behind by maxPending values gets
// one "" in their place. The zero value is ready to use.
type Broadcaster struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

type watcher struct {
	mu       sync.Mutex
	pending  []string
	overflow bool
	wake     chan struct{} // capacity 1
}

// Watch returns a channel that receives every value sent from now until ctx
// ends, when it is closed.
func (b *Broadcaster) Watch(ctx context.Context) <-chan string {
	w := &watcher{wake: make(chan struct{}, 1)}
	b.mu.Lock()
	if b.watchers == nil {
		b.watchers = map[*watcher]struct{}{}
	}
	b.watchers[w] = struct{}{}
	b.mu.Unlock()

	out := make(chan string)
	go func() {
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.watchers, w)
			b.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			w.mu.Lock()
			vs := w.pending
			if w.overflow {
				vs = []string{""}
			}
			w.pending, w.overflow = nil, false
			w.mu.Unlock()
			for _, v := range vs {
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// Send queues v for every watcher.
func (b *Broadcaster) Send(v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watchers {
		w.mu.Lock()
		if len(w.pending) >= maxPending {
			w.overflow = true
		} else {
			w.pending = append(w.pending, v)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}
