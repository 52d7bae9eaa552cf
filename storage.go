package recsink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// AccessKey is a customer's S3 access key pair in plain text. It lives only in
// memory; String and LogValue never print the secret.
type AccessKey struct {
	ID     string
	Secret string
}

// String returns the key ID with the secret redacted.
func (k AccessKey) String() string { return fmt.Sprintf("AccessKey{%s, secret redacted}", k.ID) }

// GoString keeps %#v from printing the secret.
func (k AccessKey) GoString() string { return k.String() }

// LogValue keeps slog from printing the secret.
func (k AccessKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// StorageError is a failure reported by the customer's S3 storage, or by the
// network on the way to it. It is the customer's error (EDESTINATION) unless
// it is a server-side or transport failure, which is retried.
type StorageError struct {
	Op         string // the S3 operation: "HeadBucket", "UploadPart", ...
	Code       string // S3's error code: "AccessDenied", ...; "" when none was sent
	StatusCode int    // HTTP status, 0 when no response arrived
	Err        error  // the underlying error, for the log
	// Deadline is, for Code "Timeout", how long recsink waited for an
	// endpoint that had accepted the connection.
	Deadline time.Duration
}

// Error implements error. It carries no secret: the SDK's errors do not either.
func (e *StorageError) Error() string {
	return fmt.Sprintf("s3: %s: %s (status %d): %v", e.Op, e.Code, e.StatusCode, e.Err)
}

// Unwrap returns the underlying error.
func (e *StorageError) Unwrap() error { return e.Err }

// KeyRefused reports whether S3 refused the access key itself: the errors
// after which another key may work where this one does not.
func (e *StorageError) KeyRefused() bool {
	switch e.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "AccessDenied", "InvalidToken", "TokenRefreshRequired":
		return true
	}
	// A HEAD request gets a bare 403 with no code.
	return e.Code == "" && e.StatusCode == 403
}

// Retryable reports whether the same request may succeed later unchanged:
// throttling, server errors and transport failures.
func (e *StorageError) Retryable() bool {
	switch e.Code {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable":
		return true
	}
	return e.StatusCode == 0 || e.StatusCode >= 500 || e.StatusCode == 429
}

// Explain returns one plain sentence that says what went wrong and how to fix
// it, for the customer.
func (e *StorageError) Explain() string {
	switch e.Code {
	case "SignatureDoesNotMatch":
		return "The access secret is wrong: S3 could not verify the request signature. Copy the secret again from IAM, without spaces."
	case "InvalidAccessKeyId":
		return "S3 does not know this access key ID: it is mistyped, or the key was deleted or deactivated. Create a new key in IAM and save it here."
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return "The access key has expired. Save a long-lived IAM user access key instead."
	case "AccessDenied", "AllAccessDisabled":
		return fmt.Sprintf("The access key is not allowed to do %s on this bucket. Give the IAM user %s on the bucket and prefix (see the IAM policy recsink suggests).", e.Op, Permission(e.Op))
	case "NoSuchBucket":
		return "The bucket does not exist. Check the bucket name, or create the bucket first."
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return "The bucket is in another region than the one given. Leave the region empty so recsink finds it, or correct it."
	case "InvalidBucketName":
		return "S3 refused the bucket name as invalid."
	case "NoSuchUpload":
		return "The multipart upload no longer exists in the bucket: a lifecycle rule or someone aborted it."
	case "EntityTooSmall":
		return "S3 refused a part as too small."
	case "SlowDown", "Throttling", "ThrottlingException":
		return "S3 is throttling requests; recsink retries with backoff."
	case "Timeout":
		return fmt.Sprintf("the storage endpoint accepted the connection but did not answer within %d s", int64(math.Ceil(e.Deadline.Seconds())))
	case "AddressRefused":
		return "The endpoint's name resolves to a private, loopback or link-local address, which this recsink server does not connect to; the operator allows such endpoints with --allow-endpoint."
	case "PreconditionFailed":
		return "Another object already has this name in the bucket; recsink does not replace it."
	}
	switch {
	case e.StatusCode == 0:
		return "The storage endpoint does not answer: check the endpoint and region, and that the network allows it."
	case e.StatusCode == 403:
		return fmt.Sprintf("S3 refused %s with 403 Forbidden: the key lacks %s on this bucket, or the key or secret is wrong.", e.Op, Permission(e.Op))
	case e.StatusCode == 404:
		return "The bucket does not exist. Check the bucket name, or create the bucket first."
	case e.StatusCode == 301:
		return "The bucket is in another region than the one given. Leave the region empty so recsink finds it, or correct it."
	case e.StatusCode >= 500:
		return fmt.Sprintf("S3 failed with a server error (%d %s); recsink retries.", e.StatusCode, e.Code)
	}
	return fmt.Sprintf("S3 refused %s: %s (HTTP %d).", e.Op, e.Code, e.StatusCode)
}

