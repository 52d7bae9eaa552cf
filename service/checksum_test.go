package service_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
)

// checksumOf returns the CRC64NVME of data in the recording's form.
func checksumOf(data []byte) string {
	return "CRC64NVME:" + fakeCRC.Encode(fakeCRC.Checksum(data))
}

// startWithMedia starts a recording, appends data and stops it.
func startWithMedia(t *testing.T, n *node, orgID, meetingID string, data []byte) *recsink.Recording {
	t.Helper()
	ctx := context.Background()
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	return rec
}

func finished(t *testing.T, n *node, orgID, id string) *recsink.Recording {
	t.Helper()
	var rec *recsink.Recording
	waitFor(t, 20*time.Second, "recording "+id+" finished", func() bool {
		var err error
		rec, _, err = n.FindRecording(context.Background(), orgID, id)
		return err == nil && rec.Finished()
	})
	return rec
}

// The upload asks for a full-object checksum, each part's CRC is kept with
// the part, and the recording reports the checksum S3 verified: the CRC of
// every byte sent, although they went up in parts. A part refused for a
// checksum mismatch goes again.
func TestChecksum_Reported(t *testing.T) {
	t.Parallel()
	store := MustOpenStore(t)
	s3 := newFakeS3()
	s3.checksums = true
	s3.badDigest[2] = 2 // part 2 arrives changed twice, then intact
	n := MustOpenNode(t, store, s3, "node-1", func(c *service.Config) { c.RetryMax = 10 * time.Millisecond })
	orgID, meetingID := MustSetUp(t, n, "AKIASUM")
	data := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16+5) // 3 parts of 5 MiB and less
	rec := finished(t, n, orgID, startWithMedia(t, n, orgID, meetingID, data).ID)
	if rec.State != recsink.RecordingUploaded {
		t.Fatalf("state %s (%s), want uploaded", rec.State, rec.LastError)
	}
	if want := checksumOf(data); rec.Checksum != want {
		t.Errorf("checksum %q, want %q", rec.Checksum, want)
	}
	if rec.ChecksumAlgorithm != recsink.ChecksumCRC64NVME {
		t.Errorf("algorithm %q, want CRC64NVME", rec.ChecksumAlgorithm)
	}
	if rec.SHA256 == "" {
		t.Error("no sha256")
	}
	s3.mu.Lock()
	left := s3.badDigest[2]
	s3.mu.Unlock()
	if left != 0 {
		t.Errorf("part 2 was not sent again after BadDigest: %d refusals left", left)
	}
	parts, err := store.ListParts(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Checksum == "" {
			t.Errorf("part %d stored without its checksum", p.Number)
		}
	}
	if !n.notes.has(recsink.WebhookRecordingFinished, rec.ID, "checksum", rec.Checksum) {
		t.Errorf("recording.finished does not carry checksum %s", rec.Checksum)
	}
}

// A part that S3 refuses for a checksum mismatch again and again fails the
// recording with a plain reason; a completion refused with BadDigest fails
// it at once, and no object is written in either case.
func TestChecksum_Refused(t *testing.T) {
	t.Parallel()
	t.Run("Part", func(t *testing.T) {
		t.Parallel()
		s3 := newFakeS3()
		s3.checksums = true
		s3.badDigest[1] = 1000
		n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", func(c *service.Config) { c.RetryMax = 10 * time.Millisecond })
		orgID, meetingID := MustSetUp(t, n, "AKIAPART")
		rec := finished(t, n, orgID, startWithMedia(t, n, orgID, meetingID, bytes.Repeat([]byte("x"), 6<<20)).ID)
		if rec.State != recsink.RecordingFailed || !strings.Contains(rec.LastError, "refused part 1 5 times") {
			t.Errorf("state %s, reason %q; want failed naming part 1", rec.State, rec.LastError)
		}
		t.Logf("reason: %s", rec.LastError)
		if len(s3.objects) != 0 {
			t.Errorf("objects written: %v", s3.objects)
		}
	})
	t.Run("Complete", func(t *testing.T) {
		t.Parallel()
		s3 := newFakeS3()
		s3.checksums = true
		s3.completeDigest = true
		n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
		orgID, meetingID := MustSetUp(t, n, "AKIACOMPLETE")
		rec := finished(t, n, orgID, startWithMedia(t, n, orgID, meetingID, []byte("some media")).ID)
		if rec.State != recsink.RecordingFailed || !strings.Contains(rec.LastError, "no wrong object was written") {
			t.Errorf("state %s, reason %q; want failed, saying no wrong object was written", rec.State, rec.LastError)
		}
		t.Logf("reason: %s", rec.LastError)
		if len(s3.objects) != 0 {
			t.Errorf("objects written: %v", s3.objects)
		}
	})
}
