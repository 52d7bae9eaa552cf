package s3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/s3"
)

// TestClassifyAssumeRole: the refusals of SeaweedFS (seen on its STS) and of
// AWS (its documented messages) each get their reason.
func TestClassifyAssumeRole(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, code, message, want string }{
		{"SeaweedTrust", "AccessDenied", "trust policy validation failed: trust policy denies access", recsink.RoleTrustDenied},
		{"SeaweedRoleNotFound", "AccessDenied", "role not found: Missing", recsink.RoleNotFound},
		{"SeaweedNoProvider", "AccessDenied", "failed to validate web identity token: no identity provider registered for issuer: http://127.0.0.1:1", recsink.RoleProviderUnknown},
		{"SeaweedAudience", "InvalidParameterValue", "invalid token audience: provider: invalid token audience: token audience matches none of the configured client IDs", recsink.RoleAudienceMismatch},
		{"SeaweedSignature", "InvalidParameterValue", "invalid token format: token signature is invalid", recsink.RoleTokenRejected},
		{"AWSNotAuthorized", "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", recsink.RoleTrustDeniedOrAbsent},
		{"AWSNoProvider", "InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://recsink.example.com", recsink.RoleProviderUnknown},
		{"AWSAudience", "InvalidIdentityToken", "Incorrect token audience", recsink.RoleAudienceMismatch},
		{"AWSDuration", "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", recsink.RoleDurationNotAllowed},
		{"Unknown", "Throttling", "Rate exceeded", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := s3.ClassifyAssumeRole(tt.code, tt.message); got != tt.want {
				t.Fatalf("classify(%s, %q) = %q, want %q", tt.code, tt.message, got, tt.want)
			}
		})
	}
}

// TestStorageError_Certificate: a certificate that the handshake refused
// gets its own code however deeply the SDK wraps it, and an endpoint that
// does not answer keeps none.
func TestStorageError_Certificate(t *testing.T) {
	t.Parallel()
	cert := &x509.Certificate{DNSNames: []string{"localhost"}, Subject: pkix.Name{CommonName: "versitygw"}}
	// sdk wraps err as a failed send of HeadBucket reaches the caller.
	sdk := func(err error) error {
		return &smithy.OperationError{ServiceID: "S3", OperationName: "HeadBucket", Err: &retry.MaxAttemptsError{Attempt: 1,
			Err: &smithyhttp.RequestSendError{Err: &url.Error{Op: "Head", URL: "https://s3.recsink.test:9000/bucket", Err: err}}}}
	}
	for _, tt := range []struct {
		name string
		err  error
		code string
	}{
		{"UnknownAuthority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}}, recsink.CodeCertificateNotTrusted},
		{"ChainInvalid", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: cert, Reason: x509.NotAuthorizedToSign}}, recsink.CodeCertificateNotTrusted},
		{"Other", &tls.CertificateVerificationError{Err: errors.New("x509: something new")}, recsink.CodeCertificateNotTrusted},
		{"NameMismatch", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: cert, Host: "s3.recsink.test"}}, recsink.CodeCertificateNameMismatch},
		{"Expired", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}}, recsink.CodeCertificateExpired},
		{"NoAnswer", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s3.StorageErrorOf(context.Background(), "HeadBucket", sdk(tt.err), "")
			var se *recsink.StorageError
			if !errors.As(err, &se) {
				t.Fatalf("%v: not a StorageError", err)
			}
			if se.Code != tt.code || se.StatusCode != 0 || se.Retryable() == (tt.code != "") {
				t.Errorf("Code %q StatusCode %d Retryable %v, want %q 0 %v", se.Code, se.StatusCode, se.Retryable(), tt.code, tt.code == "")
			}
		})
	}
}
