package service

import (
	"math/rand/v2"
	"time"
)

// DefaultUploadSpread bounds the wait of a part completed while its
// recording is live (Config.UploadSpread).
const DefaultUploadSpread = 10 * time.Second

// spreader keeps recordings that started together from uploading together.
// Recordings at the same rate fill their parts at the same moments, every
// 21 s at 2 Mbit/s, and hundreds of part uploads starting in the same
// second take the CPU from the ingest path: acknowledgements waited up to
// 300 ms at 250 recordings (BenchmarkConcurrentRecordings). So a part
// completed while its recording is live waits a random time first, up to
// half the time it took to fill and at most max: its upload still begins
// before the next part is complete, so a recording never falls behind, and
// the burst is spread over seconds. Parts of a stopped recording, parts
// found at a resume and retries do not wait.
type spreader struct {
	max  time.Duration
	last time.Time // when the previous new part was seen
	due  map[int32]time.Time
}

// newSpreader returns the spreader of a recorder starting at now with the
// parts found complete, which do not wait.
func newSpreader(max time.Duration, now time.Time, found []int32) *spreader {
	s := &spreader{max: max, last: now, due: map[int32]time.Time{}}
	for _, n := range found {
		s.due[n] = now
	}
	return s
}

// wait returns how long part n still waits at now; live reports whether the
// recording still takes media.
func (s *spreader) wait(n int32, now time.Time, live bool) time.Duration {
	if !live || s.max <= 0 {
		return 0
	}
	due, ok := s.due[n]
	if !ok {
		fill := now.Sub(s.last)
		s.last = now
		due = now.Add(rand.N(min(s.max, fill/2) + 1))
		s.due[n] = due
	}
	return due.Sub(now)
}

// sent forgets part n once S3 confirmed it.
func (s *spreader) sent(n int32) { delete(s.due, n) }
