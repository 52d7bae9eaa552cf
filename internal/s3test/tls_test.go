package s3test_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink/internal/s3test"
)

// TestServerTLS checks that MustStartTLS serves S3 and the admin API over
// https only, that the helpers trust its certificate, and that a client
// that does not is refused with a certificate error.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStartTLS(t)
	if !strings.HasPrefix(srv.Endpoint, "https://127.0.0.1:") || !strings.HasPrefix(srv.AdminEndpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoints %s and %s, want https", srv.Endpoint, srv.AdminEndpoint)
	}
	if srv.CA == nil || !bytes.Contains(srv.CAPEM, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("CA %v, CAPEM %q", srv.CA, srv.CAPEM)
	}
	a := srv.CreateUser(t, "user") // the admin API, over TLS
	bucket := srv.CreateBucket(t, a.ID)
	if err := put(t, srv.S3Client(t, a), bucket, "rec/one", "1"); err != nil {
		t.Fatalf("PutObject over TLS: %v", err)
	}
	if got := srv.GetObject(t, bucket, "rec/one"); string(got) != "1" {
		t.Fatalf("GetObject = %q", got)
	}

	get := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for _, url := range []string{srv.Endpoint, srv.AdminEndpoint} {
		var ua x509.UnknownAuthorityError
		if err := get(url + "/"); !errors.As(err, &ua) {
			t.Errorf("GET %s without the CA: %v, want x509.UnknownAuthorityError", url, err)
		}
		// Plain HTTP on a TLS port gets no S3 answer.
		if err := get(strings.Replace(url, "https://", "http://", 1) + "/"); err == nil {
			t.Errorf("GET %s over plain HTTP succeeded", url)
		}
	}

	t.Run("StopStart", func(t *testing.T) {
		srv.Stop(t)
		srv.Start(t)
		if got := srv.GetObject(t, bucket, "rec/one"); string(got) != "1" {
			t.Errorf("object after restart = %q", got)
		}
	})
}
