package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
)

// storageError converts an error of the SDK for operation op into a
// *recsink.StorageError. It returns ctx.Err() when ctx is done, because
// cancellation is the caller's doing and not a failure of the storage, and
// err unchanged when no request reached the network (an internal failure).
// The StorageError's text goes through redact, with secret, the access
// secret of the request, if known: an endpoint's error message is its own
// text, and may echo what it was sent.
func storageError(ctx context.Context, op string, err error, secret string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if se := assumeRoleError(err, secret); se != nil {
		return se
	}
	se := &recsink.StorageError{Op: op, Err: &redactedError{msg: redact(err.Error(), secret), err: err}}
	var te *timeoutError
	var ra *recsink.RefusedAddressError
	switch {
	case errors.As(err, &te):
		se.Code, se.Deadline = "Timeout", te.after
		return se
	case errors.As(err, &ra):
		se.Code = "AddressRefused"
		return se
	}
	if code := certificateCode(err); code != "" {
		se.Code = code
		return se
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		se.StatusCode = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		se.Code = apiCode(se.StatusCode, ae)
	}
	if se.StatusCode == 0 && se.Code == "" && !transportError(err) {
		return err
	}
	return se
}

// apiCode returns S3's error code, or "" when the SDK made it up: a HEAD
// response carries no body, so the SDK names the code after the status text
// ("Forbidden", "NotFound"), which would hide that S3 said nothing.
func apiCode(status int, ae smithy.APIError) string {
	code := ae.ErrorCode()
	if code == "UnknownError" {
		return ""
	}
	if text := http.StatusText(status); text != "" && code == strings.ReplaceAll(text, " ", "") {
		if msg := ae.ErrorMessage(); msg == "" || msg == text || msg == code {
			return ""
		}
	}
	return code
}

// transportError reports whether err means that no response arrived:
// refused or reset connections, DNS failures, timeouts.
func transportError(err error) bool {
	var rse *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &rse) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// certificateCode returns the StorageError code of a TLS certificate that
// the handshake refused, and "" when err is not one. crypto/tls wraps
// every verification failure in a *tls.CertificateVerificationError, and
// net/http, smithy's RequestSendError and the retryer wrap that in turn.
// Without the distinction such a failure reads as an endpoint that does
// not answer, and is waited out as an outage it is not.
func certificateCode(err error) string {
	var he x509.HostnameError
	var ie x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &rhe), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// An https URL on a port that speaks plain HTTP. net/http turns
		// crypto/tls's RecordHeaderError into an error of that text, with
		// nothing to unwrap.
		return recsink.CodeEndpointNotTLS
	case errors.As(err, &he):
		return recsink.CodeCertificateNameMismatch
	case errors.As(err, &ie) && ie.Reason == x509.Expired:
		return recsink.CodeCertificateExpired
	case errors.As(err, &ve), errors.As(err, &ue), errors.As(err, &ie):
		return recsink.CodeCertificateNotTrusted
	}
	return ""
}

// noRetryCertificate keeps the SDK's retryer from retrying a refused
// certificate, which it takes for a connection error: the next handshake
// meets the same certificate, and retrying would only delay the answer
// (up to MaxBackoff per attempt). Our own upload loop tries again later,
// when someone may have changed the certificate or the trusted authorities.
var noRetryCertificate = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if certificateCode(err) != "" {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})

// redactedError is an error whose text has its secrets taken out. It
// still unwraps to the original, for errors.As, but prints only msg.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Signatures, session tokens and credential scopes, as query parameters (a
// presigned URL) or as headers (Authorization) that an endpoint may echo in
// its error message. A signature is valid for minutes and may be replayed.
var (
	secretParam  = regexp.MustCompile(`(?i)\b(x-amz-signature|x-amz-security-token|x-amz-credential|signature|awsaccesskeyid)=[^&\s"'<>]+`)
	secretHeader = regexp.MustCompile(`(?i)\b(authorization|x-amz-security-token)(["']?\s*[:=]\s*)[^\r\n"'<>]+`)
)

// redact returns s with signatures, tokens and secret taken out.
func redact(s, secret string) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[REDACTED]")
	}
	s = secretHeader.ReplaceAllString(s, "$1$2[REDACTED]")
	return secretParam.ReplaceAllString(s, "$1=[REDACTED]")
}
