package service_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink/service"
)

// waitFor polls cond until it holds, failing the test after d.
// use returns org's holding and queue.
func use(s *service.Slots, org string) service.SlotUse {
	_, by := s.Use()
	return by[org]
}

// MustAcquire acquires a slot within d or fails the test, and returns its
// release and how long it took.
func MustAcquire(tb testing.TB, s *service.Slots, org string, d time.Duration) (func(), time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	began := time.Now()
	release, err := s.Acquire(ctx, org)
	if err != nil {
		tb.Fatalf("acquire a slot for %s: %v", org, err)
	}
	return release, time.Since(began)
}

// TestSlotsHangingOrganization: organization B's uploads all hang (50 of
// them want a slot, none gives its slot back). Organization A's uploads still
// get a slot at once, one after another, and a third organization gets the
// first slot A frees.
func TestSlotsHangingOrganization(t *testing.T) {
	t.Parallel()
	const total = 16
	s := service.NewSlots(total)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if release, err := s.Acquire(ctx, "orgB"); err == nil {
				<-ctx.Done() // hung until the test ends
				release()
			}
		}()
	}
	waitFor(t, 20*time.Second, "B's 50 uploads to queue", func() bool {
		u := use(s, "orgB")
		return u.Held+u.Waiting == 50
	})
	if u := use(s, "orgB"); u.Held != total-1 {
		t.Fatalf("B alone holds %d slots, want %d (one kept for another organization)", u.Held, total-1)
	}

	var worst time.Duration
	for range 100 {
		release, took := MustAcquire(t, s, "orgA", time.Second)
		worst = max(worst, took)
		release()
	}
	t.Logf("org A: 100 uploads while org B hangs on %d slots: slowest slot wait %s", total-1, worst)
	if worst > 250*time.Millisecond {
		t.Errorf("A waited %s for a slot, want milliseconds", worst)
	}

	// A holds the free slot; C, new, waits; A's slot goes to C, not back to A
	// nor to B.
	releaseA, _ := MustAcquire(t, s, "orgA", time.Second)
	got := make(chan error, 1)
	var releaseC func()
	go func() {
		var err error
		releaseC, err = s.Acquire(ctx, "orgC")
		got <- err
	}()
	waitFor(t, 20*time.Second, "C to queue", func() bool { return use(s, "orgC").Waiting == 1 })
	secondA := make(chan error, 1)
	go func() {
		r, err := s.Acquire(ctx, "orgA")
		if err == nil {
			defer r()
		}
		secondA <- err
	}()
	waitFor(t, 20*time.Second, "A's second upload to queue", func() bool { return use(s, "orgA").Waiting == 1 })
	releaseA()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("C did not get the slot A freed")
	}
	if u := use(s, "orgB"); u.Held != total-1 {
		t.Errorf("B holds %d slots, want still %d", u.Held, total-1)
	}
	releaseC()
	if err := <-secondA; err != nil {
		t.Fatal(err)
	}
}

// TestSlotsFewestFirst releases the slots of an organization one by one
// while two others wait: each freed slot goes to the one holding fewer, and
// none holds more than its share.
func TestSlotsFewestFirst(t *testing.T) {
	t.Parallel()
	s := service.NewSlots(6)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	var releases []func()
	for range 5 {
		r, _ := MustAcquire(t, s, "orgA", time.Second)
		releases = append(releases, r)
	}
	for _, org := range []string{"orgB", "orgC"} {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r, err := s.Acquire(ctx, org); err == nil {
					<-ctx.Done()
					r()
				}
			}()
		}
		waitFor(t, 20*time.Second, org+" to queue", func() bool {
			u := use(s, org)
			return u.Held+u.Waiting == 10
		})
	}
	// Six slots, three organizations: a share of 2. B came first and took
	// the free slot.
	check := func(step string, a, b, c int) {
		t.Helper()
		waitFor(t, 20*time.Second, step, func() bool {
			_, by := s.Use()
			return by["orgA"].Held == a && by["orgB"].Held == b && by["orgC"].Held == c
		})
	}
	check("start", 5, 1, 0)
	releases[0]()
	check("A frees one: C holds fewest", 4, 1, 1)
	releases[1]()
	check("A frees two: B is older among equals", 3, 2, 1)
	releases[2]()
	check("A frees three", 2, 2, 2)
	releases[3]()
	check("A frees four: B and C hold their share, the slot waits for A", 1, 2, 2)
	releases[4]()
	check("A is done: two organizations, a share of 3", 0, 3, 3)
	if used, _ := s.Use(); used != 6 {
		t.Fatalf("%d slots used, want 6", used)
	}
}

