package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/recsink/recsink/internal/freeport"

	"github.com/recsink/recsink"
)

// EnvSeaweedFS names the SeaweedFS `weed` binary to run, overriding the
// search; scripts/install-seaweedfs.sh prints it and .ci/run exports it.
const EnvSeaweedFS = "RECSINK_SEAWEEDFS"

// SeaweedFSVersion is the pinned version that scripts/install-seaweedfs.sh
// builds; the helper finds it in the tools cache.
const SeaweedFSVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// seaweedStartTimeout bounds a start: measured about 4 s on an idle 2-core
// machine, much more while the rest of the suite runs.
const seaweedStartTimeout = 60 * time.Second

// IAMConfig is SeaweedFS's IAM configuration (-s3.iam.config), which turns on
// its STS: the OIDC providers it trusts, the policies and the roles. Fields
// follow weed/s3api's loadIAMManagerFromConfig.
type IAMConfig struct {
	STS       IAMSTS        `json:"sts"`
	Providers []IAMProvider `json:"providers"`
	Policy    IAMPolicyCfg  `json:"policy"`
	Policies  []IAMPolicy   `json:"policies"`
	Roles     []IAMRole     `json:"roles"`
}

// IAMSTS configures the session tokens; SigningKey is required (MustStartSeaweedFS fills it).
type IAMSTS struct {
	TokenDuration    string `json:"tokenDuration"`
	MaxSessionLength string `json:"maxSessionLength"`
	Issuer           string `json:"issuer"`
	SigningKey       string `json:"signingKey"`
}

// IAMProvider is an OIDC identity provider the STS trusts; Config holds
// issuer, clientId (the expected audience) and jwksCacheTTLSeconds.
type IAMProvider struct {
	Name    string         `json:"name"`
	Type    string         `json:"type"`
	Enabled bool           `json:"enabled"`
	Config  map[string]any `json:"config"`
}

// IAMPolicyCfg is the policy engine's setting.
type IAMPolicyCfg struct {
	DefaultEffect string `json:"defaultEffect"`
	StoreType     string `json:"storeType"`
}

// IAMPolicy is a named permission policy document.
type IAMPolicy struct {
	Name     string         `json:"name"`
	Document map[string]any `json:"document"`
}

// IAMRole is a role that web identities may assume, by its trust policy.
type IAMRole struct {
	RoleName         string         `json:"roleName"`
	RoleArn          string         `json:"roleArn"`
	AttachedPolicies []string       `json:"attachedPolicies"`
	TrustPolicy      map[string]any `json:"trustPolicy"`
}

// OIDCRole returns a role named name that a web identity token of issuer may
// assume when its aud is audience and its sub is subject, with read and write
// on bucket; the provider and policy it needs are added to c. It returns the
// role's ARN.
func (c *IAMConfig) OIDCRole(name, issuer, audience, subject, bucket string) string {
	provider := "oidc-" + name
	c.Providers = append(c.Providers, IAMProvider{
		Name: provider, Type: "oidc", Enabled: true,
		Config: map[string]any{"issuer": issuer, "clientId": audience, "jwksCacheTTLSeconds": 60},
	})
	policy := "rw-" + name
	c.Policies = append(c.Policies, IAMPolicy{Name: policy, Document: map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":   "Allow",
			"Action":   []string{"s3:*"},
			"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
		}},
	}})
	arn := "arn:aws:iam::role/" + name
	c.Roles = append(c.Roles, IAMRole{
		RoleName: name, RoleArn: arn, AttachedPolicies: []string{policy},
		TrustPolicy: map[string]any{
			"Version": "2012-10-17",
			"Statement": []map[string]any{{
				"Effect":    "Allow",
				"Principal": map[string]any{"Federated": provider},
				"Action":    []string{"sts:AssumeRoleWithWebIdentity"},
				"Condition": map[string]any{"StringEquals": map[string]any{"oidc:sub": subject}},
			}},
		},
	})
	return arn
}

// SeaweedFSOptions configures MustStartSeaweedFS.
type SeaweedFSOptions struct {
	// IAM, when set, turns on the STS with this configuration. Its STS
	// fields left empty get working defaults.
	IAM *IAMConfig
}

// SeaweedFS is a running `weed mini` (master, volume, filer and S3 in one
// process) bound to loopback on free ports, with its own data directory.
// Its S3 answers only signed requests once Admin exists, which it does
// before MustStartSeaweedFS returns.
type SeaweedFS struct {
	// Endpoint is the S3 (and STS) endpoint URL: http://127.0.0.1:PORT.
	Endpoint string
	// HostPort is the endpoint's host:port, as an allowlist names it.
	HostPort string
	// Admin is an identity that may do anything, buckets included.
	Admin recsink.AccessKey

	bin, dir string
	base     int // master port; the other ports follow it
	http     *http.Client

	iam *IAMConfig // as written, signing key included; nil without STS

	shared bool // SharedSeaweedFS: never stopped by a test

	shellMu sync.Mutex // one weed shell at a time

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	users  map[string]seaweedUser // by key ID
}

