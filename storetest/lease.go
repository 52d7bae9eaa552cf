package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

func testLease(t *testing.T, open func(t *testing.T) recsink.Store) {
	ctx := context.Background()
	s := open(t)
	org := MustCreateOrganization(t, s)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	rec := MustCreateRecording(t, s, org.ID, "/lease-"+recsink.RandomToken(6), recsink.RecordingRecording)

	claim := func(node string, at time.Time, force bool) recsink.Owner {
		t.Helper()
		o, err := s.ClaimRecording(ctx, rec.ID, node, "http://"+node, at, at.Add(10*time.Second), force)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	t.Run("ClaimUnowned", func(t *testing.T) {
		if o := claim("a", now, false); o.Node != "a" || o.URL != "http://a" || o.LeaseExpiresAt == nil || !o.LeaseExpiresAt.Equal(now.Add(10*time.Second)) {
			t.Fatalf("owner %+v", o)
		}
	})
	t.Run("ClaimHeldRefused", func(t *testing.T) {
		if o := claim("b", now.Add(5*time.Second), false); o.Node != "a" {
			t.Fatalf("b took a live lease: %+v", o)
		}
	})
	t.Run("Renew", func(t *testing.T) {
		if err := s.RenewLeases(ctx, "a", now.Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if o := claim("b", now.Add(20*time.Second), false); o.Node != "a" {
			t.Fatalf("b took a renewed lease: %+v", o)
		}
		got, err := s.FindRecording(ctx, org.ID, rec.ID)
		if err != nil || !got.Owner.LeaseExpiresAt.Equal(now.Add(30*time.Second)) {
			t.Fatalf("after renew: %+v %v", got.Owner, err)
		}
	})
	t.Run("Orphaned", func(t *testing.T) {
		orphans, err := s.ListOrphanedRecordings(ctx, now.Add(31*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !containsRecording(orphans, rec.ID) {
			t.Fatalf("expired recording not listed as orphaned")
		}
		orphans, _ = s.ListOrphanedRecordings(ctx, now.Add(29*time.Second))
		if containsRecording(orphans, rec.ID) {
			t.Fatalf("live recording listed as orphaned")
		}
	})
	t.Run("ClaimExpired", func(t *testing.T) {
		if o := claim("b", now.Add(31*time.Second), false); o.Node != "b" {
			t.Fatalf("b could not take an expired lease: %+v", o)
		}
	})
	t.Run("ClaimForce", func(t *testing.T) {
		if o := claim("a", now.Add(32*time.Second), true); o.Node != "a" {
			t.Fatalf("forced claim: %+v", o)
		}
	})
	t.Run("UpdateKeepsOwner", func(t *testing.T) {
		got, _ := s.FindRecording(ctx, org.ID, rec.ID)
		got.Owner = recsink.Owner{Node: "zzz"}
		got.State = recsink.RecordingStopping
		if err := s.UpdateRecording(ctx, got); err != nil {
			t.Fatal(err)
		}
		again, _ := s.FindRecording(ctx, org.ID, rec.ID)
		if again.Owner.Node != "a" {
			t.Fatalf("UpdateRecording changed the owner: %+v", again.Owner)
		}
	})
	t.Run("FinishedNotOrphaned", func(t *testing.T) {
		got, _ := s.FindRecording(ctx, org.ID, rec.ID)
		got.State = recsink.RecordingUploaded
		if err := s.UpdateRecording(ctx, got); err != nil {
			t.Fatal(err)
		}
		orphans, _ := s.ListOrphanedRecordings(ctx, now.Add(time.Hour))
		if containsRecording(orphans, rec.ID) {
			t.Fatalf("finished recording listed as orphaned")
		}
	})
}

func containsRecording(rs []*recsink.Recording, id string) bool {
	for _, r := range rs {
		if r.ID == id {
			return true
		}
	}
	return false
}
