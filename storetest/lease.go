package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// slack bounds the time between two reads of the database's clock around a
// call, for checks of lease times; generous for a loaded CI machine.
const slack = 5 * time.Second

func testLease(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("CreateHoldsLease", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		before := mustNow(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		after := mustNow(t, s)
		checkLease(t, r.Owner, before.Add(TestLeaseTTL), after.Add(TestLeaseTTL))
		got, err := s.FindRecording(ctx, org.ID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkOwner(t, got.Owner, r.Owner)
		if orphans := mustOrphans(t, s); containsRecording(orphans, r.ID) {
			t.Fatal("a recording just created, with a live lease, is listed as orphaned")
		}
	})

	t.Run("ClaimAndEpochs", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		claim := func(node string, ttl time.Duration, force bool) recsink.Owner {
			t.Helper()
			o, err := s.ClaimRecording(ctx, r.ID, node, "http://"+node, ttl, force)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.FindRecording(ctx, org.ID, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkOwner(t, got.Owner, o)
			return o
		}

		// The owner's own claim extends its lease and keeps the epoch.
		before := mustNow(t, s)
		o := claim(TestNode, time.Hour, false)
		after := mustNow(t, s)
		if o.Node != TestNode || o.Epoch != 1 {
			t.Fatalf("owner's claim: %+v, want %s at epoch 1", o, TestNode)
		}
		checkLease(t, o, before.Add(time.Hour), after.Add(time.Hour))

		// Another node cannot take a live lease, however far its own clock
		// is ahead: the store reads no caller's clock, only its own.
		if o := claim("b", time.Hour, false); o.Node != TestNode || o.Epoch != 1 {
			t.Fatalf("b took a live lease: %+v", o)
		}

		// A lease that expired (a negative TTL puts its end in the past on
		// the database's clock) is taken over, with a new epoch.
		claim(TestNode, -time.Second, false)
		if orphans := mustOrphans(t, s); !containsRecording(orphans, r.ID) {
			t.Fatal("a recording whose lease expired is not listed as orphaned")
		}
		if o := claim("b", time.Minute, false); o.Node != "b" || o.URL != "http://b" || o.Epoch != 2 {
			t.Fatalf("b's claim of an expired lease: %+v, want b at epoch 2", o)
		}
		if orphans := mustOrphans(t, s); containsRecording(orphans, r.ID) {
			t.Fatal("a recording just claimed is listed as orphaned")
		}

		// A forced claim always wins and always starts a new epoch, even by
		// the owner itself (a restart of the node that holds the spool).
		if o := claim(TestNode, time.Minute, true); o.Node != TestNode || o.Epoch != 3 {
			t.Fatalf("forced claim: %+v, want %s at epoch 3", o, TestNode)
		}
		if o := claim(TestNode, time.Minute, true); o.Epoch != 4 {
			t.Fatalf("forced claim by the owner: %+v, want epoch 4", o)
		}

		_, err := s.ClaimRecording(ctx, "rec_nope", "b", "http://b", time.Minute, false)
		checkCode(t, err, recsink.ENOTFOUND)
	})

	t.Run("LeaseExpiresOnDatabaseClock", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		if _, err := s.ClaimRecording(ctx, r.ID, TestNode, "http://"+TestNode, 300*time.Millisecond, false); err != nil {
			t.Fatal(err)
		}
		// Not orphaned before the lease ends; orphaned after, by the
		// database's clock, within the deadline.
		expires := mustFind(t, s, r).Owner.LeaseExpiresAt
		deadline := time.Now().Add(10 * time.Second)
		for {
			orphaned := containsRecording(mustOrphans(t, s), r.ID)
			now := mustNow(t, s)
			if orphaned {
				if now.Before(*expires) {
					t.Fatalf("orphaned at %v, before its lease ends at %v", now, *expires)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease ending at %v not expired at %v", *expires, now)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("Renew", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		node := "renew-" + recsink.RandomToken(6)
		var mine []*recsink.Recording
		for _, state := range []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
			recsink.RecordingUploaded} {
			r := NewRecording(org.ID, "room", state)
			r.Owner = recsink.Owner{Node: node, URL: "http://" + node}
			if err := s.CreateRecording(ctx, r, time.Second); err != nil {
				t.Fatal(err)
			}
			mine = append(mine, r)
		}
		// Taken over by b: no longer renewed for node.
		lost := mine[1]
		if _, err := s.ClaimRecording(ctx, lost.ID, "b", "http://b", time.Minute, true); err != nil {
			t.Fatal(err)
		}
		MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording) // another node's

		before := mustNow(t, s)
		held, err := s.RenewLeases(ctx, node, time.Hour)
		after := mustNow(t, s)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{mine[0].ID: 1, mine[2].ID: 1}
		if len(held) != len(want) || held[mine[0].ID] != 1 || held[mine[2].ID] != 1 {
			t.Fatalf("RenewLeases = %v, want %v (the unfinished recordings node still owns, with their epochs)", held, want)
		}
		for _, r := range []*recsink.Recording{mine[0], mine[2]} {
			checkLease(t, mustFind(t, s, r).Owner, before.Add(time.Hour), after.Add(time.Hour))
		}
		if o := mustFind(t, s, lost).Owner; o.Node != "b" {
			t.Fatalf("renewal took back b's recording: %+v", o)
		}
		held, err = s.RenewLeases(ctx, "nobody-"+recsink.RandomToken(6), time.Hour)
		if err != nil || len(held) != 0 {
			t.Fatalf("RenewLeases of a node with nothing = %v, %v; want an empty map", held, err)
		}
	})

	t.Run("OrphanedWithoutOwner", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := NewRecording(org.ID, "room", recsink.RecordingRecording)
		r.Owner = recsink.Owner{}
		if err := s.CreateRecording(ctx, r, time.Hour); err != nil {
			t.Fatal(err)
		}
		done := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingUploaded)
		if _, err := s.ClaimRecording(ctx, done.ID, TestNode, "http://"+TestNode, -time.Second, false); err != nil {
			t.Fatal(err)
		}
		orphans := mustOrphans(t, s)
		if !containsRecording(orphans, r.ID) {
			t.Fatal("an unfinished recording with no owner is not listed as orphaned")
		}
		if containsRecording(orphans, done.ID) {
			t.Fatal("a finished recording is listed as orphaned")
		}
		// Anyone may claim it; the owner changes, so the epoch moves on.
		o, err := s.ClaimRecording(ctx, r.ID, "b", "http://b", time.Minute, false)
		if err != nil || o.Node != "b" || o.Epoch != 2 {
			t.Fatalf("claim of an unowned recording: %+v, %v; want b at epoch 2", o, err)
		}
	})

	t.Run("NowIsDatabaseClock", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		now := mustNow(t, s)
		// Same host in tests: the database's clock is close to ours.
		if d := time.Since(now); d > time.Minute || d < -time.Minute {
			t.Fatalf("Now = %v, %v from this host's clock", now, d)
		}
		if now.Location() != time.UTC {
			t.Fatalf("Now = %v, want UTC", now)
		}
	})
}

