package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
)

// bucketStorage routes each bucket to its own fake.
type bucketStorage map[string]*fakeS3

func (b bucketStorage) Client(ctx context.Context, dest recsink.Destination, key recsink.AccessKey) (recsink.StorageClient, error) {
	return b[dest.Bucket].Client(ctx, dest, key)
}

func (b bucketStorage) Check(context.Context, recsink.Destination, recsink.AccessKey) (*recsink.CheckReport, error) {
	return &recsink.CheckReport{OK: true, Region: "us-east-1"}, nil
}

// TestUploadsIsolatedFromHangingBucket: organization B's bucket hangs every
// upload, and B has more parts waiting than there are upload slots. A's
// recording, started after, still uploads every part and completes within
// moments of its stop.
func TestUploadsIsolatedFromHangingBucket(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	hanging := newFakeS3()
	hanging.uploadPart = func(ctx context.Context, _ int32) error {
		<-ctx.Done()
		return ctx.Err()
	}
	storage := bucketStorage{"hanging": hanging, "healthy": newFakeS3()}
	const slots = 4
	svc := e.NewServiceWith(t, e.Store, storage, e.MustOpenSpool(t), func(c *service.Config) { c.UploadConcurrency = slots })
	ctx := context.Background()
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}

	orgB := MustCreateOrganization(t, svc, "hanging")
	for range slots + 1 {
		rec, token := MustStartRecordingIn(t, svc, orgB)
		MustAppend(t, svc, rec.ID, token, 0, randomBytes(spool.MinPartSize+1))
	}
	orgA := MustCreateOrganization(t, svc, "healthy")
	rec, token := MustStartRecordingIn(t, svc, orgA)
	MustAppend(t, svc, rec.ID, token, 0, randomBytes(12<<20))
	began := time.Now()
	if _, err := svc.StopRecording(ctx, orgA.ID, rec.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A's recording to be uploaded", func() bool {
		got, _, err := svc.FindRecording(ctx, orgA.ID, rec.ID)
		return err == nil && got.State == recsink.RecordingUploaded
	})
	t.Logf("%d upload slots, organization B hanging on %d parts: A's 12 MiB recording uploaded %s after its stop", slots, slots+1, time.Since(began))
	if up := storage["healthy"].uploaded(); len(up) != 3 {
		t.Errorf("A's parts uploaded: %v, want 3", up)
	}
}
