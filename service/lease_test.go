package service_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
)

// A node cut off from the database (or paused) past its lease: another
// node completes its stopped recording, whose every byte is in the bucket,
// exactly once; the cut-off node writes nothing of it after its local lease
// lapsed, neither a row nor an S3 request, and stops it when it is back,
// keeping its spool. Its live recording, whose unsent bytes only it holds,
// is left to it and carries on under a renewed lease.
func TestPausedNode(t *testing.T) {
	t.Parallel()
	const ttl = 1500 * time.Millisecond
	ctx := context.Background()
	store1 := MustOpenStore(t)
	store2 := store1.another()
	s3 := newFakeS3()
	s3node1, s3node2 := s3.view(), s3.view()
	fast := func(c *service.Config) { c.LeaseTTL = ttl; c.RetryMax = 100 * time.Millisecond }
	node1 := MustOpenNode(t, store1, s3node1, "node-1", fast)
	node2 := MustOpenNode(t, store2, s3node2, "node-2", fast)
	orgID, meetingID := MustSetUp(t, node1, "AKIAPAUSE")

	// Stopped, with every part in the bucket; node-1 cannot complete it.
	s3node1.completeFails.Store(true)
	stopped, token, err := node1.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node1.Append(ctx, stopped.ID, token, 0, bytes.NewReader(make([]byte, 5<<20+10))); err != nil {
		t.Fatal(err)
	}
	if _, err := node1.StopRecording(ctx, orgID, stopped.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every part in the bucket", func() bool {
		rec, err := store1.FindRecording(ctx, orgID, stopped.ID)
		return err == nil && rec.SHA256 != "" && rec.BytesUploaded == rec.BytesReceived && rec.BytesReceived == 5<<20+10
	})
	// Live, with unsent bytes in node-1's spool.
	live, liveToken, err := node1.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node1.Append(ctx, live.ID, liveToken, 0, strings.NewReader("live media")); err != nil {
		t.Fatal(err)
	}

	// Cut node-1 off: its renewals fail. Once a lease period has passed,
	// its local leases have lapsed (they end a margin before the store's).
	store1.renewFails.Store(true)
	cut := time.Now()
	waitFor(t, 2*ttl, "a lease period", func() bool { return time.Since(cut) >= ttl })
	rows, s3writes := store1.attemptCount(stopped.ID), s3node1.writeCount(stopped.ObjectKey)

	took := waitFor(t, 30*time.Second, "node-2 completes the stopped recording", func() bool {
		rec, err := store2.FindRecording(ctx, orgID, stopped.ID)
		return err == nil && rec.State == recsink.RecordingUploaded
	})
	t.Logf("taken over and completed by node-2 %s after node-1 was cut off (lease %s)", (time.Since(cut)).Round(time.Millisecond), ttl)
	_ = took
	rec, err := store2.FindRecording(ctx, orgID, live.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Owner.Node != "node-1" || rec.State != recsink.RecordingRecording {
		t.Errorf("the live recording was taken from node-1: %s, %s", rec.Owner.Node, rec.State)
	}

	// node-1 is back.
	s3node1.completeFails.Store(false)
	store1.renewFails.Store(false)
	waitFor(t, 2*ttl, "node-1 lets the stopped recording go", func() bool { return running(node1) == 1 })
	// The live recording carries on on node-1 under its renewed lease.
	if _, err := node1.Append(ctx, live.ID, liveToken, 10, strings.NewReader(" and more")); err != nil {
		t.Fatalf("append to the live recording after the pause: %v", err)
	}
	if _, err := node1.StopRecording(ctx, orgID, live.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "node-1 completes the live recording", func() bool {
		rec, err := store1.FindRecording(ctx, orgID, live.ID)
		return err == nil && rec.State == recsink.RecordingUploaded
	})

	if got := store1.attemptCount(stopped.ID) - rows; got != 0 {
		t.Errorf("node-1 tried %d row writes of the stopped recording after its lease lapsed", got)
	}
	if got := s3node1.writeCount(stopped.ObjectKey) - s3writes; got != 0 {
		t.Errorf("node-1 sent %d S3 writes for the stopped recording after its lease lapsed", got)
	}
	finished := func(n *node, id string) int {
		return n.notes.count(recsink.WebhookRecordingFinished, "evt_"+id+"_finished")
	}
	if a, b := finished(node1, stopped.ID), finished(node2, stopped.ID); a != 0 || b != 1 {
		t.Errorf("recording.finished of the stopped recording queued %d times by node-1, %d by node-2", a, b)
	}
	if a, b := finished(node1, live.ID), finished(node2, live.ID); a != 1 || b != 0 {
		t.Errorf("recording.finished of the live recording queued %d times by node-1, %d by node-2", a, b)
	}
	if _, err := os.Stat(filepath.Join(node1.spool, stopped.ID)); err != nil {
		t.Errorf("node-1's spool of the stopped recording: %v", err)
	}
}
