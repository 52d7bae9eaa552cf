package recsink

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

// File formats a recording can be written in.
const (
	FormatMKV = "mkv"
	FormatMP4 = "mp4"
)

// Destination is where a scope's recordings go: the spec's "S3 info".
type Destination struct {
	Provider       string `json:"provider"`           // "s3"
	Bucket         string `json:"bucket"`             // bucket name only
	Prefix         string `json:"prefix,omitempty"`   // key prefix without trailing slash, may be ""
	Region         string `json:"region,omitempty"`   // "" means find it with HeadBucket
	Endpoint       string `json:"endpoint,omitempty"` // URL of an S3-compatible service; "" is AWS
	ForcePathStyle bool   `json:"forcePathStyle"`     // path-style addressing
	FileFormat     string `json:"fileFormat"`         // "mkv" or "mp4"
}

// BucketPath returns the bucket followed by "/prefix" when there is one, the
// form that users type.
func (d Destination) BucketPath() string {
	if d.Prefix == "" {
		return d.Bucket
	}
	return d.Bucket + "/" + d.Prefix
}

// ContentType returns the MIME type of the destination's file format.
func (d Destination) ContentType() string {
	if d.FileFormat == FormatMP4 {
		return "video/mp4"
	}
	return "video/x-matroska"
}

// SplitBucket splits "bucket/some/prefix" into the bucket and the prefix,
// trimming slashes around the prefix.
func SplitBucket(s string) (bucket, prefix string) {
	bucket, prefix, _ = strings.Cut(s, "/")
	return bucket, strings.Trim(prefix, "/")
}

var (
	bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$|^[a-z0-9-]{1,32}$`)
	accessKeyRE  = regexp.MustCompile(`^[A-Za-z0-9+/=._-]{3,128}$`)
	prefixBadRE  = regexp.MustCompile(`[\x00-\x1f\x7f\\{}^%` + "`" + `\]"<>\[~#|]`)
)

// ValidateBucketName checks name against S3's general purpose bucket naming
// rules and returns a message saying which rule it breaks, or "".
func ValidateBucketName(name string) string {
	switch {
	case name == "":
		return "bucket is required: the bucket name, optionally followed by /prefix"
	case strings.Contains(name, "://") || strings.Contains(name, ".amazonaws.com"):
		return "bucket must be the bucket name only, not a URL"
	case len(name) < 3 || len(name) > 63:
		return "bucket name must be 3 to 63 characters long"
	case !bucketNameRE.MatchString(name):
		return "bucket name may contain only lowercase letters, digits, dots and hyphens, and must begin and end with a letter or digit"
	case strings.Contains(name, ".."):
		return "bucket name must not contain two adjacent dots"
	case net.ParseIP(name) != nil:
		return "bucket name must not be formatted as an IP address"
	case strings.HasPrefix(name, "xn--") || strings.HasPrefix(name, "sthree-") || strings.HasPrefix(name, "amzn-s3-demo-"):
		return "bucket name must not start with xn--, sthree- or amzn-s3-demo-"
	case strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3") || strings.HasSuffix(name, ".mrap") || strings.HasSuffix(name, "--x-s3"):
		return "bucket name must not end with -s3alias, --ol-s3, .mrap or --x-s3"
	}
	return ""
}

// Validate checks the destination and fills in defaults. It returns an
// EINVALID *Error naming the field at fault.
func (d *Destination) Validate() error {
	if d.Provider == "" {
		d.Provider = "s3"
	}
	if d.Provider != "s3" {
		return FieldErrorf("provider", "provider must be \"s3\"")
	}
	if msg := ValidateBucketName(d.Bucket); msg != "" {
		return FieldErrorf("bucket", "%s", msg)
	}
	if len(d.Prefix) > 512 || prefixBadRE.MatchString(d.Prefix) || strings.Contains(d.Prefix, "//") {
		return FieldErrorf("bucket", "the prefix after the bucket name must be at most 512 characters, without control characters, double slashes or any of \\{}^%%`[]\"<>~#|")
	}
	if d.Region != "" && (len(d.Region) > 32 || !regionRE.MatchString(d.Region)) {
		return FieldErrorf("region", "region must be an S3 region name such as eu-west-1, or empty to find it from the bucket")
	}
	switch d.FileFormat {
	case "":
		d.FileFormat = FormatMKV
	case FormatMKV, FormatMP4:
	default:
		return FieldErrorf("fileFormat", "fileFormat must be \"mkv\" or \"mp4\"")
	}
	if d.Endpoint != "" {
		if _, err := EndpointHostPort(d.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

// EndpointHostPort parses a custom endpoint URL and returns its host:port,
// with the scheme's default port filled in.
func EndpointHostPort(endpoint string) (string, error) {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "", FieldErrorf("endpoint", "endpoint must be an http:// or https:// URL such as https://s3.example.com")
	}
	host, path, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(host, "@?#") || host == "" || strings.Trim(path, "/") != "" {
		return "", FieldErrorf("endpoint", "endpoint must be a scheme and host with an optional port, without user, path or query")
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, "443"
		if scheme == "http" {
			p = "80"
		}
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || h == "" {
		return "", FieldErrorf("endpoint", "endpoint port must be a number from 1 to 65535")
	}
	return net.JoinHostPort(strings.ToLower(strings.Trim(h, "[]")), p), nil
}

// ValidateAccessKey checks the shape of an access key pair.
func ValidateAccessKey(k AccessKey) error {
	if IsRoleARN(k.ID) {
		if k.Secret != "" {
			return FieldErrorf("accessKeySecret", "accessKeySecret must be empty for roleBased access")
		}
		return ValidateRoleARN(k.ID)
	}
	if k.ID == "" {
		return FieldErrorf("accessKeyId", "accessKeyId is required: the access key ID of an IAM user")
	}
	if !accessKeyRE.MatchString(k.ID) {
		return FieldErrorf("accessKeyId", "accessKeyId must be 3 to 128 letters, digits or +/=._- characters")
	}
	if k.Secret == "" {
		return FieldErrorf("accessKeySecret", "accessKeySecret is required: the secret shown once when the access key was created")
	}
	if len(k.Secret) > 256 || strings.ContainsAny(k.Secret, " \t\r\n") {
		return FieldErrorf("accessKeySecret", "accessKeySecret must be at most 256 characters without spaces or line breaks")
	}
	return nil
}
