package s3test_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.StopShared()
	os.Exit(code)
}

// backends runs f on a versitygw of its own and on the shared SeaweedFS.
func backends(t *testing.T, f func(t *testing.T, srv s3test.Backend)) {
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStart(t))
	})
	t.Run("seaweedfs", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.SharedSeaweedFS(t))
	})
}

// refusal returns "STATUS CODE" of an S3 error, or "ok".
func refusal(err error) string {
	if err == nil {
		return "ok"
	}
	status, code := 0, ""
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return strings.TrimSpace(strings.Join([]string{strconv.Itoa(status), code}, " "))
}

// TestBackends: the Backend contract holds on both servers: a bucket and
// its key, a second key with the same access, a key limited to another
// bucket refused, a deleted key refused; and the refusals each server gives
// for what the storage checks explain, logged side by side.
func TestBackends(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, srv s3test.Backend) {
		ctx := context.Background()
		bucket, key := srv.CreateBucketAndKey(t)
		other, _ := srv.CreateBucketAndKey(t)
		same := srv.CreateUserFor(t, bucket)
		stranger := srv.CreateUserFor(t, other)
		gone := srv.CreateUserFor(t, bucket)
		srv.DeleteUser(t, gone.ID)

		if err := put(t, srv.S3Client(t, key), bucket, "rec/one", "1"); err != nil {
			t.Fatalf("PutObject with the bucket's key: %v", err)
		}
		if err := put(t, srv.S3Client(t, same), bucket, "rec/two", "2"); err != nil {
			t.Fatalf("PutObject with a key of the same access: %v", err)
		}
		if got := string(srv.GetObject(t, bucket, "rec/two")); got != "2" {
			t.Fatalf("GetObject = %q", got)
		}
		if got := strings.Join(srv.ListObjects(t, bucket, "rec/"), ","); got != "rec/one,rec/two" {
			t.Fatalf("ListObjects = %s", got)
		}
		if err := put(t, srv.S3Client(t, key), other, "rec/x", "x"); err == nil {
			t.Fatal("the bucket's key wrote into another bucket")
		}

		wrongSecret := recsink.AccessKey{ID: key.ID, Secret: "wrong" + key.Secret[5:]}
		for _, tc := range []struct {
			name   string
			key    recsink.AccessKey
			bucket string
			want   string // the PutObject refusal, the same on both servers
		}{
			{"WrongSecret", wrongSecret, bucket, "403 SignatureDoesNotMatch"},
			{"DeletedKey", gone, bucket, "403 InvalidAccessKeyId"},
			{"OtherBucketsKey", stranger, bucket, "403 AccessDenied"},
			{"MissingBucket", srv.AdminKey(), fmt.Sprintf("no-such-bucket-%08x", mrand.Uint32()), "404 NoSuchBucket"},
			{"MissingBucketOwnKey", key, fmt.Sprintf("no-such-bucket-%08x", mrand.Uint32()), ""},
		} {
			c := srv.S3Client(t, tc.key)
			_, herr := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(tc.bucket)})
			perr := put(t, c, tc.bucket, "rec/probe", "p")
			t.Logf("%s on %s: HeadBucket %s; PutObject %s", tc.name, srv.Name(), refusal(herr), refusal(perr))
			if got := refusal(perr); tc.want != "" && got != tc.want {
				t.Errorf("%s: PutObject refused with %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}
