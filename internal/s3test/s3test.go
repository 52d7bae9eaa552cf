// Package s3test runs real S3 servers for tests, on free loopback ports and
// a temporary directory: versitygw (MustStart, one per call, with helpers
// that create users, keys and buckets through its admin API; MustStartTLS
// serves it over https with a self-signed certificate) and SeaweedFS
// (MustStartSeaweedFS, or SharedSeaweedFS for one per test binary; with an
// STS when asked). Both satisfy Backend, so that an end-to-end test runs on
// each. See /work/shared/s3test/README.md and seaweedfs.md for the servers'
// behaviour.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/recsink/recsink/internal/freeport"

	"github.com/recsink/recsink"
)

// Environment variables that steer MustStart.
const (
	// EnvBinary names the versitygw binary to run, overriding the search.
	EnvBinary = "RECSINK_VERSITYGW"
	// EnvRequireTools set to 1 turns a missing binary into a test failure
	// instead of a skip; CI sets it.
	EnvRequireTools = "RECSINK_REQUIRE_TOOLS"
)

// Region is the region the server answers to.
const Region = "us-east-1"

const (
	startTimeout = 20 * time.Second // until a signed ListBuckets succeeds
	stopTimeout  = 5 * time.Second  // after SIGTERM, before SIGKILL
)

// Server is a running versitygw with its own data directory and root key.
type Server struct {
	// Endpoint is the S3 endpoint URL: http://127.0.0.1:PORT, or
	// https://127.0.0.1:PORT when started by MustStartTLS.
	Endpoint string
	// HostPort is the endpoint's host:port, as an allowlist names it.
	HostPort string
	// AdminEndpoint is the URL of the admin API: http://127.0.0.1:PORT
	// (https with MustStartTLS).
	AdminEndpoint string
	// Root is the root account's key, which may do anything.
	Root recsink.AccessKey
	// CA holds the self-signed certificate a server of MustStartTLS serves,
	// which a client must trust to reach it; CAPEM is the same in PEM, and
	// CertFile and KeyFile are the certificate and key files versitygw
	// reads (for a proxy that serves the same name). Nil and empty on a
	// plain HTTP server.
	CA                *x509.CertPool
	CAPEM             []byte
	CertFile, KeyFile string

	bin, dir  string
	http      *http.Client
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has been waited for
	adminPort string

	grantMu sync.Mutex
	grants  map[string][]string // bucket → key IDs in its policy (CreateBucket, CreateUserFor)
}

// MustStart starts a versitygw for tb and stops it when tb ends. It skips tb
// when the binary is absent, or fails it when RECSINK_REQUIRE_TOOLS=1.
func MustStart(tb testing.TB) *Server {
	tb.Helper()
	return mustStart(tb, false)
}

// mustStart is MustStart, over TLS when withTLS is set (MustStartTLS).
func mustStart(tb testing.TB, withTLS bool) *Server {
	tb.Helper()
	bin := findBinary()
	if bin == "" {
		msg := "s3test: versitygw not found (set " + EnvBinary + ", or run scripts/install-versitygw.sh to install it into ~/.cache/recsink-tools)"
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	dir := tb.TempDir()
	for _, sub := range []string{"data", "iam"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	s := &Server{
		bin:  bin,
		dir:  dir,
		Root: recsink.AccessKey{ID: "ROOT" + randomHex(8), Secret: randomHex(20)},
		http: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
	}
	if withTLS {
		s.setupTLS(tb)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			// A slow stop on a loaded machine is not the test's failure.
			tb.Logf("s3test: stop versitygw: %v", err)
		}
		s.http.CloseIdleConnections()
	})

	// A free port found by listening on :0 may be taken again before
	// versitygw binds it; then it exits and we try other ports.
	var lastErr error
	for range 5 {
		port, adminPort, err := freePorts()
		if err != nil {
			tb.Fatalf("s3test: find free ports: %v", err)
		}
		s.HostPort = net.JoinHostPort("127.0.0.1", port)
		s.Endpoint = s.scheme() + "://" + s.HostPort
		s.adminPort = adminPort
		s.AdminEndpoint = s.scheme() + "://" + net.JoinHostPort("127.0.0.1", adminPort)
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	tb.Fatalf("s3test: start versitygw: %v", lastErr)
	return nil
}

// Stop stops the server, so that tests can see S3 being down. The data and
// users stay for Start.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop(); err != nil {
		tb.Fatalf("s3test: stop versitygw: %v", err)
	}
}

