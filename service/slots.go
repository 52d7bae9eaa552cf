package service

import (
	"context"
	"sync"
)

// Slots shares a fixed number of upload slots among organizations, so that
// one organization whose bucket hangs (each of its uploads held until the S3
// deadline) cannot starve the others:
//
//   - an organization holds at most its fair share: ceil(total/n), where n
//     counts the organizations with uploads in flight or waiting;
//   - alone, it holds at most total-1: one slot stays free, so that another
//     organization's first upload starts at once, whatever the first one's
//     uploads are doing;
//   - a freed slot goes to the waiting organization that holds the fewest,
//     the one waiting longest among equals.
//
// With one slot in all there is nothing to share: it goes to one
// organization at a time, first come first served.
type Slots struct {
	mu    sync.Mutex
	total int
	used  int
	seq   uint64                 // orders waiters by arrival
	orgs  map[string]*slotsOfOrg // organizations holding or waiting; none idle
}

// slotsOfOrg is one organization's holding and queue.
type slotsOfOrg struct {
	held    int
	waiting []*slotWaiter // FIFO
}

type slotWaiter struct {
	seq     uint64
	granted chan struct{} // closed when the slot is the waiter's
}

// NewSlots returns a scheduler of n slots (at least 1).
func NewSlots(n int) *Slots {
	return &Slots{total: max(n, 1), orgs: map[string]*slotsOfOrg{}}
}

// Acquire waits for a slot for an upload of organization orgID and returns
// the function that gives it back (safe to call more than once). It returns
// ctx's error, holding no slot, when ctx ends first.
func (s *Slots) Acquire(ctx context.Context, orgID string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	o := s.orgs[orgID]
	if o == nil {
		o = &slotsOfOrg{}
		s.orgs[orgID] = o
	}
	s.seq++
	w := &slotWaiter{seq: s.seq, granted: make(chan struct{})}
	o.waiting = append(o.waiting, w)
	s.dispatchLocked()
	s.mu.Unlock()

	select {
	case <-w.granted:
		return s.releaser(orgID), nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.granted:
		// Granted while ctx ended: give it back rather than leak it.
		s.releaseLocked(orgID)
	default:
		for i, x := range o.waiting {
			if x == w {
				o.waiting = append(o.waiting[:i], o.waiting[i+1:]...)
				break
			}
		}
		s.forgetIdleLocked(orgID, o)
		// One organization fewer may mean a larger share for the others.
		s.dispatchLocked()
	}
	return nil, ctx.Err()
}

func (s *Slots) releaser(orgID string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.releaseLocked(orgID)
			s.mu.Unlock()
		})
	}
}

func (s *Slots) releaseLocked(orgID string) {
	o := s.orgs[orgID]
	o.held--
	s.used--
	s.forgetIdleLocked(orgID, o)
	s.dispatchLocked()
}

func (s *Slots) forgetIdleLocked(orgID string, o *slotsOfOrg) {
	if o.held == 0 && len(o.waiting) == 0 {
		delete(s.orgs, orgID)
	}
}

// limitLocked is how many slots one organization may hold now.
func (s *Slots) limitLocked() int {
	n := len(s.orgs)
	if n <= 1 {
		return max(s.total-1, 1)
	}
	return (s.total + n - 1) / n
}

// dispatchLocked hands free slots to waiters, fewest held first.
func (s *Slots) dispatchLocked() {
	limit := s.limitLocked()
	for s.used < s.total {
		var best *slotsOfOrg
		for _, o := range s.orgs {
			if len(o.waiting) == 0 || o.held >= limit {
				continue
			}
			if best == nil || o.held < best.held || o.held == best.held && o.waiting[0].seq < best.waiting[0].seq {
				best = o
			}
		}
		if best == nil {
			return
		}
		w := best.waiting[0]
		best.waiting[0] = nil
		best.waiting = best.waiting[1:]
		best.held++
		s.used++
		close(w.granted)
	}
}

// SlotUse is one organization's use of the upload slots.
type SlotUse struct {
	Held, Waiting int
}

// Use returns the slots held in all, and each organization's holding and
// queue, for metrics and tests.
func (s *Slots) Use() (used int, byOrg map[string]SlotUse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byOrg = make(map[string]SlotUse, len(s.orgs))
	for id, o := range s.orgs {
		byOrg[id] = SlotUse{Held: o.held, Waiting: len(o.waiting)}
	}
	return s.used, byOrg
}
