package main_test

import (
	"strings"
	"testing"

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
	onEachS3With(t, func(tb testing.TB) s3test.Backend { return s3test.SharedSeaweedFS(tb) }, f)
}

// onEachS3Stoppable is onEachS3 for a test that stops and starts the
// server: on SeaweedFS it starts one of its own.
func onEachS3Stoppable(t *testing.T, f func(t *testing.T, srv s3test.Backend)) {
	t.Helper()
	onEachS3With(t, func(tb testing.TB) s3test.Backend { return s3test.MustStartSeaweedFS(tb, s3test.SeaweedFSOptions{}) }, f)
}

// onEachS3With runs f as a parallel subtest on a versitygw of its own and
// on the SeaweedFS seaweed returns.
func onEachS3With(t *testing.T, seaweed func(testing.TB) s3test.Backend, f func(t *testing.T, srv s3test.Backend)) {
	t.Helper()
	t.Run("versitygw", func(t *testing.T) {
		t.Parallel()
		f(t, s3test.MustStart(t))
	})
	t.Run("seaweedfs", func(t *testing.T) {
		t.Parallel()
		f(t, seaweed(t))
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
	e, meeting := mustS3RecordingEnv(tb, srv, withWebhooks(rcv, opts)...)
	mustSetWebhook(tb, e.Org, rcv)
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
