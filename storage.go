package recsink

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"
)

// AccessKey is a customer's S3 access key pair in plain text. It lives only in
// memory; String and LogValue never print the secret.
type AccessKey struct {
	ID     string
	Secret string
	// Subject is, for a role (ID is an IAM role ARN, no Secret), the subject
	// of the identity token recsink presents to STS: OrganizationSubject.
	Subject string
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
	// Reason classifies a refused AssumeRoleWithWebIdentity (Op
	// OpAssumeRole): RoleTrustDenied, RoleAudienceMismatch, ...
	Reason string
}

// Error implements error. It carries no secret: the SDK's errors do not either.
func (e *StorageError) Error() string {
	return fmt.Sprintf("s3: %s: %s (status %d): %v", e.Op, e.Code, e.StatusCode, e.Err)
}

// Unwrap returns the underlying error.
func (e *StorageError) Unwrap() error { return e.Err }

// Codes of a StorageError whose endpoint presented a TLS certificate that
// this server does not accept. They are recsink's, not S3's: the handshake
// failed before any request was sent. The endpoint's owner or the operator
// must change something, so they are the customer's failures, not retried
// as an outage.
const (
	// CodeCertificateNotTrusted: the certificate chains to no authority this
	// server trusts (self-signed, a private CA not given with --s3-ca-file),
	// or its chain is invalid.
	CodeCertificateNotTrusted = "CertificateNotTrusted"
	// CodeCertificateNameMismatch: the certificate is for other host names
	// than the endpoint's.
	CodeCertificateNameMismatch = "CertificateNameMismatch"
	// CodeCertificateExpired: the certificate, or one of its chain, has
	// expired or is not valid yet, on this server's clock.
	CodeCertificateExpired = "CertificateExpired"
	// CodeEndpointNotTLS: an https endpoint answered the TLS handshake in
	// plain HTTP.
	CodeEndpointNotTLS = "EndpointNotTLS"
)

// CertificateRefused reports whether the failure is the endpoint's TLS:
// its certificate refused by this server, or no TLS where https was given.
func (e *StorageError) CertificateRefused() bool {
	switch e.Code {
	case CodeCertificateNotTrusted, CodeCertificateNameMismatch, CodeCertificateExpired, CodeEndpointNotTLS:
		return true
	}
	return false
}

// KeyRefused reports whether S3 refused the access key itself: the errors
// after which another key may work where this one does not.
func (e *StorageError) KeyRefused() bool {
	if e.Reason == RoleSessionExpired {
		return false // the session, not the role: assumed again
	}
	if e.Op == OpAssumeRole {
		// The role refused: another saved key or role may work.
		return e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != 429
	}
	switch e.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "AccessDenied", "InvalidToken", "TokenRefreshRequired":
		return true
	}
	// A HEAD request gets a bare 403 with no code.
	return e.Code == "" && e.StatusCode == 403
}

// Retryable reports whether the same request may succeed later unchanged:
// throttling, server errors and transport failures. A refused certificate
// is not one: it fails the same way until someone changes it.
func (e *StorageError) Retryable() bool {
	if e.Reason == RoleSessionExpired {
		return true
	}
	if e.CertificateRefused() {
		return false
	}
	switch e.Code {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable":
		return true
	}
	if e.ChecksumMismatch() && (e.Op == "UploadPart" || e.Op == "PutObject") {
		// The bytes changed on the way; the same bytes, sent again, pass.
		return true
	}
	return e.StatusCode == 0 || e.StatusCode >= 500 || e.StatusCode == 429
}

// ChecksumMismatch reports whether S3 refused a request because the bytes
// it received, or the object it assembled, did not match the checksum or
// the payload hash recsink sent.
func (e *StorageError) ChecksumMismatch() bool {
	switch e.Code {
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch":
		return true
	}
	return false
}

