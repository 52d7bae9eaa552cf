package recsink_test

import (
	"testing"

	"github.com/recsink/recsink"
)

// TestCanTransition spells out the whole state table: every pair not listed
// is refused.
func TestCanTransition(t *testing.T) {
	const (
		rec  = recsink.RecordingRecording
		blk  = recsink.RecordingBlocked
		stp  = recsink.RecordingStopping
		upl  = recsink.RecordingUploaded
		fail = recsink.RecordingFailed
		del  = recsink.RecordingDeleted
	)
	allowed := map[[2]string]bool{
		{rec, rec}: true, {rec, blk}: true, {rec, stp}: true, {rec, upl}: true, {rec, fail}: true,
		{blk, blk}: true, {blk, rec}: true, {blk, stp}: true, {blk, upl}: true, {blk, fail}: true,
		{stp, stp}: true, {stp, blk}: true, {stp, upl}: true, {stp, fail}: true,
		{upl, upl}: true, {upl, del}: true,
		{fail, fail}: true, {fail, del}: true,
		{del, del}: true,
	}
	states := []string{rec, blk, stp, upl, fail, del}
	for _, from := range states {
		for _, to := range states {
			t.Run(from+"To"+to, func(t *testing.T) {
				if got, want := recsink.CanTransition(from, to), allowed[[2]string{from, to}]; got != want {
					t.Fatalf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
	for _, bad := range [][2]string{{"", ""}, {"nope", "nope"}, {rec, "nope"}, {"nope", rec}} {
		if recsink.CanTransition(bad[0], bad[1]) {
			t.Errorf("CanTransition(%q, %q) = true for an unknown state", bad[0], bad[1])
		}
	}
}
