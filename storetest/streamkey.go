package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

func testStreamKey(t *testing.T, open func(t *testing.T) recsink.Store) {
	ctx := context.Background()
	keys := func(t *testing.T, s recsink.Store) recsink.StreamKeyStore {
		ks, ok := s.(recsink.StreamKeyStore)
		if !ok {
			t.Fatalf("%T does not keep stream keys", s)
		}
		return ks
	}
	t.Run("OK", func(t *testing.T) {
		s := open(t)
		ks := keys(t, s)
		org := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, org.ID)
		created := time.Now().UTC().Truncate(time.Millisecond)
		k := &recsink.StreamKey{MeetingID: m.ID, OrgID: org.ID, Hash: recsink.HashToken("rsl_a"), CreatedAt: created}
		if err := ks.PutStreamKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		got, err := ks.FindStreamKeyByHash(ctx, recsink.HashToken("rsl_a"))
		if err != nil {
			t.Fatal(err)
		}
		if got.MeetingID != m.ID || got.OrgID != org.ID || !got.CreatedAt.Equal(created) || got.LastPublishAt != nil {
			t.Fatalf("found %+v", got)
		}
		at := created.Add(time.Second)
		if err := ks.TouchStreamKey(ctx, m.ID, at); err != nil {
			t.Fatal(err)
		}
		if got, err = ks.FindStreamKey(ctx, org.ID, m.ID); err != nil || got.LastPublishAt == nil || !got.LastPublishAt.Equal(at) {
			t.Fatalf("after touch: %+v, %v", got, err)
		}
		// Replacing: the old key no longer opens the room.
		k2 := &recsink.StreamKey{MeetingID: m.ID, OrgID: org.ID, Hash: recsink.HashToken("rsl_b"), CreatedAt: at}
		if err := ks.PutStreamKey(ctx, k2); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.FindStreamKeyByHash(ctx, recsink.HashToken("rsl_a")); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("replaced key: %v, want ENOTFOUND", err)
		}
		if got, err = ks.FindStreamKey(ctx, org.ID, m.ID); err != nil || !bytes.Equal(got.Hash, k2.Hash) || got.LastPublishAt != nil {
			t.Fatalf("after replace: %+v, %v", got, err)
		}
		if err := ks.DeleteStreamKey(ctx, org.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.FindStreamKeyByHash(ctx, k2.Hash); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("revoked key: %v, want ENOTFOUND", err)
		}
		if err := ks.DeleteStreamKey(ctx, org.ID, m.ID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("second revoke: %v, want ENOTFOUND", err)
		}
	})
	t.Run("ErrMeetingNotFound", func(t *testing.T) {
		s := open(t)
		ks := keys(t, s)
		org := MustCreateOrganization(t, s)
		other := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, other.ID)
		// Another organization's meeting is not found.
		err := ks.PutStreamKey(ctx, &recsink.StreamKey{MeetingID: m.ID, OrgID: org.ID, Hash: recsink.HashToken("x"), CreatedAt: time.Now()})
		if recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("put on another organization's meeting: %v, want ENOTFOUND", err)
		}
		if _, err := ks.FindStreamKey(ctx, org.ID, m.ID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("find: %v, want ENOTFOUND", err)
		}
	})
	t.Run("GoesWithMeeting", func(t *testing.T) {
		s := open(t)
		ks := keys(t, s)
		org := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, org.ID)
		if err := ks.PutStreamKey(ctx, &recsink.StreamKey{MeetingID: m.ID, OrgID: org.ID, Hash: recsink.HashToken("y"), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMeeting(ctx, org.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.FindStreamKeyByHash(ctx, recsink.HashToken("y")); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("key of a deleted meeting: %v, want ENOTFOUND", err)
		}
	})
}
