package service_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
)

// A stop from the API races the maximum-duration timer's stop and the
// confirmation of the last part, many times over: the recording always ends
// uploaded, no state is ever saved backwards, and recording.finished is
// queued once.
func TestStopRacesCompletion(t *testing.T) {
	store := MustOpenStore(t)
	s3 := newFakeS3()
	s3.partDelay = func() time.Duration { return time.Duration(rand.N(300)) * time.Microsecond }
	// The maximum duration is a few milliseconds: its timer fires around
	// the API's stop.
	const maxDuration = 4 * time.Millisecond
	n := MustOpenNode(t, store, s3, "node-1", func(c *service.Config) { c.MaxDuration = maxDuration })
	orgID, meetingID := MustSetUp(t, n, "AKIARACE")
	ctx := context.Background()

	iterations := 1000
	if testing.Short() {
		iterations = 100
	}
	const workers = 4
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				raceOnce(t, store, n, orgID, meetingID, maxDuration)
			}
		}()
	}
	start := time.Now()
	for i := range iterations {
		if t.Failed() {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d stops raced against completion and the maximum duration in %s", iterations, time.Since(start).Round(time.Millisecond))
	_ = ctx
}

func raceOnce(t *testing.T, store *spyStore, n *node, orgID, meetingID string, maxDuration time.Duration) {
	ctx := context.Background()
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Error(err)
		return
	}
	// Media may arrive after the timer's stop: then it is refused.
	media := bytes.Repeat([]byte("x"), 1+rand.IntN(4096))
	if _, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(media)); err != nil && recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Error(err)
		return
	}
	time.Sleep(time.Duration(rand.N(int64(2 * maxDuration)))) // jitter around the timer
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Errorf("stop %s: %v", rec.ID, err)
		return
	}
	// The event is queued just before the final state is saved, and the
	// spool removed just after.
	select {
	case <-n.notes.queued(recsink.WebhookRecordingFinished, "evt_"+rec.ID+"_finished"):
	case <-n.notes.queued(recsink.WebhookRecordingFailed, "evt_"+rec.ID+"_failed"):
	case <-time.After(10 * time.Second):
		t.Errorf("recording %s: not finished within 10 s", rec.ID)
		return
	}
	waitFor(t, 10*time.Second, "recording "+rec.ID+" retired", func() bool {
		_, err := os.Stat(filepath.Join(n.spool, rec.ID))
		return errors.Is(err, os.ErrNotExist) || n.notes.count(recsink.WebhookRecordingFailed, "evt_"+rec.ID+"_failed") > 0
	})
	got, err := store.FindRecording(ctx, orgID, rec.ID)
	if err != nil {
		t.Error(err)
		return
	}
	if got.State != recsink.RecordingUploaded {
		t.Errorf("recording %s ended %s (%s)", rec.ID, got.State, got.LastError)
	}
	states := store.savedStates(rec.ID)
	checkForward(t, rec.ID, states)
	if len(states) == 0 || states[len(states)-1] != recsink.RecordingUploaded {
		t.Errorf("recording %s: last state saved is not uploaded: %v", rec.ID, states)
	}
	if c := n.notes.count(recsink.WebhookRecordingFinished, "evt_"+rec.ID+"_finished"); c != 1 {
		t.Errorf("recording %s: recording.finished queued %d times", rec.ID, c)
	}
	if c := n.notes.count(recsink.WebhookRecordingFailed, "evt_"+rec.ID+"_failed"); c != 0 {
		t.Errorf("recording %s: recording.failed queued", rec.ID)
	}
	if got.EndDate == nil || got.StopReason == "" || got.SizeBytes == nil || *got.SizeBytes != got.BytesReceived {
		t.Errorf("recording %s: uploaded without its stop or size: %+v", rec.ID, got)
	}
}