// MustStartSeaweedFS starts SeaweedFS for tb and stops it when tb ends. It
// skips tb when the binary is absent, or fails it when RECSINK_REQUIRE_TOOLS=1.
// Starting one takes about 4 s (SharedSeaweedFS spares it to tests that
// neither stop it nor need an STS).
func MustStartSeaweedFS(tb testing.TB, opts SeaweedFSOptions) *SeaweedFS {
	tb.Helper()
	bin := mustFindSeaweedFS(tb)
	s := newSeaweedFS(bin, tb.TempDir())
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Logf("s3test: stop SeaweedFS: %v", err)
		}
		s.http.CloseIdleConnections()
	})
	if err := s.launch(opts); err != nil {
		tb.Fatalf("s3test: %v", err)
	}
	return s
}

// mustFindSeaweedFS returns the weed binary, or skips or fails tb.
func mustFindSeaweedFS(tb testing.TB) string {
	tb.Helper()
	bin := findSeaweedFS()
	if bin == "" {
		msg := "s3test: SeaweedFS (weed) not found (set " + EnvSeaweedFS + ", or run scripts/install-seaweedfs.sh to build it into ~/.cache/recsink-tools)"
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return bin
}

func newSeaweedFS(bin, dir string) *SeaweedFS {
	return &SeaweedFS{
		bin:   bin,
		dir:   dir,
		http:  &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second},
		users: make(map[string]seaweedUser),
		Admin: recsink.AccessKey{ID: "AKADMIN" + strings.ToUpper(randomHex(6)), Secret: randomHex(20)},
	}
}

// launch writes the IAM configuration, starts weed on free ports and
// creates the admin identity. On error the process may still run: the
// caller stops it.
func (s *SeaweedFS) launch(opts SeaweedFSOptions) error {
	if opts.IAM != nil {
		cfg := *opts.IAM
		if cfg.STS.SigningKey == "" {
			key := make([]byte, 32)
			rand.Read(key)
			cfg.STS.SigningKey = base64.StdEncoding.EncodeToString(key)
		}
		if cfg.STS.TokenDuration == "" {
			cfg.STS.TokenDuration = "1h"
		}
		if cfg.STS.MaxSessionLength == "" {
			cfg.STS.MaxSessionLength = "12h"
		}
		if cfg.STS.Issuer == "" {
			cfg.STS.Issuer = "seaweedfs-sts"
		}
		if cfg.Policy.DefaultEffect == "" {
			cfg.Policy = IAMPolicyCfg{DefaultEffect: "Deny", StoreType: "memory"}
		}
		s.iam = &cfg
		if err := s.writeIAMFile(); err != nil {
			return err
		}
	}
	var lastErr error
	for range 5 {
		base, s3port, err := freeSeaweedPorts()
		if err != nil {
			return fmt.Errorf("find free ports: %w", err)
		}
		s.base = base
		s.HostPort = net.JoinHostPort("127.0.0.1", strconv.Itoa(s3port))
		s.Endpoint = "http://" + s.HostPort
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return fmt.Errorf("start SeaweedFS: %w", lastErr)
	}
	// Until the first identity exists SeaweedFS accepts any request,
	// anonymous ones included: create the admin before anything else.
	if _, err := s.runShell(fmt.Sprintf("s3.configure -user=admin -actions=Admin,Read,Write,List,Tagging -access_key=%s -secret_key=%s -apply", s.Admin.ID, s.Admin.Secret)); err != nil {
		return err
	}
	s.users[s.Admin.ID] = seaweedUser{name: "admin", key: s.Admin}
	return s.waitKeyErr(s.Admin, true)
}

func (s *SeaweedFS) port(i int) string { return strconv.Itoa(s.base + i) }

// start launches weed mini and waits until its S3 answers /status.
func (s *SeaweedFS) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("already running")
	}
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		s.mu.Unlock()
		return err
	}
	logPath := filepath.Join(s.dir, "weed.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	_, s3port, _ := net.SplitHostPort(s.HostPort)
	args := []string{"mini", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + s.port(0), "-master.port.grpc=" + s.port(1),
		"-volume.port=" + s.port(2), "-volume.port.grpc=" + s.port(3),
		"-filer.port=" + s.port(4), "-filer.port.grpc=" + s.port(5),
		"-s3.port=" + s3port, "-s3.port.grpc=" + s.port(6),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
		"-admin.port=" + s.port(7), "-admin.port.grpc=" + s.port(8),
		"-master.telemetry=false", "-s3.autoCreateBucket=false"}
	if _, err := os.Stat(filepath.Join(s.dir, "iam.json")); err == nil {
		args = append(args, "-s3.iam.config="+filepath.Join(s.dir, "iam.json"))
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return err
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), seaweedStartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/status", nil)
		resp, err := s.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /status: %s", resp.Status)
		}
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("weed exited (%v) on %s: %s", cmd.ProcessState, s.HostPort, tail(logPath))
		case <-ctx.Done():
			s.stop()
			return fmt.Errorf("weed on %s not ready after %v: %v; log: %s", s.HostPort, seaweedStartTimeout, err, tail(logPath))
		case <-tick.C:
		}
	}
}

