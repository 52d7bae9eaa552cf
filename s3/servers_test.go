package s3_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/internal/s3test"
)

// TestMain stops the SeaweedFS that the package's tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	s3test.StopShared()
	os.Exit(code)
}

// onEachS3 runs f as a parallel subtest on a versitygw of its own and on
// the SeaweedFS shared by the package's tests.
func onEachS3(t *testing.T, f func(t *testing.T, srv s3test.Backend)) {
	t.Helper()
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStart(t))
	})
	t.Run("seaweedfs", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.SharedSeaweedFS(t))
	})
}

// TestClient_CompleteWithoutPartChecksums: a full-object checksum upload
// whose parts recsink knows without their CRCs (parts picked up from
// ListParts after a restart) completes, and S3 reports the CRC of the whole
// object. SeaweedFS lists parts without their checksums: before the fix the
// completion failed with "part 1 has no checksum, and S3 lists none for it"
// on every retry, and the recording stayed "stopping".
func TestClient_CompleteWithoutPartChecksums(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		bucket, key := srv.CreateBucketAndKey(t)
		ctx := context.Background()
		c, err := newStorage(srv.EndpointHost()).Client(ctx, recsink.Destination{Bucket: bucket, Endpoint: srv.EndpointURL(), Region: "us-east-1", ForcePathStyle: true}, key)
		if err != nil {
			t.Fatal(err)
		}
		const name = "rec/restarted.mkv"
		data, bounds := object(2)
		up, err := c.CreateMultipartUpload(ctx, name, "video/x-matroska", nil, recsink.ChecksumCRC64NVME)
		if err != nil {
			t.Fatal(err)
		}
		if up.Checksum != recsink.ChecksumCRC64NVME {
			t.Fatalf("upload checksum %q, want CRC64NVME", up.Checksum)
		}
		parts := uploadParts(t, c, name, up, data, bounds, 1, 2, 3)
		listed, err := c.ListParts(ctx, name, up.ID)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: ListParts lists part 1 with checksum %q", srv.Name(), listed[0].Checksum)
		for _, n := range []int32{1, 2} {
			p := parts[n]
			p.Checksum = "" // sent before a restart, recorded without its CRC
			parts[n] = p
		}
		got, err := c.CompleteMultipartUpload(ctx, name, up, values(parts), "")
		if err != nil {
			t.Fatalf("CompleteMultipartUpload: %v", err)
		}
		a := crc.ByName(string(recsink.ChecksumCRC64NVME))
		want := recsink.Checksum{Algorithm: recsink.ChecksumCRC64NVME, Type: "FULL_OBJECT", Value: a.Encode(a.Checksum(data))}
		if got != want {
			t.Errorf("Complete checksum %+v, want %+v", got, want)
		}
		if obj := srv.GetObject(t, bucket, name); !bytes.Equal(obj, data) {
			t.Error("object differs from the parts sent")
		}
	})
}