// CPUTime returns the CPU time (user and system) that the running
// versitygw has used since it started, for benchmarks that print the S3
// server's share of the machine beside the client's; false when it is not
// running or the system does not tell (outside Linux).
func (s *Server) CPUTime() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0, false
	}
	return processCPU(s.cmd.Process.Pid)
}

// Start starts a stopped server again on the same ports and data.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("s3test: restart versitygw: %v", err)
	}
}

// start launches versitygw and waits until it answers a signed ListBuckets.
func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("already running")
	}
	logPath := filepath.Join(s.dir, "versitygw.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	args := append([]string{
		"--port", s.HostPort,
		"--admin-port", net.JoinHostPort("127.0.0.1", s.adminPort),
		"--access", s.Root.ID, "--secret", s.Root.Secret,
		"--iam-dir", filepath.Join(s.dir, "iam"), "--iam-cache-disable", "--quiet",
	}, s.tlsArgs()...)
	cmd := exec.Command(s.bin, append(args, "posix", filepath.Join(s.dir, "data"))...)
	// The root secret travels in argv, readable by local users: test only.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return err
	}
	logf.Close() // the child holds its own descriptor
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := s.s3Client(s.Root)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListBuckets(actx, &s3.ListBucketsInput{})
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("versitygw exited (%v) on %s: %s", cmd.ProcessState, s.HostPort, tail(logPath))
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("versitygw on %s not ready after %v: %v; log: %s", s.HostPort, startTimeout, err, tail(logPath))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, waits, then kills. Stopping a stopped server is a no-op.
func (s *Server) stop() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || !terminate(cmd, exited, stopTimeout) {
		return nil
	}
	return fmt.Errorf("versitygw did not stop within %v of SIGTERM; killed", stopTimeout)
}

// terminate stops cmd, whose exited is closed once it has been waited for:
// SIGTERM, then SIGKILL if it has not exited within timeout. It returns
// once cmd has exited, and reports whether it had to be killed.
func terminate(cmd *exec.Cmd, exited <-chan struct{}, timeout time.Duration) (killed bool) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		cmd.Process.Kill()
	}
	select {
	case <-exited:
		return false
	case <-time.After(timeout):
	}
	cmd.Process.Kill()
	<-exited
	return true
}

// CreateUser creates an account with role ("user", "userplus" or "admin")
// and a random key, and returns the key.
func (s *Server) CreateUser(tb testing.TB, role string) recsink.AccessKey {
	tb.Helper()
	k := recsink.AccessKey{ID: "AKTEST" + strings.ToUpper(randomHex(8)), Secret: randomHex(20)}
	s.CreateUserWithKey(tb, role, k)
	return k
}

// CreateUserWithKey creates an account with role and the given key: after
// DeleteUser, it brings the same key back to life.
func (s *Server) CreateUserWithKey(tb testing.TB, role string, k recsink.AccessKey) {
	tb.Helper()
	body, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"Account"`
		Access  string   `xml:"Access"`
		Secret  string   `xml:"Secret"`
		Role    string   `xml:"Role"`
	}{Access: k.ID, Secret: k.Secret, Role: role})
	if err != nil {
		tb.Fatal(err)
	}
	s.admin(tb, "/create-user", nil, body)
}

// DeleteUser deletes the account of keyID; its key stops working at once.
func (s *Server) DeleteUser(tb testing.TB, keyID string) {
	tb.Helper()
	s.admin(tb, "/delete-user?access="+url.QueryEscape(keyID), nil, nil)
}

// UpdateUserSecret gives the account of keyID a new random secret and
// returns it; the old secret stops working at once.
func (s *Server) UpdateUserSecret(tb testing.TB, keyID string) string {
	tb.Helper()
	secret := randomHex(20)
	body, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"MutableProps"`
		Secret  string   `xml:"Secret"`
	}{Secret: secret})
	if err != nil {
		tb.Fatal(err)
	}
	s.admin(tb, "/update-user?access="+url.QueryEscape(keyID), nil, body)
	return secret
}