// Permission returns the IAM permission that an S3 operation needs.
func Permission(op string) string {
	switch op {
	case "HeadBucket", "ListObjects":
		return "s3:ListBucket"
	case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload":
		return "s3:PutObject"
	case "DeleteObject":
		return "s3:DeleteObject"
	case "AbortMultipartUpload":
		return "s3:AbortMultipartUpload"
	case "ListParts":
		return "s3:ListMultipartUploadParts"
	case "HeadObject", "GetObject":
		return "s3:GetObject"
	case "CopyObject":
		return "s3:GetObject and s3:PutObject"
	case "GetBucketLocation":
		return "s3:GetBucketLocation"
	}
	return "s3:" + op
}

// Check is one step of the credential check run before a destination is saved.
type Check struct {
	Name       string `json:"name"`                 // the S3 operation: "HeadBucket", ...
	Permission string `json:"permission,omitempty"` // the IAM permission it needs; none for the Endpoint check
	OK         bool   `json:"ok"`
	Code       string `json:"code,omitempty"`    // S3's error code when it failed
	Message    string `json:"message,omitempty"` // plain explanation when it failed
	Skipped    bool   `json:"skipped,omitempty"` // not run because an earlier step failed
}

// CheckReport is the result of checking a destination and key.
type CheckReport struct {
	OK     bool    `json:"ok"`
	Region string  `json:"region,omitempty"` // the bucket's region, found or confirmed
	Checks []Check `json:"checks"`
}

// Part is one confirmed part of a multipart upload.
type Part struct {
	Number int32  `json:"number"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

// Storage opens clients for customers' S3 destinations. Implemented by the s3
// package; it refuses endpoints that the operator has not allowed, before any
// connection is made.
type Storage interface {
	// Client returns a client for dest reached with key. dest.Region must be set.
	Client(ctx context.Context, dest Destination, key AccessKey) (StorageClient, error)
	// Check proves that key can do what recordings need on dest: HeadBucket
	// (finding the region when dest.Region is empty), PutObject and
	// DeleteObject of a probe, CreateMultipartUpload and AbortMultipartUpload.
	// Failures of the customer's making are in the report, not in err.
	Check(ctx context.Context, dest Destination, key AccessKey) (*CheckReport, error)
}

// StorageClient does the S3 operations of one recording with one key. Errors
// from S3 are *StorageError.
type StorageClient interface {
	CreateMultipartUpload(ctx context.Context, key, contentType string, metadata map[string]string) (uploadID string, err error)
	// UploadPart sends size bytes of body; body is seekable so that retries resend identical bytes.
	UploadPart(ctx context.Context, key, uploadID string, number int32, body io.ReadSeeker, size int64) (etag string, err error)
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipartUpload never replaces an object that already has
	// the key, where the server honours If-None-Match: then it fails with a
	// *StorageError of Code "PreconditionFailed".
	CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []Part) error
	AbortMultipartUpload(ctx context.Context, key, uploadID string) error
	PutObject(ctx context.Context, key, contentType string, metadata map[string]string, body io.ReadSeeker, size int64) error
	HeadObject(ctx context.Context, key string) (size int64, metadata map[string]string, err error)
	// ObjectExists reports whether key names an object. It says false only
	// when S3 answers 404: any other failure, 403 included, is an error, so
	// that a name is never taken as free on a guess.
	ObjectExists(ctx context.Context, key string) (bool, error)
	// ReplaceMetadata sets the object's user metadata (a copy onto itself,
	// up to 5 GiB).
	ReplaceMetadata(ctx context.Context, key, contentType string, metadata map[string]string) error
	DeleteObject(ctx context.Context, key string) error
	// PresignGet returns a URL that GETs key, signed with the client's
	// access key and valid for validFor. It makes no request: whether the
	// key can read the object is for the caller to find out.
	PresignGet(ctx context.Context, key string, validFor time.Duration) (string, error)
}

// Now is the clock, replaceable in tests.
var Now = func() time.Time { return time.Now().UTC() }