// TestSlotsCancel: a waiter whose context ends holds no slot, leaves no
// trace, and does not keep another organization from its share.
func TestSlotsCancel(t *testing.T) {
	t.Parallel()
	s := service.NewSlots(4)
	r1, _ := MustAcquire(t, s, "orgA", time.Second)
	r2, _ := MustAcquire(t, s, "orgA", time.Second)
	r3, _ := MustAcquire(t, s, "orgA", time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 20)
	for range 20 {
		go func() {
			_, err := s.Acquire(ctx, "orgA")
			errs <- err
		}()
	}
	waitFor(t, 20*time.Second, "A's waiters to queue", func() bool { return use(s, "orgA").Waiting == 20 })
	cancel()
	for range 20 {
		if err := <-errs; err != context.Canceled {
			t.Fatalf("Acquire after cancel = %v, want context.Canceled", err)
		}
	}
	if used, by := s.Use(); used != 3 || by["orgA"] != (service.SlotUse{Held: 3}) {
		t.Fatalf("after cancel: %d used, A %+v; want 3 held, none waiting", used, by["orgA"])
	}
	r1()
	r1() // twice is harmless
	r2()
	r3()
	if used, by := s.Use(); used != 0 || len(by) != 0 {
		t.Fatalf("all released: %d used, %v; want none", used, by)
	}

	// Under churn: many acquirers with short deadlines, some granted, some
	// not, none leaking.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
			defer cancel()
			if r, err := s.Acquire(ctx, fmt.Sprintf("org%d", i%7)); err == nil {
				time.Sleep(time.Millisecond) // holding the slot a while: the churn under test
				r()
			}
		}()
	}
	wg.Wait()
	if used, by := s.Use(); used != 0 || len(by) != 0 {
		t.Fatalf("after churn: %d used, %v; want none", used, by)
	}
}

// TestSlotsFairness runs three organizations with the same heavy demand
// (ten uploads each, always wanting a slot) through nine slots; then a fourth
// organization's uploads start and hang on every slot they get. The hanging
// one holds no more than its share, and the busy ones keep getting about the
// same number of uploads through.
func TestSlotsFairness(t *testing.T) {
	t.Parallel()
	const total = 9
	s := service.NewSlots(total)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	orgs := []string{"orgA", "orgB", "orgC"}
	var mu sync.Mutex
	done := map[string]int{}
	count := func() (map[string]int, int) {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(done), done["orgA"] + done["orgB"] + done["orgC"]
	}
	for _, org := range orgs {
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					r, err := s.Acquire(ctx, org)
					if err != nil {
						return
					}
					time.Sleep(100 * time.Microsecond) // the upload's work while it holds the slot
					mu.Lock()
					done[org]++
					mu.Unlock()
					r()
				}
			}()
		}
	}
	waitFor(t, 20*time.Second, "300 uploads", func() bool { _, n := count(); return n >= 300 })

	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := s.Acquire(ctx, "hung"); err == nil {
				<-ctx.Done()
				r()
			}
		}()
	}
	waitFor(t, 20*time.Second, "the hanging organization to queue", func() bool {
		u := use(s, "hung")
		return u.Held+u.Waiting == 20
	})
	// Four organizations: a share of ceil(9/4) = 3. Sampled while the others
	// run: the hanging one never goes past it.
	share := (total + 3) / 4
	before, n0 := count()
	var most int
	waitFor(t, 20*time.Second, "3000 more uploads", func() bool {
		most = max(most, use(s, "hung").Held)
		_, n := count()
		return n >= n0+3000
	})
	after, _ := count()
	if most > share {
		t.Errorf("the hanging organization held %d slots, over its share of %d", most, share)
	}
	lo, hi := after["orgA"]-before["orgA"], 0
	for _, org := range orgs {
		d := after[org] - before[org]
		lo, hi = min(lo, d), max(hi, d)
	}
	t.Logf("9 slots, 3 busy organizations and one hanging on %d slots (share %d): uploads A %d, B %d, C %d; max/min %.2f",
		most, share, after["orgA"]-before["orgA"], after["orgB"]-before["orgB"], after["orgC"]-before["orgC"], float64(hi)/float64(lo))
	if float64(hi) > 1.25*float64(lo) {
		t.Errorf("unfair: from %v to %v", before, after)
	}
}