// CreateBucket creates a bucket with a random valid name owned by the
// account of ownerKeyID and returns its name.
func (s *Server) CreateBucket(tb testing.TB, ownerKeyID string) string {
	tb.Helper()
	name := "recsink-test-" + randomHex(8)
	s.admin(tb, "/"+name+"/create", map[string]string{"x-vgw-owner": ownerKeyID}, nil)
	s.grantMu.Lock()
	if s.grants == nil {
		s.grants = make(map[string][]string)
	}
	s.grants[name] = []string{ownerKeyID}
	s.grantMu.Unlock()
	return name
}

// PutBucketPolicy lets the listed keys do anything on bucket, applied by
// the bucket's owner: the way to give two accounts the same permissions.
func (s *Server) PutBucketPolicy(tb testing.TB, bucket string, owner recsink.AccessKey, keyIDs ...string) {
	tb.Helper()
	policy, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": keyIDs},
			"Action":    []string{"s3:*"},
			"Resource":  []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
		}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	_, err = s.S3Client(tb, owner).PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(string(policy)),
	})
	if err != nil {
		tb.Fatalf("s3test: put bucket policy on %s: %v", bucket, err)
	}
}

// S3Client returns a plain SDK client reaching the server with key, for
// setting up and asserting on buckets.
func (s *Server) S3Client(tb testing.TB, key recsink.AccessKey) *s3.Client {
	tb.Helper()
	return s.s3Client(key)
}

func (s *Server) s3Client(key recsink.AccessKey) *s3.Client {
	return newS3Client(s.Endpoint, s.http, key)
}

// GetObject returns the content of key in bucket, read with the root key.
func (s *Server) GetObject(tb testing.TB, bucket, key string) []byte {
	tb.Helper()
	return getObject(tb, s.s3Client(s.Root), bucket, key)
}

// ListObjects returns the keys in bucket under prefix, read with the root key.
func (s *Server) ListObjects(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	return listObjects(tb, s.s3Client(s.Root), bucket, prefix)
}

// newS3Client returns a plain SDK client of the server at endpoint with key.
func newS3Client(endpoint string, hc *http.Client, key recsink.AccessKey) *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""),
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

// getObject returns the content of key in bucket, read with c.
func getObject(tb testing.TB, c *s3.Client, bucket, key string) []byte {
	tb.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		tb.Fatalf("s3test: get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		tb.Fatalf("s3test: read %s/%s: %v", bucket, key, err)
	}
	return b
}

// listObjects returns the keys in bucket under prefix, listed with c.
func listObjects(tb testing.TB, c *s3.Client, bucket, prefix string) []string {
	tb.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			tb.Fatalf("s3test: list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// admin sends a PATCH to the admin API, signed with the root key as the
// admin API requires, and fails tb unless it succeeds.
func (s *Server) admin(tb testing.TB, pathQuery string, header map[string]string, body []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, s.AdminEndpoint+pathQuery, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: s.Root.ID, SecretAccessKey: s.Root.Secret}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", Region, time.Now()); err != nil {
		tb.Fatalf("s3test: sign admin request: %v", err)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		tb.Fatalf("s3test: admin %s: %v", pathQuery, err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		tb.Fatalf("s3test: admin %s: %s: %s", pathQuery, resp.Status, respBody)
	}
}

// findBinary returns the versitygw to run, or "".
func findBinary() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	tools := os.Getenv("RECSINK_TOOLS")
	if tools == "" {
		if home, err := os.UserHomeDir(); err == nil {
			tools = filepath.Join(home, ".cache", "recsink-tools")
		}
	}
	if tools != "" {
		p := filepath.Join(tools, "versitygw-v1.8.0", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

// freePorts returns two free loopback ports below the ephemeral range, so
// that a restart finds them still free.
func freePorts() (string, string, error) {
	base, err := freeport.Consecutive(2)
	if err != nil {
		return "", "", err
	}
	return strconv.Itoa(base), strconv.Itoa(base + 1), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tail returns the end of the server's log, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// ProcessCPU returns the CPU time (user and system) that the process pid
// has used, or false where it cannot be read (other than Linux): for
// benchmarks that run a helper process beside the server.
func ProcessCPU(pid int) (time.Duration, bool) { return processCPU(pid) }