// A start whose row cannot be created leaves nothing running: no row in
// state recording, no key held, no spool, no multipart upload.
func TestStartFails(t *testing.T) {
	t.Parallel()
	// before: the row is not written. after: it is, and the store answers
	// an error (a reset at the commit); the start marks it failed. unseen:
	// the start cannot even read it back, so this node's renewals keep a
	// row that runs nowhere, until it is settled as a stray.
	for _, mode := range []string{"before", "after", "unseen"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			store := MustOpenStore(t)
			s3 := newFakeS3()
			n := MustOpenNode(t, store, s3, "node-1", func(c *service.Config) { c.LeaseTTL = 300 * time.Millisecond })
			orgID, meetingID := MustSetUp(t, n, "AKIASTART")
			ctx := context.Background()

			create := mode
			if mode == "unseen" {
				create = "after"
				store.findFails.Store(true)
			}
			store.createFails.Store(create)
			if _, _, err := n.StartRecording(ctx, orgID, meetingID); err == nil {
				t.Fatal("the start succeeded")
			}
			store.createFails.Store("")
			store.findFails.Store(false)
			if mode == "unseen" {
				took := waitFor(t, 30*time.Second, "the stray row settled", func() bool {
					recs, _, err := store.ListRecordings(ctx, orgID, recsink.RecordingFilter{})
					return err == nil && len(recs) == 1 && recs[0].Finished()
				})
				t.Logf("a start's row written behind an error was settled %s later (lease 300ms)", took.Round(time.Millisecond))
			}

			recs, _, err := n.ListRecordings(ctx, orgID, recsink.RecordingFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Holding() {
					t.Errorf("recording %s is %s after a failed start", r.ID, r.State)
				}
			}
			if mode != "before" && (len(recs) != 1 || recs[0].State != recsink.RecordingFailed) {
				t.Errorf("the row written before the error is not marked failed: %+v", recs)
			}
			creds, err := n.ListCredentials(ctx, orgID)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range creds {
				if len(c.ActiveRecordings) != 0 || c.SafeToDeleteReason != "" {
					t.Errorf("key %s is held after a failed start: %+v", c.AccessKeyID, c)
				}
			}
			if running(n) != 0 {
				t.Errorf("recorders running: %v", n.ActiveRecordings())
			}
			if entries, _ := os.ReadDir(n.spool); len(entries) != 0 {
				t.Errorf("spool left behind: %v", entries)
			}
			if u := s3.openUploads(); u != 0 {
				t.Errorf("%d multipart uploads left open", u)
			}

			// And the next start works.
			rec, _, err := n.StartRecording(ctx, orgID, meetingID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.State != recsink.RecordingRecording {
				t.Fatalf("state %s", rec.State)
			}
		})
	}
}

