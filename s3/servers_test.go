package s3_test

import (
	"bytes"
	"context"
	"os"
	"strings"
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

// TestStorage_CheckOnEachServer: the storage checks on save pass for a key
// scoped to its bucket, and each refusal is explained, on versitygw and on
// SeaweedFS. The one difference: a missing bucket named with a key whose
// permissions name only its own bucket is NoSuchBucket on versitygw and
// AccessDenied on SeaweedFS, which authorizes before it looks the bucket up;
// the explanation then says to check the name as well.
func TestStorage_CheckOnEachServer(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		bucket, key := srv.CreateBucketAndKey(t)
		other, _ := srv.CreateBucketAndKey(t)
		stranger := srv.CreateUserFor(t, other)
		deleted := srv.CreateUserFor(t, bucket)
		srv.DeleteUser(t, deleted.ID)
		st := newStorage(srv.EndpointHost())
		dest := recsink.Destination{Bucket: bucket, Prefix: "rec/room", Endpoint: srv.EndpointURL(), ForcePathStyle: true}
		missing := func(d recsink.Destination) recsink.Destination {
			d.Bucket = "recsink-missing-" + randomName()
			return d
		}
		seaweed := srv.Name() == "seaweedfs"

		type want = checkWant
		for _, tt := range []struct {
			name string
			dest func(recsink.Destination) recsink.Destination
			key  recsink.AccessKey
			want want
		}{
			{name: "OK", key: key},
			{name: "ErrSignatureDoesNotMatch", key: recsink.AccessKey{ID: key.ID, Secret: key.Secret + "x"}, want: want{"HeadBucket", "SignatureDoesNotMatch", "The access secret is wrong"}},
			{name: "ErrInvalidAccessKeyId", key: deleted, want: want{"HeadBucket", "InvalidAccessKeyId", "S3 does not know this access key ID"}},
			{name: "ErrAccessDenied", key: stranger, want: want{"HeadBucket", "AccessDenied", "s3:ListBucket"}},
			{name: "ErrNoSuchBucket", key: srv.AdminKey(), dest: missing, want: want{"HeadBucket", "NoSuchBucket", "The bucket does not exist"}},
			{name: "ErrNoSuchBucketScopedKey", key: key, dest: missing, want: func() want {
				if seaweed {
					return want{"HeadBucket", "AccessDenied", "Check the bucket name too"}
				}
				return want{"HeadBucket", "NoSuchBucket", "The bucket does not exist"}
			}()},
		} {
			t.Run(tt.name, func(t *testing.T) {
				d := dest
				if tt.dest != nil {
					d = tt.dest(d)
				}
				report, err := st.Check(context.Background(), d, tt.key)
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				logReport(t, report)
				if !mustReport(t, report, tt.want, func() []string { return srv.ListObjects(t, d.Bucket, "") }) {
					return
				}
				if tt.want.code == "AccessDenied" {
					// PutObject is denied too, and says which permission.
					if put := find(report, "PutObject"); put.OK || put.Code != "AccessDenied" || !strings.Contains(put.Message, "s3:PutObject") {
						t.Errorf("PutObject = %+v, want AccessDenied naming s3:PutObject", put)
					}
				}
			})
		}
	})
}

func randomName() string {
	return strings.ToLower(strings.NewReplacer("_", "0", "-", "0").Replace(recsink.RandomToken(6)))
}