func testFence(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("StaleEpochRefused", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		stale := *r
		// The same node claims again with force (a restart): epoch 2.
		o, err := s.ClaimRecording(ctx, r.ID, TestNode, "http://"+TestNode, time.Minute, true)
		if err != nil {
			t.Fatal(err)
		}
		stale.BytesReceived = 999
		err = s.UpdateRecording(ctx, &stale)
		checkLeaseLost(t, err)
		r.Owner = o
		r.BytesReceived = 20
		if err := s.UpdateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
		checkRecording(t, mustFind(t, s, r), r)
	})

	t.Run("OtherOwnerRefused", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		if _, err := s.ClaimRecording(ctx, r.ID, "b", "http://b", time.Minute, true); err != nil {
			t.Fatal(err)
		}
		old := *r
		old.State = recsink.RecordingStopping
		checkLeaseLost(t, s.UpdateRecording(ctx, &old))
		// Another node at the right epoch is still not the owner.
		impostor := *r
		impostor.Owner.Node, impostor.Owner.Epoch = "c", mustFind(t, s, r).Owner.Epoch
		checkLeaseLost(t, s.UpdateRecording(ctx, &impostor))
		if got := mustFind(t, s, r); got.State != recsink.RecordingRecording || got.Owner.Node != "b" {
			t.Fatalf("refused writes changed the row: %s, %+v", got.State, got.Owner)
		}
	})

	t.Run("TransitionTable", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		states := []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
			recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted}
		for _, from := range states {
			for _, to := range states {
				r := MustCreateRecording(t, s, org.ID, "room", from)
				r.State = to
				err := s.UpdateRecording(ctx, r)
				switch {
				case recsink.CanTransition(from, to) && err != nil:
					t.Errorf("%s -> %s refused: %v", from, to, err)
				case !recsink.CanTransition(from, to):
					if recsink.ErrorCode(err) != recsink.ECONFLICT || errors.Is(err, recsink.ErrLeaseLost) {
						t.Errorf("%s -> %s: %v, want ECONFLICT (not a lost lease)", from, to, err)
					}
					if got := mustFind(t, s, r); got.State != from {
						t.Errorf("%s -> %s refused, but the row is now %s", from, to, got.State)
					}
				}
			}
		}
	})

	t.Run("StoppedDoesNotRestart", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		for _, state := range []string{recsink.RecordingStopping, recsink.RecordingBlocked} {
			r := NewRecording(org.ID, "room", state)
			r.EndDate = ptr(at(200))
			if err := s.CreateRecording(ctx, r, TestLeaseTTL); err != nil {
				t.Fatal(err)
			}
			back := *r
			back.State, back.EndDate = recsink.RecordingRecording, nil
			checkCode(t, s.UpdateRecording(ctx, &back), recsink.ECONFLICT)
			back = *r
			back.State = recsink.RecordingRecording // end date kept
			checkCode(t, s.UpdateRecording(ctx, &back), recsink.ECONFLICT)
			back = *r
			back.EndDate = nil // same state, end date cleared
			checkCode(t, s.UpdateRecording(ctx, &back), recsink.ECONFLICT)
			checkRecording(t, mustFind(t, s, r), r)
		}
	})

	t.Run("ConcurrentStaleWritersCannotRegress", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		for range 10 {
			r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
			// The old epoch, as a node that lost the recording holds it.
			loser := *r
			o, err := s.ClaimRecording(ctx, r.ID, TestNode, "http://"+TestNode, time.Minute, true)
			if err != nil {
				t.Fatal(err)
			}
			r.Owner = o
			start := make(chan struct{})
			errs := make(chan error, 64)
			done := make(chan struct{})
			var writers int
			// The owner's own stale copies (stop, block, restart) race its
			// completion; the loser writes anything.
			for _, w := range []struct {
				base  recsink.Recording
				state string
			}{
				{*r, recsink.RecordingStopping}, {*r, recsink.RecordingBlocked}, {*r, recsink.RecordingRecording},
				{*r, recsink.RecordingStopping}, {loser, recsink.RecordingRecording}, {loser, recsink.RecordingStopping},
				{loser, recsink.RecordingFailed},
			} {
				writers++
				go func() {
					<-start
					c := w.base
					c.State = w.state
					for range 20 {
						err := s.UpdateRecording(ctx, &c)
						if err != nil && recsink.ErrorCode(err) != recsink.ECONFLICT {
							errs <- err
						}
						if w.base.Owner.Epoch != r.Owner.Epoch && !errors.Is(err, recsink.ErrLeaseLost) {
							errs <- errors.New("a write at a lost epoch was not refused as ErrLeaseLost")
						}
					}
					done <- struct{}{}
				}()
			}
			writers++
			go func() {
				<-start
				c := *r
				c.State, c.EndDate, c.SHA256 = recsink.RecordingUploaded, ptr(at(300)), "ab"
				if err := s.UpdateRecording(ctx, &c); err != nil {
					errs <- err
				}
				done <- struct{}{}
			}()
			close(start)
			for range writers {
				<-done
			}
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := mustFind(t, s, r); got.State != recsink.RecordingUploaded || got.SHA256 != "ab" {
				t.Fatalf("after the race the recording is %s (sha256 %q), want uploaded", got.State, got.SHA256)
			}
		}
	})

	t.Run("MarkRecordingDeleted", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org, other := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		for _, state := range []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping} {
			r := MustCreateRecording(t, s, org.ID, "room", state)
			checkCode(t, s.MarkRecordingDeleted(ctx, org.ID, r.ID), recsink.ECONFLICT)
			if got := mustFind(t, s, r); got.State != state {
				t.Fatalf("refused deletion changed %s to %s", state, got.State)
			}
		}
		for _, state := range []string{recsink.RecordingUploaded, recsink.RecordingFailed} {
			r := MustCreateRecording(t, s, org.ID, "room", state)
			checkCode(t, s.MarkRecordingDeleted(ctx, other.ID, r.ID), recsink.ENOTFOUND)
			// Another node than the owner may delete it.
			for range 2 { // idempotent
				if err := s.MarkRecordingDeleted(ctx, org.ID, r.ID); err != nil {
					t.Fatal(err)
				}
			}
			if got := mustFind(t, s, r); got.State != recsink.RecordingDeleted {
				t.Fatalf("deleted %s recording is %s", state, got.State)
			}
			// The owner's stale write cannot bring it back.
			r.State = state
			checkCode(t, s.UpdateRecording(ctx, r), recsink.ECONFLICT)
		}
		checkCode(t, s.MarkRecordingDeleted(ctx, org.ID, "rec_nope"), recsink.ENOTFOUND)
	})

	t.Run("UniqueObjectKey", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org, other := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		a := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		b := NewRecording(other.ID, "room", recsink.RecordingRecording)
		b.Destination, b.ObjectKey = a.Destination, a.ObjectKey
		err := s.CreateRecording(ctx, b, TestLeaseTTL)
		checkCode(t, err, recsink.ECONFLICT)
		if f := recsink.ErrorField(err); f != "objectKey" {
			t.Fatalf("field = %q, want objectKey", f)
		}
		if _, err := s.FindRecordingByID(ctx, b.ID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("the refused recording was stored: %v", err)
		}
		// The same key in another bucket or at another endpoint is another
		// object.
		b.Destination.Endpoint = "https://s3.example.com"
		if err := s.CreateRecording(ctx, b, TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
		// An update onto a taken key is refused too.
		c := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		c2 := *c
		c2.Destination, c2.ObjectKey = a.Destination, a.ObjectKey
		err = s.UpdateRecording(ctx, &c2)
		checkCode(t, err, recsink.ECONFLICT)
		// Once the first is deleted, its key is free.
		a.State = recsink.RecordingUploaded
		if err := s.UpdateRecording(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRecordingDeleted(ctx, org.ID, a.ID); err != nil {
			t.Fatal(err)
		}
		d := NewRecording(org.ID, "room", recsink.RecordingRecording)
		d.Destination, d.ObjectKey = a.Destination, a.ObjectKey
		if err := s.CreateRecording(ctx, d, TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
	})
}

// checkLeaseLost fails t unless err is recsink.ErrLeaseLost (a conflict).
func checkLeaseLost(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, recsink.ErrLeaseLost) || recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Fatalf("err = %v, want ErrLeaseLost", err)
	}
}

