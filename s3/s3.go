// Package s3 delivers recordings into customers' S3 buckets with
// aws-sdk-go-v2. It implements recsink.Storage and recsink.StorageClient, and
// refuses custom endpoints that the operator has not allowed.
//
// Multipart uploads carry S3's full-object checksums (checksum.go): each
// part goes up with its CRC, which S3 checks against the bytes it
// receives, and the completion with the object's CRC, combined from the
// parts' (internal/crc), which S3 checks against the object it assembles.
// An endpoint that refuses CRC64NVME is asked for CRC32C, then CRC32, then
// none, and remembered.
package s3

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
)

// DefaultMaxAttempts is the number of attempts the SDK makes for one request
// when Config.MaxAttempts is 0. Our own upload loop retries above it.
const DefaultMaxAttempts = 3

// MaxBackoff is the longest wait of the SDK's retryer between two attempts.
// A call therefore takes at most MaxAttempts attempts of
// Options.AttemptTimeout (plus dialing) and MaxAttempts-1 waits of MaxBackoff.
const MaxBackoff = 20 * time.Second

// defaultRegion is the region used for custom endpoints that do not name one,
// and the region asked first when finding a bucket's region on AWS.
const defaultRegion = "us-east-1"

// maxCachedClients bounds the client cache; the cache is emptied when full.
const maxCachedClients = 1024

// Config configures Storage.
type Config struct {
	// AllowEndpoints lists the host:port pairs of custom S3-compatible
	// endpoints the operator allows. Destinations with any other custom
	// endpoint are refused before a connection is made, and a connection to
	// any other host:port (a virtual-hosted bucket name included) must go to
	// a public address.
	AllowEndpoints []string
	// HTTPClient, when set, carries every request instead of recsink's own
	// client. It then replaces the guard that refuses connections to private
	// addresses, its transport's timeouts and RootCAs: the caller owns them.
	// The deadlines of Options still bound each attempt.
	HTTPClient *http.Client
	// RootCAs are the certificates trusted for custom endpoints' TLS, in
	// addition to the system's (an S3-compatible server whose certificate a
	// private CA signed); nil = the system's only. A CertPool cannot be
	// merged into another, so the pool replaces the system's roots for
	// every endpoint and must hold them too, or AWS is no longer trusted:
	// make it with SystemRootsWith.
	RootCAs *x509.CertPool
	// Logger receives details of failed checks; nil means slog.Default().
	Logger *slog.Logger
	// MaxAttempts is the SDK's attempts per request; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// Options bound each call; see Options.
	Options
	// Identity signs the identity tokens exchanged for the temporary
	// credentials of a role (a key whose ID is an IAM role ARN); nil refuses
	// role-based destinations.
	Identity IdentityTokens
	// RoleSessionDuration is the DurationSeconds asked of STS, and
	// RoleRefreshMargin how long before their expiry the credentials are
	// refreshed; DefaultRoleSessionDuration and DefaultRoleRefreshMargin
	// when 0.
	RoleSessionDuration time.Duration
	RoleRefreshMargin   time.Duration
}

// Storage opens clients for customers' S3 destinations. It is safe for
// concurrent use; clients and connections are shared across calls.
type Storage struct {
	allow   map[string]bool
	logger  *slog.Logger
	retryer aws.RetryerV2
	opts    Options // with defaults

	// http carries every request: it reaches the allowed custom endpoints
	// wherever they are, and refuses non-public addresses for any other
	// host:port (AWS, virtual-hosted bucket names).
	http awss3.HTTPClient

	identity     IdentityTokens
	roleDuration time.Duration
	roleMargin   time.Duration

	mu      sync.Mutex
	clients map[clientKey]*awss3.Client

	// refused remembers the checksum algorithms each endpoint refused.
	refused refusedChecksums
}

var _ recsink.Storage = (*Storage)(nil)

