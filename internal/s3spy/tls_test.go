package s3spy_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink/internal/s3spy"
	"github.com/recsink/recsink/internal/s3test"
)

// TestProxyTLS: a proxy in front of a versitygw over TLS serves https with
// the server's certificate, passes requests on over TLS, and names them.
func TestProxyTLS(t *testing.T) {
	srv := s3test.MustStartTLS(t)
	key := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, key.ID)
	cert, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := s3spy.MustStartTLS(t, srv.Endpoint, cert, srv.CA)
	if !strings.HasPrefix(p.Endpoint, "https://127.0.0.1:") {
		t.Fatalf("proxy endpoint %s, want https", p.Endpoint)
	}
	p.Track(os.Getpid())
	client := s3.New(s3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(p.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA}}},
	})
	ctx := context.Background()
	// The SDK's default over TLS: an unsigned streaming body with a CRC32
	// trailer, which the proxy passes on unchanged.
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	if got := srv.GetObject(t, bucket, "a/b"); string(got) != "hello" {
		t.Fatalf("object = %q", got)
	}
	if n := p.Count(func(r s3spy.Request) bool {
		return r.Op == "PutObject" && r.Key == "a/b" && r.OK() && r.PID == os.Getpid()
	}); n != 1 {
		t.Errorf("%d PutObject of a/b from this process through the proxy, want 1: %+v", n, p.Requests())
	}
}