// Explain returns one plain sentence that says what went wrong and how to fix
// it, for the customer.
func (e *StorageError) Explain() string {
	if e.CertificateRefused() {
		return e.explainCertificate()
	}
	if e.Op == OpAssumeRole || e.Reason == RoleSessionExpired {
		return e.explainAssumeRole()
	}
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
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch":
		if e.Op == "CompleteMultipartUpload" {
			return "The object S3 assembled did not match the checksum of the bytes recsink sent, so S3 did not complete it: no wrong object was written."
		}
		return "The bytes S3 received did not match what recsink sent: they changed on the way, and S3 refused them; recsink sends the part again."
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

// explainCertificate returns the plain sentence for a refused certificate.
// It names what the certificate says (its host names, issuer, subject,
// validity), which the endpoint shows anyone who connects: nothing secret.
func (e *StorageError) explainCertificate() string {
	whose := "The storage endpoint's TLS certificate"
	if e.Op == OpAssumeRole {
		whose = "The TLS certificate of the security token service (STS) endpoint"
	}
	var he x509.HostnameError
	var ie x509.CertificateInvalidError
	var ue x509.UnknownAuthorityError
	var sre x509.SystemRootsError
	switch {
	case e.Code == CodeEndpointNotTLS:
		which := "storage"
		if e.Op == OpAssumeRole {
			which = "security token service (STS)"
		}
		return "The " + which + " endpoint's URL says https, but the endpoint answered in plain HTTP: use the port that serves https, or an http:// URL if the endpoint has no TLS."
	case e.Code == CodeCertificateNameMismatch:
		if !errors.As(e.Err, &he) || he.Certificate == nil {
			return whose + " is for another host name than the endpoint's. Use an endpoint URL with a host name the certificate is for, or have the certificate reissued for the endpoint's name."
		}
		names := certificateNames(he.Certificate)
		if len(names) == 0 {
			return fmt.Sprintf("%s names no host in its subject alternative names (only the legacy common name %q, which TLS clients no longer accept). Have the certificate reissued with %s as a DNS name or IP address.", whose, he.Certificate.Subject.CommonName, he.Host)
		}
		return fmt.Sprintf("%s is for another host name: it is valid for %s, not %s. Use an endpoint URL with a host name the certificate is for, or have the certificate reissued for %s.", whose, strings.Join(names, ", "), he.Host, he.Host)
	case e.Code == CodeCertificateExpired:
		if !errors.As(e.Err, &ie) || ie.Cert == nil {
			return whose + " has expired or is not valid yet, on this recsink server's clock. The endpoint's owner renews it."
		}
		if now := Now(); now.Before(ie.Cert.NotBefore) {
			return fmt.Sprintf("%s (subject %s) is not valid before %s, and this recsink server's clock says %s: check that clock, and the clock of the machine that issued the certificate.", whose, ie.Cert.Subject, ie.Cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("%s (subject %s) expired at %s, on this recsink server's clock. The endpoint's owner renews it.", whose, ie.Cert.Subject, ie.Cert.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(e.Err, &sre):
		return "This recsink server has no trusted root certificates to verify " + strings.ToLower(whose[:1]) + whose[1:] + " with: the operator installs the system's CA certificates, or gives the endpoint's certificate authority with --s3-ca-file."
	}
	why := "it is signed by an authority that this server does not know"
	fix := "If the endpoint uses a private certificate authority, the operator adds that authority's certificate with --s3-ca-file; otherwise the endpoint needs a certificate from a public authority."
	switch {
	case errors.As(e.Err, &ue) && ue.Cert != nil && bytes.Equal(ue.Cert.RawIssuer, ue.Cert.RawSubject):
		why = fmt.Sprintf("it is self-signed (subject %s)", ue.Cert.Subject)
		fix = "The operator trusts it by adding it with --s3-ca-file, or the endpoint gets a certificate from a public certificate authority."
	case errors.As(e.Err, &ue) && ue.Cert != nil:
		why = fmt.Sprintf("it is signed by an unknown authority (issuer %s)", ue.Cert.Issuer)
	case errors.As(e.Err, &ie):
		why = "its certificate chain is not valid (" + ie.Error() + ")"
		fix = "The endpoint's owner fixes its certificate."
	}
	return fmt.Sprintf("%s is not trusted by this recsink server: %s. %s", whose, why, fix)
}

// maxCertificateNames bounds the host names an explanation lists: a
// certificate may hold hundreds.
const maxCertificateNames = 8

// certificateNames returns the host names and IP addresses that cert is
// valid for, at most maxCertificateNames and a count of the rest.
func certificateNames(cert *x509.Certificate) []string {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) > maxCertificateNames {
		names = append(names[:maxCertificateNames], fmt.Sprintf("%d more", len(names)-maxCertificateNames))
	}
	return names
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
	case OpAssumeRole:
		return "sts:AssumeRoleWithWebIdentity"
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
	// Transient: it failed because the endpoint (or its STS) did not
	// answer, which says nothing about the key; the key health watch does
	// not report a key as failing for it.
	Transient bool `json:"-"`
}

// CheckReport is the result of checking a destination and key.
type CheckReport struct {
	OK     bool   `json:"ok"`
	Region string `json:"region,omitempty"` // the bucket's region, found or confirmed
	// Checksum is the full-object checksum that the endpoint took on the
	// probe multipart upload, as recordings will ask for it; "" for none.
	Checksum ChecksumAlgorithm `json:"checksum,omitempty"`
	Checks   []Check           `json:"checks"`
	// Parity is, on a save for a scope with running recordings, whether the
	// new key can take them over; nil when none runs. The API shows it
	// beside the report.
	Parity *Parity `json:"-"`
}

// Part is one confirmed part of a multipart upload.
type Part struct {
	Number int32  `json:"number"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
	// Checksum is the part's CRC in its upload's algorithm, in S3's form
	// (base64 of the big-endian CRC); "" in an upload without checksums.
	// S3 verified it when it took the part, and the object's full checksum
	// is combined from the parts' checksums at completion.
	Checksum string `json:"checksum,omitempty"`
}

// ChecksumAlgorithm names a CRC that S3 verifies as the full-object
// checksum of a multipart upload (x-amz-checksum-type FULL_OBJECT).
type ChecksumAlgorithm string

// The full-object checksums S3 defines. ChecksumNone is an upload without
// any: the endpoint takes none, or the caller asked for none.
const (
	ChecksumNone      ChecksumAlgorithm = ""
	ChecksumCRC64NVME ChecksumAlgorithm = "CRC64NVME"
	ChecksumCRC32C    ChecksumAlgorithm = "CRC32C"
	ChecksumCRC32     ChecksumAlgorithm = "CRC32"
)

// FullObjectChecksums is the order in which recordings ask for a
// full-object checksum: CRC64NVME, S3's default for every object since
// 2025, then the two CRC32s that S3-compatible servers often have.
var FullObjectChecksums = []ChecksumAlgorithm{ChecksumCRC64NVME, ChecksumCRC32C, ChecksumCRC32}

// Upload is a multipart upload: S3's upload ID and the algorithm of the
// full-object checksum that S3 verifies when it is completed. Both must be
// kept for the upload's whole life: every part and the completion need
// the algorithm, whichever key or process continues the upload.
type Upload struct {
	ID       string            `json:"id"`
	Checksum ChecksumAlgorithm `json:"checksum,omitempty"`
}

// Checksum is an object's checksum as S3 reports it, the same as
// `aws s3api head-object --checksum-mode ENABLED` prints.
type Checksum struct {
	Algorithm ChecksumAlgorithm `json:"algorithm"`
	// Type is "FULL_OBJECT" (a CRC of the whole object's bytes) or
	// "COMPOSITE" (a checksum of the parts' checksums, "value-N").
	Type  string `json:"type"`
	Value string `json:"value"` // base64 of the big-endian CRC
}

// IsZero reports whether S3 reported no checksum.
func (c Checksum) IsZero() bool { return c.Value == "" }

// String returns "ALGORITHM:value", or "" when there is none.
func (c Checksum) String() string {
	if c.IsZero() {
		return ""
	}
	return string(c.Algorithm) + ":" + c.Value
}

// PartChecksummer is a part's body that knows its CRC already, taken as
// its bytes were received (CRCs combine, so a spool can keep one per part
// at the cost of the CRC alone). UploadPart then sends that CRC and S3
// checks the bytes read back from disk against the bytes received: end to
// end, and over TLS without reading the part an extra time for its CRC.
type PartChecksummer interface {
	// PartChecksum returns the body's CRC in alg, in S3's form, and false
	// when it does not have one in alg.
	PartChecksum(alg ChecksumAlgorithm) (string, bool)
}

// ObjectInfo is what HeadObject tells about an object.
type ObjectInfo struct {
	Size     int64
	Metadata map[string]string // S3 returns the keys in lower case
	Checksum Checksum          // zero when the object has none S3 reports
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
	// CreateMultipartUpload starts a multipart upload of key with the first
	// full-object checksum of checksums that the endpoint accepts (try
	// FullObjectChecksums), or without one when it accepts none of them or
	// none is asked for. The returned Upload says which.
	CreateMultipartUpload(ctx context.Context, key, contentType string, metadata map[string]string, checksums ...ChecksumAlgorithm) (Upload, error)
	// UploadPart sends size bytes of body as part number of upload, in any
	// order of numbers; sending a number again replaces that part. body is
	// seekable so that retries resend identical bytes. When the upload has a
	// checksum, the part carries its CRC, computed in the same pass as the
	// request's signature, and S3 refuses the part (BadDigest) when the bytes
	// it received do not match. The returned Part has Number, Size, ETag and
	// Checksum; its Offset is the caller's.
	UploadPart(ctx context.Context, key string, upload Upload, number int32, body io.ReadSeeker, size int64) (Part, error)
	// ListParts returns the parts S3 holds, with the checksums S3 verified.
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipartUpload assembles the object from parts, given in any
	// order. When the upload has a checksum, S3 verifies the object against
	// checksum (S3's base64 form), or, when checksum is "", against the
	// combination of the parts' checksums and sizes (a part without one
	// gets S3's, from ListParts): a mismatch is a *StorageError of Code
	// "BadDigest" and no object. It returns the object's checksum as S3
	// reports it, zero when S3 reports none (a server without checksums).
	// It never replaces an object that already has the key, where the
	// server honours If-None-Match: then it fails with a *StorageError of
	// Code "PreconditionFailed".
	CompleteMultipartUpload(ctx context.Context, key string, upload Upload, parts []Part, checksum string) (Checksum, error)
	AbortMultipartUpload(ctx context.Context, key, uploadID string) error
	PutObject(ctx context.Context, key, contentType string, metadata map[string]string, body io.ReadSeeker, size int64) error
	HeadObject(ctx context.Context, key string) (size int64, metadata map[string]string, err error)
	// StatObject is HeadObject with the object's checksum (checksum mode
	// enabled), as head-object --checksum-mode ENABLED shows it.
	StatObject(ctx context.Context, key string) (ObjectInfo, error)
	// ObjectExists reports whether key names an object. It says false only
	// when S3 answers 404: any other failure, 403 included, is an error, so
	// that a name is never taken as free on a guess.
	ObjectExists(ctx context.Context, key string) (bool, error)
	DeleteObject(ctx context.Context, key string) error
	// PresignGet returns a URL that GETs key, signed with the client's
	// access key and valid for validFor. It makes no request: whether the
	// key can read the object is for the caller to find out.
	PresignGet(ctx context.Context, key string, validFor time.Duration) (string, error)
}

// Now is the clock, replaceable in tests.
var Now = func() time.Time { return time.Now().UTC() }

// Parity says whether a key or role being saved for a scope can take over
// the scope's running recordings: continue their multipart uploads and
// write under their prefix, as the spec's "identical permissions" asks.
// It warns; it does not refuse the save.
type Parity struct {
	RunningRecordings int    `json:"runningRecordings"`
	OK                bool   `json:"ok"`
	Message           string `json:"message"`
	// Check is the operation the new key was refused ("ListParts",
	// "PutObject", ...), Permission the IAM permission it lacks and Code
	// S3's error code; empty when OK.
	Check      string `json:"check,omitempty"`
	Permission string `json:"permission,omitempty"`
	Code       string `json:"code,omitempty"`
}