// New returns a Storage configured by cfg.
func New(cfg Config) *Storage {
	s := &Storage{
		allow:   make(map[string]bool),
		logger:  cfg.Logger,
		opts:    cfg.Options.withDefaults(),
		clients: make(map[clientKey]*awss3.Client),
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.identity, s.roleDuration, s.roleMargin = cfg.Identity, cfg.RoleSessionDuration, cfg.RoleRefreshMargin
	if s.roleDuration <= 0 {
		s.roleDuration = DefaultRoleSessionDuration
	}
	if s.roleMargin <= 0 {
		s.roleMargin = min(DefaultRoleRefreshMargin, s.roleDuration/2)
	}
	for _, hp := range cfg.AllowEndpoints {
		s.allow[recsink.NormalizeHostPort(hp)] = true
	}
	attempts := cfg.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	// The SDK's standard retryer takes retries from a token bucket that an
	// outage empties, after which requests fail on their first error while
	// the endpoint is recovering. litestream disables it for the same reason
	// (s3/replica_client.go); our own upload loop paces retries instead.
	s.retryer = retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.MaxBackoff = MaxBackoff
		o.RateLimiter = ratelimit.None
		o.Retryables = append([]retry.IsErrorRetryable{noRetryCertificate}, o.Retryables...)
	})
	var hc *http.Client
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	} else {
		hc = newHTTPClient(s.opts, func(hp string) bool { return s.allow[hp] }, nil, cfg.RootCAs)
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = &deadlineTransport{base: base, opts: s.opts}
	s.http = hc
	return s
}

// Client returns a client for dest reached with key. dest.Region must be set
// for AWS destinations; custom endpoints default to us-east-1.
func (s *Storage) Client(ctx context.Context, dest recsink.Destination, key recsink.AccessKey) (recsink.StorageClient, error) {
	if err := s.allowEndpoint(dest.Endpoint); err != nil {
		return nil, err
	}
	if dest.Region == "" && dest.Endpoint == "" {
		return nil, recsink.FieldErrorf("region", "region is required to open a storage client; check the destination to find it")
	}
	if err := s.allowRole(key); err != nil {
		return nil, err
	}
	secret := key.Secret
	c := &client{
		s3:       s.s3Client(dest, key, regionOrDefault(dest.Region)),
		bucket:   dest.Bucket,
		endpoint: dest.Endpoint,
		refused:  &s.refused,
		tls:      dest.Endpoint == "" || strings.HasPrefix(strings.ToLower(dest.Endpoint), "https://"),
		secret:   func() string { return secret },
	}
	if recsink.IsRoleARN(key.ID) {
		c.role, _ = c.s3.Options().Credentials.(*aws.CredentialsCache)
	}
	return c, nil
}

// allowEndpoint returns an EFORBIDDEN or EINVALID *recsink.Error when
// endpoint is a custom endpoint the operator has not allowed.
func (s *Storage) allowEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	hp, err := recsink.EndpointHostPort(endpoint)
	if err != nil {
		return err
	}
	if !s.allow[hp] {
		return &recsink.Error{
			Code:    recsink.EFORBIDDEN,
			Field:   "endpoint",
			Message: fmt.Sprintf("endpoint %s is not allowed on this recsink server; the operator allows custom endpoints with --allow-endpoint", hp),
		}
	}
	return nil
}

// allowRole refuses a role when this server signs no identity tokens.
func (s *Storage) allowRole(key recsink.AccessKey) error {
	if recsink.IsRoleARN(key.ID) && s.identity == nil {
		return recsink.FieldErrorf("authenticationType", "roleBased access is not enabled on this recsink server")
	}
	return nil
}

// clientKey identifies an SDK client. The secret is kept as a hash so that a
// rotated secret gets a new client.
type clientKey struct {
	endpoint   string
	region     string
	pathStyle  bool
	keyID      string
	secretHash [sha256.Size]byte
}

