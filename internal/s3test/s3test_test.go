package s3test_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

func put(tb testing.TB, c *s3.Client, bucket, key, body string) error {
	tb.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	return err
}

func TestServer(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	a := srv.CreateUser(t, "user")
	b := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, a.ID)

	if err := put(t, srv.S3Client(t, a), bucket, "rec/one", "1"); err != nil {
		t.Fatalf("owner PutObject: %v", err)
	}
	if err := put(t, srv.S3Client(t, b), bucket, "rec/two", "2"); err == nil {
		t.Fatal("PutObject by a key without access succeeded")
	}
	srv.PutBucketPolicy(t, bucket, a, a.ID, b.ID)
	if err := put(t, srv.S3Client(t, b), bucket, "rec/two", "2"); err != nil {
		t.Fatalf("PutObject allowed by policy: %v", err)
	}

	t.Run("CPUTime", func(t *testing.T) {
		before, ok := srv.CPUTime()
		if !ok {
			t.Skip("no CPU time of a process here (not Linux)")
		}
		// The server's CPU time grows with the work it is given: 4 MiB
		// PutObjects until it has, within 20 of them.
		body := strings.Repeat("x", 4<<20)
		for i := range 20 {
			if err := put(t, srv.S3Client(t, a), bucket, "cpu", body); err != nil {
				t.Fatal(err)
			}
			if now, _ := srv.CPUTime(); now > before {
				t.Logf("versitygw: %v of CPU time after %d PutObjects, from %v", now, i+1, before)
				return
			}
		}
		t.Errorf("versitygw's CPU time stayed %v over 20 PutObjects of 4 MiB", before)
	})

	t.Run("StopStart", func(t *testing.T) {
		srv.Stop(t)
		if _, ok := srv.CPUTime(); ok {
			t.Error("CPUTime of a stopped server is reported")
		}
		if err := put(t, srv.S3Client(t, a), bucket, "rec/three", "3"); err == nil {
			t.Fatal("PutObject succeeded while the server is stopped")
		}
		srv.Start(t)
		if got := srv.GetObject(t, bucket, "rec/one"); !bytes.Equal(got, []byte("1")) {
			t.Errorf("object after restart = %q", got)
		}
		if err := put(t, srv.S3Client(t, a), bucket, "rec/three", "3"); err != nil {
			t.Errorf("user key after restart: %v", err)
		}
		if got := srv.ListObjects(t, bucket, "rec/"); strings.Join(got, ",") != "rec/one,rec/three,rec/two" {
			t.Errorf("ListObjects = %v", got)
		}
	})

	t.Run("UpdateUserSecret", func(t *testing.T) {
		secret := srv.UpdateUserSecret(t, a.ID)
		if err := put(t, srv.S3Client(t, a), bucket, "x", "x"); err == nil {
			t.Error("the old secret still works")
		}
		if err := put(t, srv.S3Client(t, recsink.AccessKey{ID: a.ID, Secret: secret}), bucket, "x", "x"); err != nil {
			t.Errorf("the new secret: %v", err)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		srv.DeleteUser(t, b.ID)
		if err := put(t, srv.S3Client(t, b), bucket, "y", "y"); err == nil || !strings.Contains(err.Error(), "InvalidAccessKeyId") {
			t.Errorf("deleted key: %v, want InvalidAccessKeyId", err)
		}
	})
}
