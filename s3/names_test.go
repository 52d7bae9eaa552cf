package s3_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestClient_ObjectExists checks that a name is free only on S3's 404.
func TestClient_ObjectExists(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	other := srv.CreateUser(t, "user") // may not read owner's bucket
	bucket := srv.CreateBucket(t, owner.ID)
	closed := closedPort(t)
	st := newStorage(srv.HostPort, closed)
	ctx := context.Background()
	dest := recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}
	c := mustClient(t, st, dest, owner)
	if err := c.PutObject(ctx, "taken.mkv", "", nil, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	down := dest
	down.Endpoint = "http://" + closed

	for _, tt := range []struct {
		name   string
		client recsink.StorageClient
		key    string
		exists bool
		status int // of the StorageError; -1 for none
	}{
		{"OKTaken", c, "taken.mkv", true, -1},
		{"OKFree", c, "free.mkv", false, -1},
		{"ErrForbidden", mustClient(t, st, dest, other), "free.mkv", false, 403},
		{"ErrWrongSecret", mustClient(t, st, dest, recsink.AccessKey{ID: owner.ID, Secret: owner.Secret + "x"}), "free.mkv", false, 403},
		{"ErrEndpointDown", mustClient(t, st, down, owner), "free.mkv", false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exists, err := tt.client.ObjectExists(ctx, tt.key)
			if tt.status < 0 {
				if err != nil || exists != tt.exists {
					t.Fatalf("ObjectExists = %v, %v; want %v, nil", exists, err, tt.exists)
				}
				return
			}
			var se *recsink.StorageError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Fatalf("ObjectExists = %v, %v; want a StorageError with status %d", exists, err, tt.status)
			}
		})
	}
}

// TestClient_CompleteNeverReplaces completes a multipart upload onto a key
// that another object took meanwhile: S3 refuses it with 412, and the other
// object stays.
func TestClient_CompleteNeverReplaces(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	st := newStorage(srv.HostPort)
	ctx := context.Background()
	c := mustClient(t, st, recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}, owner)

	const key = "room-2026-01-01T00:00:00.000Z.mkv"
	id, err := c.CreateMultipartUpload(ctx, key, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("the recording")
	part, err := c.UploadPart(ctx, key, id, 1, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	// Another writer takes the name before the completion.
	if err := c.PutObject(ctx, key, "", nil, strings.NewReader("someone else's"), 14); err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteMultipartUpload(ctx, key, id, []recsink.Part{part}, "")
	var se *recsink.StorageError
	if !errors.As(err, &se) || se.Code != "PreconditionFailed" || se.StatusCode != 412 {
		t.Fatalf("CompleteMultipartUpload onto a taken key = %v, want a 412 PreconditionFailed StorageError", err)
	}
	if msg := recsink.ErrorMessage(err); !strings.Contains(msg, "Another object already has this name") || se.Retryable() {
		t.Errorf("ErrorMessage = %q, retryable %v; want it to say another object has the name, not retryable", msg, se.Retryable())
	}
	if got := srv.GetObject(t, bucket, key); string(got) != "someone else's" {
		t.Errorf("object = %q, want the other writer's, untouched", got)
	}
	// The name still free, the same upload completes.
	if err := c.DeleteObject(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, key, id, []recsink.Part{part}, ""); err != nil {
		t.Fatalf("CompleteMultipartUpload onto a free key: %v", err)
	}
	if got := srv.GetObject(t, bucket, key); !bytes.Equal(got, body) {
		t.Errorf("object = %q, want %q", got, body)
	}
}

func mustClient(t *testing.T, st interface {
	Client(context.Context, recsink.Destination, recsink.AccessKey) (recsink.StorageClient, error)
}, dest recsink.Destination, key recsink.AccessKey) recsink.StorageClient {
	t.Helper()
	c, err := st.Client(context.Background(), dest, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
