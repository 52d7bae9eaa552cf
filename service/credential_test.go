package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// findKey returns the generation of keyID in the rotation view.
func findKey(tb testing.TB, n *node, orgID, keyID string) *recsink.CredentialUsage {
	tb.Helper()
	usages, err := n.ListCredentials(context.Background(), orgID)
	if err != nil {
		tb.Fatal(err)
	}
	for _, u := range usages {
		if u.AccessKeyID == keyID {
			return u
		}
	}
	tb.Fatalf("no key %s in the rotation view", keyID)
	return nil
}

// Deleting a meeting drains its key like a replacement: it stays draining
// while the room's recording runs, with the time it may run until, and
// credential.drained is queued once, after the key's last S3 call.
func TestDeleteMeetingDrainsItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := newFakeS3()
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIAORGKEY")
	if _, _, err := n.SaveStorage(ctx, orgID, meetingID, recsink.Destination{Bucket: "room-bucket", FileFormat: recsink.FormatMKV}, recsink.AccessKey{ID: "AKIAROOMKEY", Secret: "secret"}); err != nil {
		t.Fatal(err)
	}
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, rec.ID, token, 0, strings.NewReader("media")); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteMeeting(ctx, orgID, meetingID); err != nil {
		t.Fatal(err)
	}
	u := findKey(t, n, orgID, "AKIAROOMKEY")
	if u.State != recsink.CredentialDraining || len(u.ActiveRecordings) != 1 || u.SafeToDeleteAfter == nil ||
		!u.SafeToDeleteAfter.Equal(rec.StartDate.Add(24*time.Hour)) || !strings.Contains(u.SafeToDeleteReason, rec.ID) {
		t.Fatalf("the room's key after the meeting was deleted: %+v", u)
	}
	drained := "evt_" + u.ID + "_drained"
	if n.notes.count(recsink.WebhookCredentialDrained, drained) != 0 {
		t.Fatal("drained while a recording holds the key")
	}

	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.notes.queued(recsink.WebhookCredentialDrained, drained):
	case <-time.After(5 * time.Second):
		t.Fatal("credential.drained not queued")
	}
	if u := findKey(t, n, orgID, "AKIAROOMKEY"); u.State != recsink.CredentialDrained || u.SafeToDeleteAfter != nil || u.SafeToDeleteReason != "" {
		t.Errorf("after the recording: %+v", u)
	}
	last, _ := s3.lastUse.Load("AKIAROOMKEY")
	if at := n.notes.seqOf(recsink.WebhookCredentialDrained, drained); at < last.(int64) {
		t.Errorf("credential.drained queued (at %d) before the key's last S3 call (at %d)", at, last)
	}
	if c := n.notes.count(recsink.WebhookCredentialDrained, drained); c != 1 {
		t.Errorf("credential.drained queued %d times", c)
	}
}
