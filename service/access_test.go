package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestAccessLink: the link is signed with the recording's own key; once S3
// refuses that key, with the organization's current key; when no saved key
// can read the object, a plain error says so.
func TestAccessLink(t *testing.T) {
	t.Parallel()
	s3 := newFakeS3()
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIAOWN")
	ctx := context.Background()

	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.AccessLink(ctx, orgID, rec.ID, time.Hour); recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Fatalf("a link to a running recording: %v", err)
	}
	if _, err := n.Append(ctx, rec.ID, token, 0, strings.NewReader("media")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "uploaded", func() bool { return state(t, n, orgID, rec.ID) == recsink.RecordingUploaded })

	link, err := n.AccessLink(ctx, orgID, rec.ID, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if link.AccessKeyID != "AKIAOWN" || !strings.Contains(link.URL, "key=AKIAOWN") || !strings.Contains(link.URL, "expires=90") ||
		link.Expires.Before(time.Now().Add(85*time.Second)) || link.Expires.After(time.Now().Add(95*time.Second)) {
		t.Fatalf("link %+v", link)
	}

	// The recording's key is deleted in IAM; a new one is saved.
	s3.mu.Lock()
	s3.readRefused["AKIAOWN"] = true
	s3.mu.Unlock()
	if _, _, err := n.SaveStorage(ctx, orgID, recsink.ScopeOrganization, recsink.Destination{Bucket: "recordings", FileFormat: recsink.FormatMKV}, recsink.AccessKey{ID: "AKIANEW", Secret: "secret-new"}); err != nil {
		t.Fatal(err)
	}
	if link, err = n.AccessLink(ctx, orgID, rec.ID, time.Hour); err != nil || link.AccessKeyID != "AKIANEW" || !strings.Contains(link.URL, "key=AKIANEW") {
		t.Fatalf("after the key was deleted: %+v, %v", link, err)
	}

	// No saved key can read it.
	s3.mu.Lock()
	s3.readRefused["AKIANEW"] = true
	s3.mu.Unlock()
	_, err = n.AccessLink(ctx, orgID, rec.ID, time.Hour)
	if recsink.ErrorCode(err) != recsink.EDESTINATION || !strings.Contains(err.Error(), "no current key reaches the bucket") {
		t.Fatalf("no key can read: %v", err)
	}
	if _, err := n.AccessLink(ctx, orgID, rec.ID, 13*time.Hour); recsink.ErrorCode(err) != recsink.EINVALID {
		t.Fatalf("13 h: %v", err)
	}
}
