package service_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/recsink/recsink"
)

// typedS3 is the fake S3 that also keeps the Content-Type each upload or
// object was created with, and can refuse the creation of uploads whose
// key has a given extension.
type typedS3 struct {
	*fakeS3
	mu      sync.Mutex
	types   map[string]string // key → Content-Type, last creation
	creates []string          // keys of CreateMultipartUpload, in order
	refuse  string            // an extension (".webm") whose uploads S3 refuses
}

func newTypedS3() *typedS3 { return &typedS3{fakeS3: newFakeS3(), types: map[string]string{}} }

func (s *typedS3) Client(ctx context.Context, d recsink.Destination, key recsink.AccessKey) (recsink.StorageClient, error) {
	c, err := s.fakeS3.Client(ctx, d, key)
	return typedClient{c, s}, err
}

func (s *typedS3) typeOf(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.types[key]
}

func (s *typedS3) created() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.creates...)
}

// typedClient hides the fake's ObjectExists: names are checked with
// HeadObject, as for an endpoint without that call.
type typedClient struct {
	recsink.StorageClient
	s *typedS3
}

func (c typedClient) CreateMultipartUpload(ctx context.Context, key, contentType string, meta map[string]string, checksums ...recsink.ChecksumAlgorithm) (recsink.Upload, error) {
	c.s.mu.Lock()
	refused := c.s.refuse != "" && path.Ext(key) == c.s.refuse
	if !refused {
		c.s.types[key] = contentType
		c.s.creates = append(c.s.creates, key)
	}
	c.s.mu.Unlock()
	if refused {
		return recsink.Upload{}, &recsink.StorageError{Op: "CreateMultipartUpload", Code: "ServiceUnavailable", StatusCode: 503}
	}
	return c.StorageClient.CreateMultipartUpload(ctx, key, contentType, meta, checksums...)
}

func (c typedClient) PutObject(ctx context.Context, key, contentType string, meta map[string]string, body io.ReadSeeker, size int64) error {
	c.s.mu.Lock()
	c.s.types[key] = contentType
	c.s.mu.Unlock()
	return c.StorageClient.PutObject(ctx, key, contentType, meta, body, size)
}

