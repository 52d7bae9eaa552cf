package recsink_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestStorageError_Certificate: a refused TLS certificate is the
// customer's (EDESTINATION), neither retried as an outage nor a refused
// key, and its sentence says what the certificate is wrong about, naming
// --s3-ca-file where a private authority would fix it; never "does not
// answer".
func TestStorageError_Certificate(t *testing.T) {
	t.Parallel()
	now := recsink.Now()
	self := &x509.Certificate{
		Subject: pkix.Name{CommonName: "minio.internal"}, Issuer: pkix.Name{CommonName: "minio.internal"},
		RawSubject: []byte("minio"), RawIssuer: []byte("minio"),
	}
	private := &x509.Certificate{
		Subject: pkix.Name{CommonName: "s3.example.com"}, Issuer: pkix.Name{CommonName: "Example Private CA", Organization: []string{"Example"}},
		RawSubject: []byte("leaf"), RawIssuer: []byte("ca"),
	}
	named := &x509.Certificate{DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	many := &x509.Certificate{}
	for i := range 20 {
		many.DNSNames = append(many.DNSNames, fmt.Sprintf("s%d.example.com", i))
	}
	legacy := &x509.Certificate{Subject: pkix.Name{CommonName: "s3.example.com"}}
	expired := &x509.Certificate{Subject: pkix.Name{CommonName: "s3.example.com"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	early := &x509.Certificate{Subject: pkix.Name{CommonName: "s3.example.com"}, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}
	// wrapped is how a handshake's failure reaches the StorageError: in
	// crypto/tls's error, in net/http's and the SDK's.
	wrapped := func(err error) error {
		return fmt.Errorf("operation error S3: HeadBucket: %w", &tls.CertificateVerificationError{Err: err})
	}

	for _, tt := range []struct {
		name    string
		err     recsink.StorageError
		explain []string
	}{
		{"NotTrustedSelfSigned", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNotTrusted, Err: wrapped(x509.UnknownAuthorityError{Cert: self})},
			[]string{"The storage endpoint's TLS certificate is not trusted by this recsink server: it is self-signed (subject CN=minio.internal)", "--s3-ca-file"}},
		{"NotTrustedPrivateCA", recsink.StorageError{Op: "UploadPart", Code: recsink.CodeCertificateNotTrusted, Err: wrapped(x509.UnknownAuthorityError{Cert: private})},
			[]string{"signed by an unknown authority (issuer CN=Example Private CA,O=Example)", "the operator adds that authority's certificate with --s3-ca-file"}},
		{"NotTrustedNoDetail", recsink.StorageError{Op: "PutObject", Code: recsink.CodeCertificateNotTrusted},
			[]string{"not trusted by this recsink server: it is signed by an authority that this server does not know", "--s3-ca-file"}},
		{"NotTrustedChainInvalid", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNotTrusted, Err: wrapped(x509.CertificateInvalidError{Cert: private, Reason: x509.IncompatibleUsage})},
			[]string{"its certificate chain is not valid (x509: certificate specifies an incompatible key usage)"}},
		{"EndpointNotTLS", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeEndpointNotTLS, Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}},
			[]string{"The storage endpoint's URL says https, but the endpoint answered in plain HTTP", "http://"}},
		{"EndpointNotTLSForSTS", recsink.StorageError{Op: recsink.OpAssumeRole, Code: recsink.CodeEndpointNotTLS},
			[]string{"The security token service (STS) endpoint's URL says https"}},
		{"NotTrustedNoSystemRoots", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNotTrusted, Err: wrapped(x509.SystemRootsError{})},
			[]string{"This recsink server has no trusted root certificates to verify the storage endpoint's TLS certificate with", "--s3-ca-file"}},
		{"NameMismatch", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNameMismatch, Err: wrapped(x509.HostnameError{Certificate: named, Host: "s3.recsink.test"})},
			[]string{"The storage endpoint's TLS certificate is for another host name: it is valid for localhost, 127.0.0.1, ::1, not s3.recsink.test."}},
		{"NameMismatchMany", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNameMismatch, Err: wrapped(x509.HostnameError{Certificate: many, Host: "s3.recsink.test"})},
			[]string{"s7.example.com, 12 more, not s3.recsink.test"}},
		{"NameMismatchLegacyCommonName", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNameMismatch, Err: wrapped(x509.HostnameError{Certificate: legacy, Host: "s3.example.com"})},
			[]string{`only the legacy common name "s3.example.com"`, "reissued with s3.example.com as a DNS name"}},
		{"NameMismatchNoDetail", recsink.StorageError{Op: "HeadBucket", Code: recsink.CodeCertificateNameMismatch},
			[]string{"is for another host name than the endpoint's"}},
		{"Expired", recsink.StorageError{Op: "UploadPart", Code: recsink.CodeCertificateExpired, Err: wrapped(x509.CertificateInvalidError{Cert: expired, Reason: x509.Expired})},
			[]string{"The storage endpoint's TLS certificate (subject CN=s3.example.com) expired at 2026-01-02T03:04:05Z", "renews it"}},
		{"NotYetValid", recsink.StorageError{Op: "UploadPart", Code: recsink.CodeCertificateExpired, Err: wrapped(x509.CertificateInvalidError{Cert: early, Reason: x509.Expired})},
			[]string{"is not valid before", "check that clock"}},
		{"STSNotTrusted", recsink.StorageError{Op: recsink.OpAssumeRole, Code: recsink.CodeCertificateNotTrusted, Err: wrapped(x509.UnknownAuthorityError{Cert: self})},
			[]string{"The TLS certificate of the security token service (STS) endpoint is not trusted", "--s3-ca-file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.err
			if !e.CertificateRefused() || e.Retryable() || e.KeyRefused() || e.ChecksumMismatch() {
				t.Errorf("CertificateRefused %v Retryable %v KeyRefused %v ChecksumMismatch %v, want true false false false",
					e.CertificateRefused(), e.Retryable(), e.KeyRefused(), e.ChecksumMismatch())
			}
			if code := recsink.ErrorCode(&e); code != recsink.EDESTINATION {
				t.Errorf("ErrorCode = %s, want %s", code, recsink.EDESTINATION)
			}
			msg := recsink.ErrorMessage(&e)
			for _, want := range tt.explain {
				if !strings.Contains(msg, want) {
					t.Errorf("Explain = %q\nwant it to contain %q", msg, want)
				}
			}
			if strings.Contains(msg, "does not answer") || strings.Contains(msg, "PRIVATE KEY") {
				t.Errorf("Explain = %q, want neither an endpoint that does not answer nor key material", msg)
			}
		})
	}

	t.Run("NoAnswer", func(t *testing.T) {
		// Without a certificate code, no response is still an endpoint that
		// does not answer, retried.
		e := recsink.StorageError{Op: "HeadBucket"}
		if e.CertificateRefused() || !e.Retryable() || !strings.Contains(e.Explain(), "does not answer") {
			t.Errorf("CertificateRefused %v Retryable %v Explain %q", e.CertificateRefused(), e.Retryable(), e.Explain())
		}
	})
}
