package main_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3spy"
)

// TestOneWriter_PausedNode is issue 11's first proof. Three nodes, lease
// TTL 1 s. Node 1 runs two recordings:
//
//   - A, stopped with every byte in S3, whose CompleteMultipartUpload from
//     node 1 the proxy holds back: what another node may complete;
//   - B, live, with bytes in node 1's spool not yet in S3, its recorder
//     talking to node 2 all along: what must wait for node 1.
//
// Node 1 is stopped with SIGSTOP for at least three lease periods and until
// another node has completed A; its held request then gets the answer S3
// gives to the completion of an upload completed by someone else
// (NoSuchUpload), and node 1 gets SIGCONT. A is completed
// once, by another node; node 1 writes no row and no part of A after it
// wakes; B is written by node 1 alone, which holds it again under a renewed
// lease, and its recorder carries on; both objects are byte-identical.
//
// Not parallel: the TestOneWriter_* tests measure against a 1 s lease, which
// the rest of the package running at once on a small machine would blur.
func TestOneWriter_PausedNode(t *testing.T) {
	c := mustOWCluster(t, 3, nil)
	api := c.Client(0) // the test's view; node 1 is the paused one
	api.MustDo(t, 200, "PUT", "/v1/storage", c.Storage(c.Bucket, c.Key))
	meeting := c.Meeting(t)
	const paused, relay = 1, 2

	a := c.Via(MustStartRecording(t, c.Client(paused), meeting), relay)
	b := c.Via(MustStartRecording(t, c.Client(paused), meeting), relay)
	dataA := randomBytes(t, 10*mib) // two whole parts: every byte reaches S3 before the stop
	dataB := randomBytes(t, 13*mib+3)
	a.MustPut(t, dataA)
	waitUploaded(t, api, a.ID, 10*mib)
	holdA := c.Spy.Hold(func(r s3spy.Request) bool {
		return r.Op == "CompleteMultipartUpload" && r.Key == a.ObjectKey && r.PID == c.PID(paused)
	})
	api.MustDo(t, 200, "POST", "/v1/recordings/"+a.ID+"/stop", nil)
	holdA.WaitCaught(t, 1, 20*time.Second)
	if out := recording(t, api, a.ID); out["state"] != recsink.RecordingStopping || out["bytesUploaded"] != out["bytesReceived"] || out["bytesReceived"] != float64(10*mib) {
		t.Fatalf("A before the pause: %v; want stopping with all 10 MiB in S3", out)
	}

	b.MustPut(t, dataB[:7*mib])
	waitUploaded(t, api, b.ID, 5*mib)
	outB := recording(t, api, b.ID)
	if outB["state"] != recsink.RecordingRecording || outB["bytesReceived"] != float64(7*mib) || outB["bytesUploaded"].(float64) >= outB["bytesReceived"].(float64) {
		t.Fatalf("B before the pause: %v; want recording with unsent bytes", outB)
	}
	if owner, _, _ := c.Owner(t, b.ID); owner != c.IDs[paused] {
		t.Fatalf("B owned by %q, want node 1 (%s)", owner, c.IDs[paused])
	}

	// Pause node 1.
	pausedAtDB := c.DBNow(t)
	c.Signal(t, paused, syscall.SIGSTOP)
	pausedAt := time.Now()
	t.Cleanup(func() { c.Nodes[paused].cmd.Process.Signal(syscall.SIGCONT) })

	WaitState(t, api, a.ID, recsink.RecordingUploaded, 20*time.Second)
	takeover := time.Since(pausedAt)
	// Node 1 stays stopped for at least three lease periods.
	if d := time.Until(pausedAt.Add(3 * owLeaseTTL)); d > 0 {
		time.Sleep(d) // the scenario's pause, not a wait for a condition
	}
	if owner, _, _ := c.Owner(t, b.ID); owner != c.IDs[paused] {
		t.Errorf("B taken from the paused node while its unsent bytes are in node 1's spool: owner %q", owner)
	}
	if got := recording(t, api, b.ID)["state"]; got != recsink.RecordingRecording {
		t.Errorf("B while node 1 is paused: state %v, want recording", got)
	}

	// Node 1's CompleteMultipartUpload, delayed in the network until now,
	// gets what S3 answers once another client has completed the upload:
	// NoSuchUpload. The answer waits in node 1's socket.
	holdA.Reject(404, "NoSuchUpload", "The specified multipart upload does not exist.")

	wokeAtDB := c.DBNow(t)
	c.Signal(t, paused, syscall.SIGCONT)
	wokeAt := time.Now()

	// B: the recorder carries on through node 2 from the durable offset.
	if off := waitOffset(t, b, 10*time.Second); off != 7*mib {
		t.Fatalf("B's offset through node 2 after node 1 woke: %d, want %d", off, 7*mib)
	}
	// Node 1 holds B again under a renewed lease within two lease periods.
	for deadline := time.Now().Add(2 * owLeaseTTL); ; {
		owner, lease, valid := c.Owner(t, b.ID)
		if owner == c.IDs[paused] && valid {
			break
		}
		if owner != c.IDs[paused] || time.Now().After(deadline) {
			t.Errorf("B after node 1 woke: owner %q lease %v valid %v; want node 1 under a renewed lease", owner, lease, valid)
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	b.MustPut(t, dataB[7*mib:])
	api.MustDo(t, 200, "POST", "/v1/recordings/"+b.ID+"/stop", nil)
	WaitState(t, api, b.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, c.S3, c.Bucket, a.ObjectKey, dataA)
	checkObject(t, c.S3, c.Bucket, b.ObjectKey, dataB)
	c.Rcv.WaitEvent(t, recsink.WebhookRecordingFinished, forRecording(a.ID), 20*time.Second)
	c.Rcv.WaitEvent(t, recsink.WebhookRecordingFinished, forRecording(b.ID), 20*time.Second)

	// A was completed once, by another node.
	var completes []s3spy.Request
	for _, r := range c.Spy.Requests() {
		if r.Op == "CompleteMultipartUpload" && r.Key == a.ObjectKey && r.OK() {
			completes = append(completes, r)
		}
	}
	if len(completes) != 1 || c.NodeOfPID(completes[0].PID) == paused {
		t.Errorf("A: %d successful CompleteMultipartUpload, want 1 from another node than node 1: %+v", len(completes), completes)
	}
	if evs, n := c.Rcv.eventsFor(recsink.WebhookRecordingFinished, forRecording(a.ID)); len(evs) != 1 || n != 1 {
		t.Errorf("A: recording.finished %d events accepted %d times, want once: %v", len(evs), n, evs)
	}

	// Node 1 wrote no row and no part of A after it woke, and sent S3 no
	// write for A.
	var afterWake, afterPause int
	for _, w := range c.Audit(t, a.ID) {
		if w.App != nodeApp(paused) {
			continue
		}
		if w.At.After(pausedAtDB) {
			afterPause++
		}
		if w.At.After(wokeAtDB) {
			afterWake++
			t.Errorf("A: node 1 wrote after it woke: %s", w)
		}
	}
	for _, r := range c.Spy.Requests() {
		if r.Key == a.ObjectKey && r.PID == c.PID(paused) && r.Start.After(wokeAt) && isWrite(r.Op) {
			t.Errorf("A: node 1 sent %s after it woke (status %d %s)", r.Op, r.Status, r.Code)
		}
	}

	// B was written by node 1 alone.
	writers := map[string]int{}
	for _, w := range c.Audit(t, b.ID) {
		writers[w.App]++
	}
	if len(writers) != 1 || writers[nodeApp(paused)] == 0 {
		t.Errorf("B written by %v, want node 1 alone", writers)
		for _, w := range c.Audit(t, b.ID) {
			t.Logf("B: %s", w)
		}
	}
	for _, r := range c.Spy.Requests() {
		if r.Key == b.ObjectKey && isWrite(r.Op) && r.PID != c.PID(paused) {
			t.Errorf("B: %s sent by node %d, not node 1", r.Op, c.NodeOfPID(r.PID))
		}
	}
	if t.Failed() {
		for _, w := range c.Audit(t, a.ID) {
			t.Logf("A: %s", w)
		}
	}
	t.Logf("takeover: A completed by node %d %s after node 1 was paused (lease TTL %s); node 1 paused %s",
		c.NodeOfPID(firstPID(completes)), takeover.Round(10*time.Millisecond), owLeaseTTL, wokeAt.Sub(pausedAt).Round(10*time.Millisecond))
	t.Logf("rows of A written by node 1 after it woke: %d (after the pause began: %d)", afterWake, afterPause)
	t.Logf("B: written by %v; offset 7 MiB kept; both objects byte-identical", writers)
}

func firstPID(rs []s3spy.Request) int {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].PID
}