func (s *SeaweedFS) writeIAM(tb testing.TB) {
	tb.Helper()
	if err := s.writeIAMFile(); err != nil {
		tb.Fatal(err)
	}
}

func (s *SeaweedFS) writeIAMFile() error {
	b, err := json.MarshalIndent(s.iam, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "iam.json"), b, 0o600)
}

// ReplaceIAM changes the IAM configuration (a role's trust or permission
// policy, say) with change and restarts the server to apply it: SeaweedFS
// reads the file only at start. The STS signing key is kept, so sessions
// issued before stay valid (checked: they survive a restart).
func (s *SeaweedFS) ReplaceIAM(tb testing.TB, change func(*IAMConfig)) {
	tb.Helper()
	if s.iam == nil {
		tb.Fatal("s3test: ReplaceIAM on a SeaweedFS started without IAM")
	}
	change(s.iam)
	s.writeIAM(tb)
	s.Stop(tb)
	s.Start(tb)
}

// Stop stops the server; the data and identities stay for Start. The
// shared server (SharedSeaweedFS) cannot be stopped: other tests use it.
func (s *SeaweedFS) Stop(tb testing.TB) {
	tb.Helper()
	if s.shared {
		tb.Fatal("s3test: Stop on the shared SeaweedFS; start one with MustStartSeaweedFS to stop it")
	}
	if err := s.stop(); err != nil {
		tb.Fatalf("s3test: stop SeaweedFS: %v", err)
	}
}

// Start starts a stopped server again on the same ports and data.
func (s *SeaweedFS) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("s3test: restart SeaweedFS: %v", err)
	}
	s.waitKey(tb, s.Admin, true)
}

func (s *SeaweedFS) stop() error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// A loaded machine can keep weed from stopping in time; it is killed
	// then, and its data folder is what the next start reads. Not a
	// failure of the code under test.
	terminate(cmd, exited, weedStopTimeout)
	return nil
}

// weedStopTimeout is how long weed may take to stop after SIGTERM: its
// servers flush and close one by one, which took over 5 s on a loaded CI
// machine.
const weedStopTimeout = 20 * time.Second

// shell runs one `weed shell` command against the running server and fails
// tb unless it succeeds.
func (s *SeaweedFS) shell(tb testing.TB, command string) string {
	tb.Helper()
	out, err := s.runShell(command)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// runShell runs one `weed shell` command. The gRPC ports are spelled out,
// or weed shell hangs. Commands run one at a time: s3.configure reads the
// identities, changes them and writes them back, so two at once (parallel
// tests on the shared server) would lose one's change. Each takes about a
// second (a new weed process).
func (s *SeaweedFS) runShell(command string) (string, error) {
	s.shellMu.Lock()
	defer s.shellMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "shell",
		"-master=127.0.0.1:"+s.port(0)+"."+s.port(1),
		"-filer=127.0.0.1:"+s.port(4)+"."+s.port(5))
	cmd.Dir = s.dir
	cmd.Stdin = strings.NewReader(command + "\n")
	out, err := cmd.CombinedOutput()
	// weed shell prints errors and still exits 0.
	if err != nil || bytes.Contains(bytes.ToLower(out), []byte("error")) {
		return "", fmt.Errorf("s3test: weed shell %q: %v: %s", strings.Fields(command)[0], err, redactShell(out))
	}
	return string(out), nil
}