// checkLease fails t unless o has a lease ending within [lo, hi] (+ the
// millisecond that SQLite's clock rounds to).
func checkLease(t *testing.T, o recsink.Owner, lo, hi time.Time) {
	t.Helper()
	if o.LeaseExpiresAt == nil || o.LeaseExpiresAt.Before(lo.Add(-time.Millisecond)) || o.LeaseExpiresAt.After(hi.Add(time.Millisecond)) {
		t.Fatalf("lease of %+v ends at %v, want within [%v, %v] on the database's clock", o, o.LeaseExpiresAt, lo, hi)
	}
	if hi.Sub(lo) > slack {
		t.Fatalf("the database's clock moved %v during one call", hi.Sub(lo))
	}
}

func checkOwner(t *testing.T, got, want recsink.Owner) {
	t.Helper()
	if got.Node != want.Node || got.URL != want.URL || got.Epoch != want.Epoch || !equalTimePtr(got.LeaseExpiresAt, want.LeaseExpiresAt) {
		t.Fatalf("owner = %+v, want %+v", got, want)
	}
}

func mustNow(t *testing.T, s recsink.Store) time.Time {
	t.Helper()
	now, err := s.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func mustOrphans(t *testing.T, s recsink.Store) []*recsink.Recording {
	t.Helper()
	rs, err := s.ListOrphanedRecordings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func mustFind(t *testing.T, s recsink.Store, r *recsink.Recording) *recsink.Recording {
	t.Helper()
	got, err := s.FindRecording(context.Background(), r.OrgID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func containsRecording(rs []*recsink.Recording, id string) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}
