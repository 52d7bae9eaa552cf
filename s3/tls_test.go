package s3_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/s3"
)

// TestTLS_MultipartRoundTrip uploads a recording-like object in parts with
// CRC64NVME to a versitygw that serves https with a certificate of its own
// CA, trusted through Config.RootCAs: the parts go up as UNSIGNED-PAYLOAD
// with their CRCs, S3 checks them and the object's, and the object holds
// the bytes sent.
func TestTLS_MultipartRoundTrip(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStartTLS(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	roots, err := s3.SystemRootsWith(srv.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	st := s3.New(s3.Config{AllowEndpoints: []string{srv.HostPort}, RootCAs: roots, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dest := recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}
	c, err := st.Client(ctx, dest, owner)
	if err != nil {
		t.Fatal(err)
	}

	const key = "rec/room/recording.mkv"
	data := make([]byte, 2*(5<<20)+4321)
	for i := range data {
		data[i] = byte(i * 13 % 251)
	}
	spool := bytes.NewReader(append(bytes.Clone(data), "not part of the object"...))
	up, err := c.CreateMultipartUpload(ctx, key, dest.ContentType(), map[string]string{"recording-id": "rec_tls"}, recsink.FullObjectChecksums...)
	if err != nil {
		t.Fatal(err)
	}
	if up.Checksum != recsink.ChecksumCRC64NVME {
		t.Fatalf("upload checksum %q, want CRC64NVME", up.Checksum)
	}
	var parts []recsink.Part
	var offset int64
	for i, size := range []int64{5 << 20, 5 << 20, 4321} {
		n := int32(i + 1)
		var body io.ReadSeeker = io.NewSectionReader(spool, offset, size)
		if n == 2 { // one part with its CRC known (checksum_test.go), the others read for it
			body = &knownCRC{SectionReader: io.NewSectionReader(spool, offset, size), alg: recsink.ChecksumCRC64NVME,
				sum: crc.CRC64NVME.Encode(crc.CRC64NVME.Checksum(data[offset : offset+size]))}
		}
		part, err := c.UploadPart(ctx, key, up, n, body, size)
		if err != nil {
			t.Fatalf("UploadPart %d over TLS: %v", n, err)
		}
		part.Offset = offset
		parts = append(parts, part)
		offset += size
	}
	sum, err := c.CompleteMultipartUpload(ctx, key, up, parts, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := crc.CRC64NVME.Encode(crc.CRC64NVME.Checksum(data)); sum.Algorithm != recsink.ChecksumCRC64NVME || sum.Value != want {
		t.Errorf("object checksum %+v, want CRC64NVME %s", sum, want)
	}
	if got := srv.GetObject(t, bucket, key); !bytes.Equal(got, data) {
		t.Errorf("object of %d bytes differs from the %d bytes uploaded", len(got), len(data))
	}

	t.Run("ErrUnknownAuthority", func(t *testing.T) {
		// The system's roots only: the server's certificate is refused at
		// once, with an error that says so, and never retried into a hang.
		st := newStorage(srv.HostPort)
		c, err := st.Client(ctx, dest, owner)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.CreateMultipartUpload(ctx, "rec/room/refused.mkv", "", nil, recsink.FullObjectChecksums...)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("refused after %v, want at once", took)
		}
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("CreateMultipartUpload without the CA: %v, want x509.UnknownAuthorityError", err)
		}
		t.Logf("%v", err)
	})

	t.Run("SystemRootsWith", func(t *testing.T) {
		if _, err := s3.SystemRootsWith([]byte("not a certificate")); err == nil {
			t.Error("a PEM without certificates accepted")
		}
	})
}
