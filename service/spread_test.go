package service

import (
	"fmt"
	"testing"
	"time"
)

// TestSpreader: a part completed while the recording is live waits at most
// half the time it took to fill and at most the bound, parts found at the
// start and parts of a stopped recording do not wait, and the waits of
// recordings whose parts complete together are spread over the bound.
func TestSpreader(t *testing.T) {
	t0 := time.Now()
	s := newSpreader(10*time.Second, t0, []int32{1, 2})
	for _, n := range []int32{1, 2} {
		if w := s.wait(n, t0.Add(time.Second), true); w > 0 {
			t.Fatalf("part %d found at the start waits %v", n, w)
		}
	}
	// Part 3 filled in 4 s: it waits at most 2 s, and the same wait when asked again.
	w := s.wait(3, t0.Add(4*time.Second), true)
	if w < 0 || w > 2*time.Second {
		t.Fatalf("part 3, filled in 4 s, waits %v; want at most 2 s", w)
	}
	if again := s.wait(3, t0.Add(4*time.Second), true); again != w {
		t.Fatalf("part 3 asked again waits %v, first %v", again, w)
	}
	if w := s.wait(3, t0.Add(4*time.Second), false); w != 0 {
		t.Fatalf("part 3 of a stopped recording waits %v", w)
	}
	// Part 4 filled in 60 s: the bound, 10 s.
	if w := s.wait(4, t0.Add(64*time.Second), true); w < 0 || w > 10*time.Second {
		t.Fatalf("part 4, filled in 60 s, waits %v; want at most 10 s", w)
	}
	if w := newSpreader(-1, t0, nil).wait(1, t0.Add(time.Minute), true); w != 0 {
		t.Fatalf("with no spread, a part waits %v", w)
	}

	// 250 recordings whose parts completed in the same second: their
	// uploads start over the bound, not in that second.
	var waits [10]int // by second
	for range 250 {
		s := newSpreader(10*time.Second, t0, nil)
		w := s.wait(1, t0.Add(21*time.Second), true)
		waits[min(int(w/time.Second), 9)]++
	}
	for sec, n := range waits {
		if n > 60 {
			t.Fatalf("%d of 250 uploads start in second %d of the spread: %v", n, sec, waits)
		}
	}
}

// TestProgressInterval: a node saves its recordings' progress every 2 s,
// and at most about 100 rows a second when it runs more than 200.
func TestProgressInterval(t *testing.T) {
	s := &Service{recorders: map[string]*recorder{}}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 2 * time.Second}, {200, 2 * time.Second}, {500, 5 * time.Second}, {1000, 10 * time.Second}} {
		for len(s.recorders) < c.n {
			s.recorders[fmt.Sprint(len(s.recorders))] = nil
		}
		if got := s.progressInterval(); got != c.want {
			t.Errorf("%d recordings: progress saved every %v, want %v", c.n, got, c.want)
		}
	}
}