// redactShell keeps secrets echoed by weed shell out of test logs.
func redactShell(out []byte) string {
	s := string(out)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// waitKey waits until a signed ListBuckets with key succeeds (want true) or
// is refused (want false): identity changes take effect 0.2–0.4 s after
// the shell command.
func (s *SeaweedFS) waitKey(tb testing.TB, key recsink.AccessKey, want bool) {
	tb.Helper()
	if err := s.waitKeyErr(key, want); err != nil {
		tb.Fatal(err)
	}
}

func (s *SeaweedFS) waitKeyErr(key recsink.AccessKey, want bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.s3Client(key)
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ListBuckets(actx, &s3.ListBucketsInput{})
		acancel()
		if (err == nil) == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("s3test: SeaweedFS key %s: want working=%v, last error %v", key.ID, want, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CreateUser creates an identity with a random key and returns the key.
// role "admin" may do anything; any other role may read, write, list and tag
// in every bucket (use CreateUserFor to restrict it to some buckets).
func (s *SeaweedFS) CreateUser(tb testing.TB, role string) recsink.AccessKey {
	tb.Helper()
	actions := "Read,Write,List,Tagging"
	if role == "admin" {
		actions = "Admin," + actions
	}
	return s.createUser(tb, actions, nil)
}

// CreateUserFor creates an identity that may read, write, list and tag only
// in buckets, and returns its key.
func (s *SeaweedFS) CreateUserFor(tb testing.TB, buckets ...string) recsink.AccessKey {
	tb.Helper()
	return s.createUser(tb, "Read,Write,List,Tagging", buckets)
}

func (s *SeaweedFS) createUser(tb testing.TB, actions string, buckets []string) recsink.AccessKey {
	tb.Helper()
	k := recsink.AccessKey{ID: "AKTEST" + strings.ToUpper(randomHex(8)), Secret: randomHex(20)}
	name := "u" + strings.ToLower(k.ID)
	cmd := fmt.Sprintf("s3.configure -user=%s -actions=%s -access_key=%s -secret_key=%s", name, actions, k.ID, k.Secret)
	if len(buckets) > 0 {
		cmd += " -buckets=" + strings.Join(buckets, ",")
	}
	s.shell(tb, cmd+" -apply")
	s.mu.Lock()
	s.users[k.ID] = seaweedUser{name: name, key: k}
	s.mu.Unlock()
	s.waitKey(tb, k, true)
	return k
}

// seaweedUser is an identity created by the helper.
type seaweedUser struct {
	name string
	key  recsink.AccessKey
}

// DeleteUser deletes the identity of keyID; its key stops working within
// about half a second, and DeleteUser returns once the server refuses it
// as unknown (InvalidAccessKeyId), signed with its real secret: a wrong
// secret would be refused at once, deleted or not.
func (s *SeaweedFS) DeleteUser(tb testing.TB, keyID string) {
	tb.Helper()
	s.mu.Lock()
	u, ok := s.users[keyID]
	delete(s.users, keyID)
	s.mu.Unlock()
	if !ok {
		tb.Fatalf("s3test: SeaweedFS has no user with key %s", keyID)
	}
	s.shell(tb, "s3.user.delete -name="+u.name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.s3Client(u.key)
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ListBuckets(actx, &s3.ListBucketsInput{})
		acancel()
		if err != nil && strings.Contains(err.Error(), "InvalidAccessKeyId") {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("s3test: SeaweedFS key %s still not refused as unknown 30 s after its deletion: %v", keyID, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CreateBucket creates a bucket with a random valid name, with the admin
// key (SeaweedFS's CreateBucket needs Admin), and returns its name. ownerKeyID
// is accepted for the shape of Server.CreateBucket; access follows the
// identities' actions and buckets, not ownership.
func (s *SeaweedFS) CreateBucket(tb testing.TB, ownerKeyID string) string {
	tb.Helper()
	name := "recsink-test-" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.s3Client(s.Admin).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return name
}

// S3Client returns a plain SDK client reaching the server with key.
func (s *SeaweedFS) S3Client(tb testing.TB, key recsink.AccessKey) *s3.Client {
	tb.Helper()
	return s.s3Client(key)
}

func (s *SeaweedFS) s3Client(key recsink.AccessKey) *s3.Client {
	return newS3Client(s.Endpoint, s.http, key)
}

// GetObject returns the content of key in bucket, read with the admin key.
func (s *SeaweedFS) GetObject(tb testing.TB, bucket, key string) []byte {
	tb.Helper()
	return getObject(tb, s.s3Client(s.Admin), bucket, key)
}

// ListObjects returns the keys in bucket under prefix, read with the admin key.
func (s *SeaweedFS) ListObjects(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	return listObjects(tb, s.s3Client(s.Admin), bucket, prefix)
}

// findSeaweedFS returns the weed binary to run, or "".
func findSeaweedFS() string {
	if p := os.Getenv(EnvSeaweedFS); p != "" {
		return p
	}
	tools := os.Getenv("RECSINK_TOOLS")
	if tools == "" {
		if home, err := os.UserHomeDir(); err == nil {
			tools = filepath.Join(home, ".cache", "recsink-tools")
		}
	}
	if tools != "" {
		p := filepath.Join(tools, "seaweedfs-"+SeaweedFSVersion, "bin", "weed")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// freeSeaweedPorts returns a base of nine consecutive free loopback ports
// (master, volume, filer, S3 gRPC and admin) and the S3 port after them, all
// below the ephemeral range so that a restart finds them still free.
func freeSeaweedPorts() (base, s3port int, err error) {
	base, err = freeport.Consecutive(10)
	return base, base + 9, err
}
