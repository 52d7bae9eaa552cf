package main_test

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3spy"
)

// TestOneWriter_SkewedClock is issue 11's second proof: node 1's clock is
// an hour ahead (--clock-offset 1h), node 2's an hour behind (-1h), node 0's
// right; all three share one PostgreSQL, lease TTL 1 s, node-loss timeout
// 30 min. No lease is taken early or held late:
//
//   - every lease a node writes ends within the TTL of the database's clock
//     at the write, and after it;
//   - recordings of the healthy nodes 0 and 2 — one stopped with every byte
//     in S3 whose completion the proxy holds back (what a takeover would
//     complete), one live with unsent bytes (what a node that thinks its
//     owner gone for 30 min would fail) — are written by their own node
//     alone, for at least three lease periods;
//   - node 1 (an hour ahead) dies with a stopped recording whose bytes are
//     all in S3: another node completes it once its last lease has expired
//     on the database's clock, within seconds, not an hour later.
func TestOneWriter_SkewedClock(t *testing.T) {
	offsets := []string{"0s", "1h", "-1h"}
	c := mustOWCluster(t, 3, func(i int) []string {
		return []string{"--clock-offset", offsets[i], "--node-loss-timeout", "30m"}
	})
	api := c.Client(0)
	api.MustDo(t, 200, "PUT", "/v1/storage", c.Storage(c.Bucket, c.Key))
	meeting := c.Meeting(t)
	const fast, slow = 1, 2

	// Stopped recordings P[i] on node i, live L[i] on the healthy nodes.
	var P [3]Started
	L := map[int]Started{}
	data := map[string][]byte{}
	for i := range P {
		P[i] = MustStartRecording(t, c.Client(i), meeting)
		data[P[i].ID] = randomBytes(t, 10*mib) // two whole parts
	}
	for _, i := range []int{0, slow} {
		L[i] = MustStartRecording(t, c.Client(i), meeting)
		data[L[i].ID] = randomBytes(t, 12*mib+i)
	}
	put := func(r Started, b []byte) {
		if resp := r.Put(t, bytes.NewReader(b)); resp.StatusCode/100 != 2 {
			t.Errorf("PUT ingest of %s: status %d", r.ID, resp.StatusCode)
		}
	}
	for _, r := range P {
		put(r, data[r.ID])
	}
	for _, r := range L {
		put(r, data[r.ID][:7*mib]) // a whole part in S3, 2 MiB only in the spool
	}
	for _, r := range P {
		waitUploaded(t, api, r.ID, 10*mib)
	}
	for _, r := range L {
		waitUploaded(t, api, r.ID, 5*mib)
	}

	var holds [3]*s3spy.Hold
	for i, r := range P {
		holds[i] = c.Spy.Hold(func(q s3spy.Request) bool {
			return q.Op == "CompleteMultipartUpload" && q.Key == r.ObjectKey && q.PID == c.PID(i)
		})
	}
	for _, r := range P {
		api.MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
	}
	for i, h := range holds {
		if !waitFor(10*time.Second, func() bool { return len(h.Caught()) > 0 }) {
			t.Errorf("P%d: node %d sent no CompleteMultipartUpload within 10 s of the stop: %v", i, i, recording(t, api, P[i].ID))
		}
	}

	// Node 1, an hour ahead, dies.
	c.Nodes[fast].cmd.Process.Signal(syscall.SIGKILL)
	c.Nodes[fast].cmd.Wait()
	killed := time.Now()
	taken := waitFor(15*time.Second, func() bool { return recording(t, api, P[fast].ID)["state"] == recsink.RecordingUploaded })
	takeover := time.Since(killed)
	if !taken {
		t.Errorf("P1 of the dead node an hour ahead: %v %s after it died, want uploaded (its lease held late?)", recording(t, api, P[fast].ID)["state"], takeover.Round(time.Millisecond))
	}
	// The healthy nodes keep what they run for at least three lease periods.
	if d := time.Until(killed.Add(3 * owLeaseTTL)); d > 0 {
		time.Sleep(d) // the observation window of the scenario, not a wait for a condition
	}
	for _, i := range []int{0, slow} {
		for _, r := range []Started{P[i], L[i]} {
			if owner, _, _ := c.Owner(t, r.ID); owner != c.IDs[i] {
				t.Errorf("%s of healthy node %d is owned by node %d (lease taken early)", r.ID, i, c.NodeOfID(owner))
			}
			var foreign []string
			for _, w := range c.Audit(t, r.ID) {
				if w.App != nodeApp(i) {
					foreign = append(foreign, w.String())
				}
			}
			if len(foreign) > 0 {
				t.Errorf("%s of healthy node %d: %d writes by other nodes, first: %q", r.ID, i, len(foreign), foreign[:min(3, len(foreign))])
			}
		}
		if got := recording(t, api, L[i].ID)["state"]; got != recsink.RecordingRecording {
			t.Errorf("live recording of healthy node %d: %v, want recording", i, got)
		}
		if got := recording(t, api, P[i].ID)["state"]; got != recsink.RecordingStopping {
			t.Errorf("stopped recording of healthy node %d whose completion is held back: %v, want stopping", i, got)
		}
	}

	// The healthy nodes finish their own recordings.
	for _, i := range []int{0, slow} {
		holds[i].Release()
		put(L[i], data[L[i].ID][7*mib:])
		if status, out := api.Do(t, "POST", "/v1/recordings/"+L[i].ID+"/stop", nil); status != 200 {
			t.Errorf("stop %s of node %d: %d %v", L[i].ID, i, status, out)
		}
	}
	finish := time.Now().Add(30 * time.Second) // for all five together
	for _, r := range append(P[:], L[0], L[slow]) {
		if !waitFor(time.Until(finish), func() bool {
			st := recording(t, api, r.ID)["state"]
			return st == recsink.RecordingUploaded || st == recsink.RecordingFailed
		}) || recording(t, api, r.ID)["state"] != recsink.RecordingUploaded {
			out := recording(t, api, r.ID)
			t.Errorf("%s: %v, want uploaded: %v", r.ID, out["state"], out["lastError"])
			continue
		}
		checkObject(t, c.S3, c.Bucket, r.ObjectKey, data[r.ID])
	}
	for _, i := range []int{0, slow} {
		for _, r := range []Started{P[i], L[i]} {
			for _, q := range c.Spy.Requests() {
				if q.Key == r.ObjectKey && isWrite(q.Op) && q.PID != c.PID(i) {
					t.Errorf("%s of node %d: %s sent by node %d", r.ID, i, q.Op, c.NodeOfPID(q.PID))
				}
			}
		}
	}

	// P1 was claimed only after node 1's last lease expired on the
	// database's clock.
	var lastLease, claimed time.Time
	claimer := ""
	for _, w := range c.Audit(t, P[fast].ID) {
		if w.App == nodeApp(fast) && w.LeaseChanged() && w.Lease.After(lastLease) {
			lastLease = *w.Lease
		}
		if claimer == "" && w.NewOwner != "" && w.NewOwner != c.IDs[fast] && w.OldOwner == c.IDs[fast] {
			claimed, claimer = w.At, w.App
		}
	}
	switch {
	case claimer == "":
		t.Errorf("P1: no other node claimed it")
	case claimed.Before(lastLease):
		t.Errorf("P1: claimed by %s at %s, before node 1's lease expired at %s (DB clock)", claimer, claimed.Format("15:04:05.000"), lastLease.Format("15:04:05.000"))
	}

	// Every lease written ends after the write and within the TTL, on the
	// database's clock.
	leases := map[string]string{}
	bad := map[string]bool{} // one error per node
	for _, r := range append(P[:], L[0], L[slow]) {
		for _, w := range c.Audit(t, r.ID) {
			if w.Table != "recordings" || !w.LeaseChanged() {
				continue
			}
			d := w.Lease.Sub(w.At)
			if (d <= 0 || d > owLeaseTTL) && !bad[w.App] {
				bad[w.App] = true
				t.Errorf("%s wrote a lease ending %s after the write (DB clock), want within (0, %s]: %s", w.App, d.Round(time.Millisecond), owLeaseTTL, w)
			}
			leases[w.App] = fmt.Sprintf("%s ahead of the write", d.Round(time.Millisecond))
		}
	}
	if claimer != "" {
		t.Logf("takeover of the dead node's (clock +1h) stopped recording: uploaded %s after SIGKILL; claimed by %s %s after node 1's last lease expired (DB clock)",
			takeover.Round(10*time.Millisecond), claimer, claimed.Sub(lastLease).Round(time.Millisecond))
	}
	t.Logf("last lease written by each node: %v (node 0 ±0, node 1 +1h, node 2 -1h)", leases)
}

// waitFor polls cond until it holds or within passes, and reports whether
// it held.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}
