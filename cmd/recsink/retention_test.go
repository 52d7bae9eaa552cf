package main_test

import (
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestRetention_PrunesOldHistory: recsink serve with --retention prunes
// the events of recordings that finished longer ago, at start; the
// recording itself stays listed. With retention off nothing is pruned.
func TestRetention_PrunesOldHistory(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	rec.MustPut(t, randomBytes(t, 64<<10))
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	events := func() int {
		out := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil)
		evs, _ := out["events"].([]any)
		return len(evs)
	}
	if n := events(); n == 0 {
		t.Fatal("an uploaded recording with no events")
	}

	e.Main.Config.Retention = 0 // off: a restart keeps everything
	e.Main.Restart(t)
	if n := events(); n == 0 {
		t.Fatal("retention 0 pruned the events")
	}

	// Finished longer ago than a millisecond (the restart alone takes
	// longer): pruned at the next start.
	e.Main.Config.Retention = time.Millisecond
	e.Main.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for events() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events of a recording finished longer ago than --retention still there: %d", events())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	out := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil)
	if out["state"] != recsink.RecordingUploaded {
		t.Fatalf("the recording itself changed: %v", out["state"])
	}
}
