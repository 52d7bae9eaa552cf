package s3test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
)

// Backend is an S3 server that end-to-end tests run on, whichever it is:
// versitygw (*Server) or SeaweedFS (*SeaweedFS). It has what a recording,
// a rotation and the storage checks need: a bucket with a key, more keys
// with the same access, keys deleted, objects read back, and the server
// stopped and started. How each server does it differs (versitygw: accounts
// that own buckets, and bucket policies; SeaweedFS: identities whose
// actions name buckets), not what the test sees.
type Backend interface {
	// Name names the server in subtest names: "versitygw", "seaweedfs".
	Name() string
	// EndpointURL is the S3 endpoint, http://127.0.0.1:PORT.
	EndpointURL() string
	// EndpointHost is the endpoint's host:port, as an allowlist names it.
	EndpointHost() string
	// AdminKey may do anything on the server.
	AdminKey() recsink.AccessKey

	// CreateBucketAndKey creates a bucket with a random valid name and a
	// key that may do everything recordings need in it, and nothing in
	// other buckets.
	CreateBucketAndKey(tb testing.TB) (string, recsink.AccessKey)
	// CreateUserFor creates a key with the same access as
	// CreateBucketAndKey's on each of buckets: the "new key with identical
	// permissions" of a rotation. Name at least one bucket: with none,
	// SeaweedFS gives every bucket and versitygw none.
	CreateUserFor(tb testing.TB, buckets ...string) recsink.AccessKey
	// DeleteUser deletes the key; it returns once the server refuses it.
	DeleteUser(tb testing.TB, keyID string)

	// S3Client returns a plain SDK client signing with key.
	S3Client(tb testing.TB, key recsink.AccessKey) *s3.Client
	// GetObject returns the object's content, read with the admin key.
	GetObject(tb testing.TB, bucket, key string) []byte
	// ListObjects returns the keys under prefix, read with the admin key.
	ListObjects(tb testing.TB, bucket, prefix string) []string

	// Stop stops the server, to see S3 down; data and keys stay for Start.
	Stop(tb testing.TB)
	// Start starts a stopped server again on the same port and data.
	Start(tb testing.TB)
}

var (
	_ Backend = (*Server)(nil)
	_ Backend = (*SeaweedFS)(nil)
)

// Name returns "versitygw".
func (s *Server) Name() string { return "versitygw" }

// EndpointURL returns s.Endpoint.
func (s *Server) EndpointURL() string { return s.Endpoint }

// EndpointHost returns s.HostPort.
func (s *Server) EndpointHost() string { return s.HostPort }

// AdminKey returns the root account's key.
func (s *Server) AdminKey() recsink.AccessKey { return s.Root }

// CreateBucketAndKey creates a "user" account and a bucket it owns.
func (s *Server) CreateBucketAndKey(tb testing.TB) (string, recsink.AccessKey) {
	tb.Helper()
	k := s.CreateUser(tb, "user")
	return s.CreateBucket(tb, k.ID), k
}

// CreateUserFor creates a "user" account and names it, with the bucket's
// owner and the keys given access before, in each bucket's policy, which
// replaces any policy put there with PutBucketPolicy.
func (s *Server) CreateUserFor(tb testing.TB, buckets ...string) recsink.AccessKey {
	tb.Helper()
	k := s.CreateUser(tb, "user")
	for _, b := range buckets {
		s.grantMu.Lock()
		if s.grants == nil {
			s.grants = make(map[string][]string)
		}
		s.grants[b] = append(s.grants[b], k.ID)
		ids := append([]string(nil), s.grants[b]...)
		// The root may put any bucket's policy; held under grantMu so that
		// two grants at once on a bucket do not undo each other.
		s.PutBucketPolicy(tb, b, s.Root, ids...)
		s.grantMu.Unlock()
	}
	return k
}

// Name returns "seaweedfs".
func (s *SeaweedFS) Name() string { return "seaweedfs" }

// EndpointURL returns s.Endpoint.
func (s *SeaweedFS) EndpointURL() string { return s.Endpoint }

// EndpointHost returns s.HostPort.
func (s *SeaweedFS) EndpointHost() string { return s.HostPort }

// AdminKey returns the admin identity's key.
func (s *SeaweedFS) AdminKey() recsink.AccessKey { return s.Admin }

// CreateBucketAndKey creates a bucket with the admin key and an identity
// that may read, write, list and tag in it only.
func (s *SeaweedFS) CreateBucketAndKey(tb testing.TB) (string, recsink.AccessKey) {
	tb.Helper()
	b := s.CreateBucket(tb, "")
	return b, s.CreateUserFor(tb, b)
}
