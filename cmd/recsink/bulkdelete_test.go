package main_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestBulkDelete_50: a bulk delete of 50 uploaded recordings answers 204 at
// once; every object is gone from the bucket within seconds and every
// recording shows deleted; a second identical call answers 204 too. A
// running recording in the same call is left alone, with the reason on it.
func TestBulkDelete_50(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	const n = 50
	ids := make([]string, n)
	for i := range n {
		rec := MustStartRecording(t, e.Org, meeting)
		rec.MustPut(t, randomBytes(t, 1000+i))
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		ids[i] = rec.ID
	}
	for _, id := range ids {
		WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	}
	if got := e.S3.ListObjects(t, e.Bucket, "recordings/"); len(got) != n {
		t.Fatalf("%d objects before, want %d", len(got), n)
	}
	running := MustStartRecording(t, e.Org, meeting)

	body := map[string]any{"recordingIds": append(slices.Clone(ids), running.ID, "rec_does_not_exist")}
	began := time.Now()
	e.Org.MustDo(t, 204, "POST", "/v1/recordings/bulk-delete", body)
	answered := time.Since(began)
	for {
		left := e.S3.ListObjects(t, e.Bucket, "recordings/")
		left = slices.DeleteFunc(left, func(k string) bool { return k == running.ObjectKey })
		if len(left) == 0 {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("%d objects left %s after the bulk delete", len(left), time.Since(began))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	gone := time.Since(began)
	for _, id := range ids {
		out := WaitState(t, e.Org, id, recsink.RecordingDeleted, 10*time.Second)
		if findEvent(t, out, recsink.EventDeleteRequested) == "" {
			t.Errorf("recording %s has no delete_requested event", id)
		}
	}
	t.Logf("bulk delete of %d recordings: 204 in %s, every object gone in %s", n, answered.Round(time.Millisecond), gone.Round(time.Millisecond))

	// The running recording is untouched and says why.
	out := waitEvent(t, e.Org, running.ID, recsink.EventDeleteFailed, 10*time.Second)
	if out["state"] != recsink.RecordingRecording || !strings.Contains(findEvent(t, out, recsink.EventDeleteFailed), "stop it") {
		t.Errorf("running recording after a bulk delete: %v", out)
	}

	// Idempotent.
	e.Org.MustDo(t, 204, "POST", "/v1/recordings/bulk-delete", map[string]any{"recordingIds": ids})
	status, errOut := e.Org.Do(t, "POST", "/v1/recordings/bulk-delete", map[string]any{"recordingIds": make([]string, 101)})
	if status != 400 || errOut["field"] != "recordingIds" {
		t.Errorf("101 IDs: %d %v", status, errOut)
	}
}

// waitEvent waits until the recording has an event of typ and returns it.
func waitEvent(tb testing.TB, c *Client, id, typ string, within time.Duration) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		out := c.MustDo(tb, 200, "GET", "/v1/recordings/"+id, nil)
		for _, ev := range out["events"].([]any) {
			if ev.(map[string]any)["type"] == typ {
				return out
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("recording %s: no %s event within %s: %v", id, typ, within, out)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}