// s3Client returns a cached SDK client for dest and key in region. The
// caller has checked the endpoint against the allowlist.
//
// A role's client holds its own cache of temporary credentials, shared by
// every recording of the organization on that role and destination.
func (s *Storage) s3Client(dest recsink.Destination, key recsink.AccessKey, region string) *awss3.Client {
	k := clientKey{
		endpoint:   strings.TrimRight(dest.Endpoint, "/"),
		region:     region,
		pathStyle:  dest.ForcePathStyle,
		keyID:      key.ID + "\x00" + key.Subject,
		secretHash: sha256.Sum256([]byte(key.Secret)),
	}
	return s.cachedClient(k, dest, func() aws.CredentialsProvider {
		if recsink.IsRoleARN(key.ID) {
			return s.roleCredentials(dest, key, region)
		}
		return credentials.NewStaticCredentialsProvider(key.ID, key.Secret, "")
	})
}

// s3ClientWith returns a client for dest that signs with fixed temporary
// credentials: a check's, just obtained from STS.
func (s *Storage) s3ClientWith(dest recsink.Destination, creds aws.Credentials, region string) *awss3.Client {
	k := clientKey{
		endpoint:   strings.TrimRight(dest.Endpoint, "/"),
		region:     region,
		pathStyle:  dest.ForcePathStyle,
		keyID:      creds.AccessKeyID,
		secretHash: sha256.Sum256([]byte(creds.SecretAccessKey + "\x00" + creds.SessionToken)),
	}
	return s.cachedClient(k, dest, func() aws.CredentialsProvider {
		return credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	})
}

func (s *Storage) cachedClient(k clientKey, dest recsink.Destination, creds func() aws.CredentialsProvider) *awss3.Client {
	endpoint, region := k.endpoint, k.region
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[k]; ok {
		return c
	}
	opts := awss3.Options{
		Region:       region,
		Credentials:  creds(),
		UsePathStyle: dest.ForcePathStyle,
		Retryer:      s.retryer,
		HTTPClient:   s.http,
		// Since January 2025 the SDK adds CRC32 checksums to uploads by
		// default, sent as aws-chunked trailers, which many S3-compatible
		// servers reject or store wrongly (livekit/egress#1045). AWS needs no
		// checksum where the API does not require one, so WhenRequired works
		// on AWS and S3-compatibles alike; SigV4 still signs the payload hash.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		// Without response checksums the SDK would log a warning per GetObject.
		DisableLogOutputChecksumValidationSkipped: true,
	}
	if endpoint != "" {
		opts.BaseEndpoint = aws.String(endpoint)
	}
	c := awss3.New(opts)
	if len(s.clients) >= maxCachedClients {
		clear(s.clients)
	}
	s.clients[k] = c
	return c
}

func regionOrDefault(region string) string {
	if region == "" {
		return defaultRegion
	}
	return region
}

// newHTTPClient returns the HTTP client shared by all SDK clients. Its
// dialer refuses non-public addresses unless allowed accepts the host:port
// dialed; resolver, when set, resolves names (tests). Its transport
// verifies endpoints' certificates with rootCAs (Config.RootCAs), or the
// system's roots when nil.
func newHTTPClient(o Options, allowed func(hostPort string) bool, resolver *net.Resolver, rootCAs *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Resolver: resolver}
	t := &http.Transport{
		// Setting TLSClientConfig turns off net/http's automatic HTTP/2;
		// ForceAttemptHTTP2 below turns it back on.
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs},
		// No proxy: a proxy would resolve names itself and defeat the
		// private-address guard of the dialer.
		Proxy:                 nil,
		DialContext:           recsink.GuardDial(d, allowed),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		// Cancelling a request resets its HTTP/2 stream but keeps the
		// connection: pings close one that stopped answering altogether.
		HTTP2: &http.HTTP2Config{SendPingTimeout: o.ResponseHeaderTimeout, PingTimeout: o.ResponseHeaderTimeout},
	}
	return &http.Client{
		Transport: t,
		// S3 redirects (301 to another region) are answers to read, not to
		// follow; following them could also lead past the endpoint policy.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// SystemRootsWith returns the system's root certificates (none where the
// system has no store) with every certificate of pemCerts added: the pool
// for Config.RootCAs that trusts a private CA for custom endpoints and
// still trusts AWS. It fails when pemCerts holds no certificate.
func SystemRootsWith(pemCerts []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemCerts) {
		return nil, errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
	}
	return pool, nil
}
