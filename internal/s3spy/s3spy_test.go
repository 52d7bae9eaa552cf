package s3spy_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink/internal/s3spy"
	"github.com/recsink/recsink/internal/s3test"
)

// TestProxy: requests through the proxy reach versitygw with their
// signatures intact, are named by operation and sender, and a hold keeps
// one back until it is released.
func TestProxy(t *testing.T) {
	srv := s3test.MustStart(t)
	key := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, key.ID)
	p := s3spy.MustStart(t, srv.Endpoint)
	p.Track(os.Getpid())
	client := s3.New(s3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(p.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
	})
	ctx := context.Background()
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	h := p.Hold(func(r s3spy.Request) bool { return r.Op == "HeadObject" })
	done := make(chan error, 1)
	go func() {
		_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b")})
		done <- err
	}()
	h.WaitCaught(t, 1, 10*time.Second)
	select {
	case err := <-done:
		t.Fatalf("held request answered: %v", err)
	case <-time.After(200 * time.Millisecond): // the request must still be held: a bounded check of absence
	}
	h.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A rejected request never reaches the server and gets the S3 error.
	h = p.Hold(func(r s3spy.Request) bool { return r.Op == "GetObject" })
	go func() {
		_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b")})
		done <- err
	}()
	h.WaitCaught(t, 1, 10*time.Second)
	h.Reject(404, "NoSuchKey", "The specified key does not exist.")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "NoSuchKey") {
		t.Fatalf("rejected GetObject: %v", err)
	}
	reqs := p.Requests()
	if len(reqs) != 3 || reqs[2].Code != "NoSuchKey" || reqs[2].Status != 404 {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	if len(reqs) != 3 {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	put, head := reqs[0], reqs[1]
	if put.Op != "PutObject" || put.Key != "a/b" || put.Bucket != bucket || put.PID != os.Getpid() || put.AccessKeyID != key.ID || !put.OK() {
		t.Fatalf("put: %+v", put)
	}
	if head.Op != "HeadObject" || head.Held < 200*time.Millisecond || !head.OK() {
		t.Fatalf("head: %+v", head)
	}
	t.Logf("put %+v", put)
}
