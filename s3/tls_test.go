package s3_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
		mustCertificateRefused(t, err, "CreateMultipartUpload", recsink.CodeCertificateNotTrusted, "it is self-signed (subject CN=recsink s3test versitygw,O=recsink tests)", "--s3-ca-file")
		t.Logf("%v", err)
	})

	t.Run("ErrPlainHTTPOnHTTPS", func(t *testing.T) {
		// An https URL on a port that speaks plain HTTP: said so, with the
		// way out, not "does not answer", and not retried.
		plain := s3test.MustStart(t)
		key := plain.CreateUser(t, "user")
		b := plain.CreateBucket(t, key.ID)
		endpoint := "https://" + plain.HostPort
		report, err := newStorage(plain.HostPort).Check(ctx, recsink.Destination{Bucket: b, Endpoint: endpoint, ForcePathStyle: true}, key)
		if err != nil {
			t.Fatal(err)
		}
		mustReport(t, report, checkWant{"HeadBucket", recsink.CodeEndpointNotTLS, "answered in plain HTTP"}, nil)
		if c := firstFailed(report); c.Transient {
			t.Errorf("HeadBucket check %+v, want not transient", c)
		}
	})

	t.Run("ErrCheckUnknownAuthority", func(t *testing.T) {
		// The credential check says why, and that it is not a network
		// failure (not Transient: the key health watch reports it).
		report, err := newStorage(srv.HostPort).Check(ctx, recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, ForcePathStyle: true}, owner)
		if err != nil {
			t.Fatal(err)
		}
		mustReport(t, report, checkWant{"HeadBucket", recsink.CodeCertificateNotTrusted, "--s3-ca-file"}, nil)
		if c := firstFailed(report); c.Transient || !strings.Contains(c.Message, "is not trusted by this recsink server: it is self-signed") {
			t.Errorf("HeadBucket check %+v, want not transient, the certificate explained", c)
		}
		if c := find(report, "PutObject"); !c.Skipped {
			t.Errorf("PutObject check %+v, want skipped", c)
		}
	})

	t.Run("ErrUploadPartUnknownAuthority", func(t *testing.T) {
		// An upload begun with the CA trusted, continued without it (a
		// restart that lost --s3-ca-file): the part is refused as the
		// customer's, not retried as an endpoint that does not answer.
		const key = "rec/room/part-refused.mkv"
		up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.FullObjectChecksums...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.AbortMultipartUpload(context.WithoutCancel(ctx), key, up.ID)
		untrusting := mustClient(t, newStorage(srv.HostPort), dest, owner)
		_, err = untrusting.UploadPart(ctx, key, up, 1, bytes.NewReader(data[:4096]), 4096)
		mustCertificateRefused(t, err, "UploadPart", recsink.CodeCertificateNotTrusted, "self-signed", "--s3-ca-file")
		if parts, err := c.ListParts(ctx, key, up.ID); err != nil || len(parts) != 0 {
			t.Errorf("ListParts = %v, %v; want no part", parts, err)
		}
	})

	t.Run("ErrNameMismatch", func(t *testing.T) {
		// The CA trusted, the endpoint reached by a name its certificate
		// (127.0.0.1, ::1, localhost) does not hold.
		_, port, _ := net.SplitHostPort(srv.HostPort)
		st := s3.NewWithResolver(s3.Config{AllowEndpoints: []string{"s3.recsink.test:" + port}, RootCAs: roots, Logger: slog.New(slog.DiscardHandler)},
			MustFakeDNS(t, net.IPv4(127, 0, 0, 1)))
		named := recsink.Destination{Bucket: bucket, Endpoint: "https://s3.recsink.test:" + port, Region: "us-east-1", ForcePathStyle: true}
		const want = "it is valid for localhost, 127.0.0.1, ::1, not s3.recsink.test."
		report, err := st.Check(ctx, named, owner)
		if err != nil {
			t.Fatal(err)
		}
		mustReport(t, report, checkWant{"HeadBucket", recsink.CodeCertificateNameMismatch, want}, nil)
		err = mustClient(t, st, named, owner).PutObject(ctx, "rec/room/named.mkv", "", nil, strings.NewReader("x"), 1)
		mustCertificateRefused(t, err, "PutObject", recsink.CodeCertificateNameMismatch, want)
	})

	t.Run("SystemRootsWith", func(t *testing.T) {
		if _, err := s3.SystemRootsWith([]byte("not a certificate")); err == nil {
			t.Error("a PEM without certificates accepted")
		}
	})
}

// TestTLS_CertificateExpired: an endpoint whose certificate has expired
// (trusted otherwise) is refused with CertificateExpired and the date, at
// the first handshake: the SDK's retryer does not try it again.
func TestTLS_CertificateExpired(t *testing.T) {
	t.Parallel()
	notAfter := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	cert, roots := mustCertificate(t, notAfter)
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a request reached the endpoint through an expired certificate")
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	defer ts.Close()
	hostPort := ts.Listener.Addr().String()
	st := s3.New(s3.Config{AllowEndpoints: []string{hostPort}, RootCAs: roots, MaxAttempts: 3, Logger: slog.New(slog.DiscardHandler)})
	dest := recsink.Destination{Bucket: "bucket", Endpoint: "https://" + hostPort, Region: "us-east-1", ForcePathStyle: true}
	key := recsink.AccessKey{ID: "AKID", Secret: "secret"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := "expired at " + notAfter.Format(time.RFC3339)

	err := mustClient(t, st, dest, key).PutObject(ctx, "rec/room/expired.mkv", "", nil, strings.NewReader("x"), 1)
	mustCertificateRefused(t, err, "PutObject", recsink.CodeCertificateExpired, want, "renews it")
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for one PutObject, want 1: a refused certificate is not retried by the SDK", n)
	}

	report, err := st.Check(ctx, dest, key)
	if err != nil {
		t.Fatal(err)
	}
	mustReport(t, report, checkWant{"HeadBucket", recsink.CodeCertificateExpired, want}, nil)
}

// mustCertificateRefused fails t unless err is op's StorageError with the
// certificate code, not retryable nor a refused key, the customer's, and
// explained with every one of explain.
func mustCertificateRefused(t *testing.T, err error, op, code string, explain ...string) {
	t.Helper()
	var se *recsink.StorageError
	if !errors.As(err, &se) {
		t.Fatalf("%s: %v, want a StorageError", op, err)
	}
	if se.Op != op || se.Code != code || se.Retryable() || se.KeyRefused() || recsink.ErrorCode(err) != recsink.EDESTINATION {
		t.Errorf("%s: Op %s Code %q Retryable %v KeyRefused %v ErrorCode %s; want %s %q, not retryable, not the key, %s",
			op, se.Op, se.Code, se.Retryable(), se.KeyRefused(), recsink.ErrorCode(err), op, code, recsink.EDESTINATION)
	}
	msg := recsink.ErrorMessage(err)
	for _, want := range explain {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: message %q\nwant it to contain %q", op, msg, want)
		}
	}
	if strings.Contains(msg, "does not answer") {
		t.Errorf("%s: message %q says the endpoint does not answer", op, msg)
	}
}

// mustCertificate returns a self-signed certificate for 127.0.0.1 valid
// until notAfter, with its key, and a pool that trusts it.
func mustCertificate(t *testing.T, notAfter time.Time) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "expired s3 endpoint"},
		NotBefore:             notAfter.Add(-48 * time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