// A node that finds that another node claimed its recording stops that
// recorder within a lease period, writes no row after, and keeps its spool.
func TestLeaseLost(t *testing.T) {
	t.Parallel()
	const ttl = 600 * time.Millisecond
	ctx := context.Background()

	t.Run("Renewal", func(t *testing.T) {
		store := MustOpenStore(t)
		n := MustOpenNode(t, store, newFakeS3(), "node-1", func(c *service.Config) { c.LeaseTTL = ttl })
		orgID, meetingID := MustSetUp(t, n, "AKIALEASE")
		rec, token, err := n.StartRecording(ctx, orgID, meetingID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Append(ctx, rec.ID, token, 0, strings.NewReader("media")); err != nil {
			t.Fatal(err)
		}
		writes := store.writeCount(rec.ID)
		owner, err := store.ClaimRecording(ctx, rec.ID, "node-2", "http://node-2.invalid", time.Hour, true)
		if err != nil || owner.Node != "node-2" {
			t.Fatalf("claim: %+v, %v", owner, err)
		}
		claimed, err := store.FindRecording(ctx, orgID, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, ttl, "node-1 stops the recorder", func() bool { return running(n) == 0 })
		t.Logf("the recorder stopped %s after another node's claim (lease %s, renewals every %s)", took.Round(time.Millisecond), ttl, ttl/3)

		// Its ingest goes to the new owner now.
		var elsewhere *recsink.ElsewhereError
		if _, err := n.Append(ctx, rec.ID, token, -1, strings.NewReader("more")); !errors.As(err, &elsewhere) || elsewhere.URL != "http://node-2.invalid" {
			t.Errorf("append after the loss: %v", err)
		}
		n.Close() // every goroutine of node-1 ends: nothing more can be written
		if w := store.writeCount(rec.ID); w != writes {
			t.Errorf("node-1 wrote %d rows of the recording after losing it", w-writes)
		}
		after, err := store.FindRecording(ctx, orgID, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !after.UpdatedAt.Equal(claimed.UpdatedAt) || after.State != claimed.State || after.Owner.Node != "node-2" {
			t.Errorf("row changed after the claim: %+v, was %+v", after, claimed)
		}
		if _, err := os.Stat(filepath.Join(n.spool, rec.ID)); err != nil {
			t.Errorf("spool of the lost recording: %v", err)
		}
	})

	// A claim at a new epoch (the same node forced it: a restart resuming
	// it, say) fences the old recorder's next write, which stops it at once.
	t.Run("FencedWrite", func(t *testing.T) {
		store := MustOpenStore(t)
		n := MustOpenNode(t, store, newFakeS3(), "node-1", func(c *service.Config) { c.LeaseTTL = time.Hour })
		orgID, meetingID := MustSetUp(t, n, "AKIAFENCE")
		rec, _, err := n.StartRecording(ctx, orgID, meetingID)
		if err != nil {
			t.Fatal(err)
		}
		owner, err := store.ClaimRecording(ctx, rec.ID, "node-1", "http://node-1.invalid", time.Hour, true)
		if err != nil || owner.Epoch != rec.Owner.Epoch+1 {
			t.Fatalf("claim: %+v, %v", owner, err)
		}
		writes := store.writeCount(rec.ID)
		if _, err := n.StopRecording(ctx, orgID, rec.ID); !errors.Is(err, recsink.ErrLeaseLost) {
			t.Fatalf("stop under a stale epoch: %v", err)
		}
		if running(n) != 0 {
			t.Error("the recorder still runs after a fenced write")
		}
		if w := store.writeCount(rec.ID); w != writes {
			t.Errorf("%d rows written under the stale epoch", w-writes)
		}
		if _, err := os.Stat(filepath.Join(n.spool, rec.ID)); err != nil {
			t.Errorf("spool of the lost recording: %v", err)
		}
	})
}

// A key saved through one node wakes a blocked recording on another within
// a second, long before its backoff would have.
func TestKeyChangeWakesOtherNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := MustOpenStore(t)
	s3 := newFakeS3()
	node1 := MustOpenNode(t, store, s3, "node-1", nil)
	node2 := MustOpenNode(t, store, s3, "node-2", nil)
	orgID, meetingID := MustSetUp(t, node1, "AKIAOLDKEY")
	s3.refuse("AKIAOLDKEY", true)

	rec, token, err := node2.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	// One complete part, which S3 refuses with the old key.
	if _, err := node2.Append(ctx, rec.ID, token, 0, bytes.NewReader(make([]byte, 5<<20+1))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "blocked", func() bool { return state(t, node2, orgID, rec.ID) == recsink.RecordingBlocked })
	// A blocked recording keeps its key, and no time can be promised.
	old := findKey(t, node1, orgID, "AKIAOLDKEY")
	if len(old.ActiveRecordings) != 1 || old.SafeToDeleteAfter != nil || !strings.Contains(old.SafeToDeleteReason, rec.ID+" is blocked") {
		t.Errorf("the blocked recording's key in the rotation view: %+v", old)
	}
	// Let its backoff grow: after five refusals the next try is 2 s to 4 s
	// away.
	waitFor(t, 10*time.Second, "five refusals", func() bool { return s3.refusals.Load() >= 5 })

	if _, _, err := node1.SaveStorage(ctx, orgID, recsink.ScopeOrganization, recsink.Destination{Bucket: "recordings", FileFormat: recsink.FormatMKV}, recsink.AccessKey{ID: "AKIANEWKEY", Secret: "secret"}); err != nil {
		t.Fatal(err)
	}
	saved := time.Now()
	took := waitFor(t, 3*time.Second, "resumed on node-2", func() bool { return state(t, node2, orgID, rec.ID) == recsink.RecordingRecording })
	t.Logf("node-2's blocked recording resumed %s after a key was saved on node-1", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("resumed %s after the save, over 1 s", time.Since(saved).Round(time.Millisecond))
	}
	got, _, err := node2.FindRecording(ctx, orgID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessKeyID != "AKIANEWKEY" || got.BytesUploaded != 5<<20 {
		t.Errorf("after the wake: key %s, %d bytes uploaded", got.AccessKeyID, got.BytesUploaded)
	}
	// The old key is drained once no part goes out with it.
	select {
	case <-node2.notes.queued(recsink.WebhookCredentialDrained, "evt_"+old.ID+"_drained"):
	case <-time.After(5 * time.Second):
		t.Error("credential.drained of the old key not queued")
	}
}
