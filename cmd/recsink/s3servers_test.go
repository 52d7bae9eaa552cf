package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// onEachS3 runs f as a parallel subtest on each S3 server recsink is tested
// against: "versitygw", a server of its own (under 0.3 s to start), and
// "seaweedfs", the SeaweedFS shared by the package's tests (about 4 s to
// start, once), on which f owns its buckets and keys and must not stop the
// server. The package cannot have a TestMain func (TestMain is the type of
// a running recsink), so the shared server is not stopped by StopShared:
// the kernel kills it when the test binary exits, and the next run removes
// its data folder.
func onEachS3(t *testing.T, f func(t *testing.T, srv s3test.Backend)) {
	t.Helper()
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStart(t))
	})
	t.Run("seaweedfs", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.SharedSeaweedFS(t))
	})
}

// onEachS3Stoppable is onEachS3 for a test that stops and starts the
// server: on SeaweedFS it starts one of its own.
func onEachS3Stoppable(t *testing.T, f func(t *testing.T, srv s3test.Backend)) {
	t.Helper()
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStart(t))
	})
	t.Run("seaweedfs", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStartSeaweedFS(t, s3test.SeaweedFSOptions{}))
	})
}

// S3Env is Env on any S3 server: recsink allowing the server's endpoint,
// an organization, and a bucket with a key that may do what recordings
// need in it.
type S3Env struct {
	S3     s3test.Backend
	Main   *TestMain
	Org    *Client
	Key    recsink.AccessKey
	Bucket string
}

// MustS3Env sets up an S3Env on srv; opts adjust recsink's configuration.
func MustS3Env(tb testing.TB, srv s3test.Backend, opts ...func(*main.Config)) *S3Env {
	tb.Helper()
	m := &TestMain{Logs: &syncBuffer{}}
	if v, ok := srv.(*s3test.Server); ok {
		m.S3 = v
	}
	cfg := main.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = tb.TempDir()
	cfg.AllowEndpoints = []string{srv.EndpointHost()}
	cfg.LogLevel = "debug"
	cfg.APIRate = 0
	for _, o := range opts {
		o(&cfg)
	}
	m.start(tb, cfg)
	tb.Cleanup(func() {
		m.Close()
		if tb.Failed() {
			logFailure(tb, m.Logs.String())
		}
	})
	e := &S3Env{S3: srv, Main: m}
	e.Org = m.MustCreateOrg(tb)
	e.Bucket, e.Key = srv.CreateBucketAndKey(tb)
	return e
}

// mustS3RecordingEnv is an S3Env with the organization's storage saved
// (prefix "recordings") and a meeting to record.
func mustS3RecordingEnv(tb testing.TB, srv s3test.Backend, opts ...func(*main.Config)) (*S3Env, string) {
	tb.Helper()
	e := MustS3Env(tb, srv, opts...)
	e.Org.MustDo(tb, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
	return e, mustMeeting(tb, e.Org)
}

// mustS3WebhookEnv is mustS3RecordingEnv whose organization sends its
// webhooks to a real receiver.
func mustS3WebhookEnv(tb testing.TB, srv s3test.Backend, opts ...func(*main.Config)) (*S3Env, string, *Receiver) {
	tb.Helper()
	rcv := NewReceiver(tb)
	opts = append(opts, func(c *main.Config) {
		c.AllowEndpoints = append(c.AllowEndpoints, rcv.HostPort())
		c.WebhookMinBackoff = 50 * time.Millisecond
	})
	e, meeting := mustS3RecordingEnv(tb, srv, opts...)
	org, err := e.Main.Store.FindOrganizationByAPIKeyHash(context.Background(), recsink.HashToken(e.Org.Key))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.Main.Webhooks.SetEndpoint(context.Background(), org.ID, rcv.URL+"/hooks", nil); err != nil {
		tb.Fatal(err)
	}
	return e, meeting, rcv
}

// Storage returns a storage body for PUT /v1/storage.
func (e *S3Env) Storage(bucket string, key recsink.AccessKey) map[string]any {
	return map[string]any{
		"bucket":          bucket,
		"endpoint":        e.S3.EndpointURL(),
		"region":          s3test.Region,
		"forcePathStyle":  true,
		"accessKeyId":     key.ID,
		"accessKeySecret": key.Secret,
	}
}

// checkObjectOn fails unless the object is byte-identical to want.
func checkObjectOn(tb testing.TB, srv s3test.Backend, bucket, key string, want []byte) {
	tb.Helper()
	got := srv.GetObject(tb, bucket, key)
	if string(got) != string(want) {
		tb.Fatalf("object %s/%s on %s: %d bytes, want %d identical bytes (first difference at %d)", bucket, key, srv.Name(), len(got), len(want), firstDiff(got, want))
	}
}

// headChecksumOn asks srv for the object's checksum as
// `aws s3api head-object --checksum-mode ENABLED` does, and returns it as
// "ALGORITHM:value", or "" when the server names none.
func headChecksumOn(tb testing.TB, srv s3test.Backend, key recsink.AccessKey, bucket, object string) string {
	tb.Helper()
	out, err := srv.S3Client(tb, key).HeadObject(context.Background(), &awss3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(object), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		tb.Fatalf("head-object --checksum-mode ENABLED %s: %v", object, err)
	}
	for alg, v := range map[string]*string{"CRC64NVME": out.ChecksumCRC64NVME, "CRC32C": out.ChecksumCRC32C, "CRC32": out.ChecksumCRC32} {
		if v != nil {
			return alg + ":" + *v
		}
	}
	return ""
}

// logFailure logs recsink's warnings and errors after a failed test: what
// S3 answered is there.
func logFailure(tb testing.TB, logs string) {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			if n++; n > 40 {
				tb.Log("recsink log: (more warnings and errors left out)")
				return
			}
			tb.Log("recsink log: " + line)
		}
	}
}