// liveWebM is a short live WebM stream from MediaRecorder-like output.
func liveWebM(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../media/testdata/live.webm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// matroskaHead is an EBML header of DocType "matroska", then bytes that
// are no valid segment: the finalizer gives up and stores them as sent.
var matroskaHead = append([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x8B, 0x42, 0x82, 0x88}, "matroska some more bytes"...)

// fmp4Head is the start of a fragmented MP4: an ftyp box.
var fmp4Head = append([]byte{0, 0, 0, 0x1c}, "ftypisom\x00\x00\x02\x00isomiso2mp41 and more"...)

// TestContainer_Named: the first bytes name the object and its
// Content-Type in a room whose fileFormat is mkv. WebM gets a new upload
// under .webm with video/webm before a byte is kept, the provisional .mkv
// upload is aborted, and recording.started goes out only then, with the
// final key; Matroska and unknown content keep the .mkv name (unknown
// content byte-identical).
func TestContainer_Named(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		data        func(t *testing.T) []byte
		ext, ctype  string
		uploads     int // CreateMultipartUpload calls
		sameAsBytes bool
	}{
		{"WebM", liveWebM, ".webm", "video/webm", 2, false},
		{"Matroska", func(*testing.T) []byte { return matroskaHead }, ".mkv", "video/x-matroska", 1, true},
		{"Unknown", func(*testing.T) []byte { return []byte("not a container recsink knows") }, ".mkv", "video/x-matroska", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s3 := newTypedS3()
			s3.checksums = true
			store := MustOpenStore(t)
			n := MustOpenNode(t, store, s3, "node-1", nil)
			orgID, meetingID := MustSetUp(t, n, "AKIANAME")
			ctx := context.Background()
			rec, token, err := n.StartRecording(ctx, orgID, meetingID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(rec.ObjectKey, ".mkv") {
				t.Fatalf("provisional key %s; want .mkv from the file format", rec.ObjectKey)
			}
			if c := n.notes.count(recsink.WebhookRecordingStarted, "evt_"+rec.ID+"_started"); c != 0 {
				t.Errorf("recording.started sent %d times before the first bytes", c)
			}
			data := tc.data(t)
			if _, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			got, _, err := n.FindRecording(ctx, orgID, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(rec.ObjectKey, ".mkv")
			if got.ObjectKey != base+tc.ext {
				t.Errorf("key after the first bytes %s; want %s", got.ObjectKey, base+tc.ext)
			}
			if ct := s3.typeOf(got.ObjectKey); ct != tc.ctype {
				t.Errorf("upload of %s created with Content-Type %q; want %q", got.ObjectKey, ct, tc.ctype)
			}
			if c := s3.created(); len(c) != tc.uploads {
				t.Errorf("uploads created %v; want %d", c, tc.uploads)
			}
			if open := s3.openUploads(); open != 1 {
				t.Errorf("%d open uploads; want 1: the provisional one is aborted", open)
			}
			// The started event went out after the rename, with the final key.
			<-n.notes.queued(recsink.WebhookRecordingStarted, "evt_"+rec.ID+"_started")
			if !n.notes.has(recsink.WebhookRecordingStarted, rec.ID, "objectKey", got.ObjectKey) ||
				!n.notes.has(recsink.WebhookRecordingStarted, rec.ID, "filename", path.Base(got.ObjectKey)) {
				t.Errorf("recording.started does not name %s", got.ObjectKey)
			}
			// The stored row names it too, for every node.
			if row, err := store.FindRecordingByID(ctx, rec.ID); err != nil || row.ObjectKey != got.ObjectKey || row.UploadID == rec.UploadID && tc.uploads == 2 {
				t.Errorf("stored row %+v, %v", row, err)
			}
			if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
				t.Fatal(err)
			}
			done := finished(t, n, orgID, rec.ID)
			if done.State != recsink.RecordingUploaded || done.ObjectKey != got.ObjectKey {
				t.Fatalf("finished %s at %s; want uploaded at %s", done.State, done.ObjectKey, got.ObjectKey)
			}
			if !n.notes.has(recsink.WebhookRecordingFinished, rec.ID, "objectKey", got.ObjectKey) {
				t.Errorf("recording.finished does not name %s", got.ObjectKey)
			}
			s3.mu.Lock()
			obj, ok := s3.objects[got.ObjectKey]
			_, stale := s3.objects[rec.ObjectKey]
			s3.mu.Unlock()
			if !ok || (stale && rec.ObjectKey != got.ObjectKey) {
				t.Errorf("objects %v; want only %s", s3.objects, got.ObjectKey)
			}
			if tc.sameAsBytes && obj.size != int64(len(data)) {
				t.Errorf("object of %d bytes; want the %d sent", obj.size, len(data))
			}
			t.Logf("%s: %s → %s (%s)", tc.name, path.Base(rec.ObjectKey), path.Base(got.ObjectKey), s3.typeOf(got.ObjectKey))
		})
	}
}

// TestContainer_Refused: a container the fileFormat does not take is
// refused at its first bytes with EUNSUPPORTED, before a byte is kept or
// the name changes.
func TestContainer_Refused(t *testing.T) {
	t.Parallel()
	s3 := newTypedS3()
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIAREFUSE")
	ctx := context.Background()
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	off, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(fmp4Head))
	if recsink.ErrorCode(err) != recsink.EUNSUPPORTED || off != 0 || !strings.Contains(recsink.ErrorMessage(err), `"mkv"`) {
		t.Errorf("fMP4 into mkv: offset %d, %v; want EUNSUPPORTED naming mkv at offset 0", off, err)
	}
	got, _, _ := n.FindRecording(ctx, orgID, rec.ID)
	if got.ObjectKey != rec.ObjectKey || len(s3.created()) != 1 {
		t.Errorf("key %s, uploads %v; want the start's only", got.ObjectKey, s3.created())
	}
	t.Logf("%v", err)
}

// TestContainer_NameTaken: when <base>.webm is an object of the customer's,
// the WebM recording takes <base>-<id>.webm and overwrites nothing.
func TestContainer_NameTaken(t *testing.T) {
	t.Parallel()
	s3 := newTypedS3()
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIATAKEN")
	ctx := context.Background()
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	taken := strings.TrimSuffix(rec.ObjectKey, ".mkv") + ".webm"
	s3.mu.Lock()
	s3.objects[taken] = fakeObject{size: 7}
	s3.mu.Unlock()
	if _, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(liveWebM(t))); err != nil {
		t.Fatal(err)
	}
	got, _, _ := n.FindRecording(ctx, orgID, rec.ID)
	if want := strings.TrimSuffix(rec.ObjectKey, ".mkv") + "-" + rec.ID + ".webm"; got.ObjectKey != want {
		t.Errorf("key %s; want %s", got.ObjectKey, want)
	}
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	finished(t, n, orgID, rec.ID)
	s3.mu.Lock()
	defer s3.mu.Unlock()
	if s3.objects[taken].size != 7 {
		t.Errorf("the customer's %s was overwritten", taken)
	}
}

// TestContainer_RenameFails: when S3 refuses the new upload, the WebM
// recording goes on under its provisional .mkv name (WebM is Matroska),
// nothing is lost, and the history says why.
func TestContainer_RenameFails(t *testing.T) {
	t.Parallel()
	s3 := newTypedS3()
	s3.refuse = ".webm"
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIAFAILS")
	ctx := context.Background()
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	data := liveWebM(t)
	if off, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(data)); err != nil || off != int64(len(data)) {
		t.Fatalf("append: %d, %v", off, err)
	}
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	done := finished(t, n, orgID, rec.ID)
	if done.State != recsink.RecordingUploaded || done.ObjectKey != rec.ObjectKey {
		t.Errorf("finished %s at %s; want uploaded at %s", done.State, done.ObjectKey, rec.ObjectKey)
	}
	_, events, _ := n.FindRecording(ctx, orgID, rec.ID)
	var said bool
	for _, e := range events {
		said = said || strings.Contains(e.Message, "could not be renamed")
	}
	if !said {
		t.Errorf("no event explains the name: %v", events)
	}
}

// TestContainer_StartedAtStop: a recording that received no bytes is
// announced at its stop, under its provisional name, before it finishes,
// and its empty object has the file format's Content-Type.
func TestContainer_StartedAtStop(t *testing.T) {
	t.Parallel()
	s3 := newTypedS3()
	n := MustOpenNode(t, MustOpenStore(t), s3, "node-1", nil)
	orgID, meetingID := MustSetUp(t, n, "AKIAEMPTY")
	ctx := context.Background()
	rec, _, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
		t.Fatal(err)
	}
	finished(t, n, orgID, rec.ID)
	started, done := "evt_"+rec.ID+"_started", "evt_"+rec.ID+"_finished"
	<-n.notes.queued(recsink.WebhookRecordingFinished, done)
	if n.notes.count(recsink.WebhookRecordingStarted, started) != 1 || n.notes.seqOf(recsink.WebhookRecordingStarted, started) > n.notes.seqOf(recsink.WebhookRecordingFinished, done) {
		t.Errorf("recording.started queued %d times, at %d, finished at %d; want once, before",
			n.notes.count(recsink.WebhookRecordingStarted, started), n.notes.seqOf(recsink.WebhookRecordingStarted, started), n.notes.seqOf(recsink.WebhookRecordingFinished, done))
	}
	if !n.notes.has(recsink.WebhookRecordingStarted, rec.ID, "objectKey", rec.ObjectKey) || !n.notes.has(recsink.WebhookRecordingFinished, rec.ID, "objectKey", rec.ObjectKey) {
		t.Errorf("events do not name %s", rec.ObjectKey)
	}
	s3.mu.Lock()
	ct := s3.types[rec.ObjectKey]
	s3.mu.Unlock()
	if ct != "video/x-matroska" {
		t.Errorf("empty object written with Content-Type %q; want video/x-matroska", ct)
	}
}
