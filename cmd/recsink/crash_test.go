package main_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mustBuild builds the recsink binary once per test run.
func mustBuild(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "recsink-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "recsink")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// Process is recsink running as a separate process, so that it can be
// killed with SIGKILL.
type Process struct {
	Data, Addr string
	s3         *s3test.Server
	cmd        *exec.Cmd
	logs       *syncBuffer
}

// MustStartProcess runs `recsink serve` on a free port and waits until it
// answers.
func MustStartProcess(tb testing.TB, s3 *s3test.Server, data string, args ...string) *Process {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &Process{Data: data, Addr: addr, s3: s3, logs: &syncBuffer{}}
	p.cmd = exec.Command(mustBuild(tb), append([]string{"serve", "--addr", addr, "--data", data, "--allow-endpoint", s3.HostPort, "--log-level", "debug"}, append(flagIf(tb, "api-rate", "0"), args...)...)...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("recsink did not answer within 20 s:\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
}

// URL returns the process's base URL.
func (p *Process) URL() string { return "http://" + p.Addr }

// Kill kills the process with SIGKILL: no cleanup runs.
func (p *Process) Kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// mustOrgCreate runs `recsink org create` and returns the key it printed.
func mustOrgCreate(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(mustBuild(tb), append([]string{"org", "create", "org-" + recsink.RandomToken(4)}, args...)...).Output()
	if err != nil {
		tb.Fatalf("org create: %v", err)
	}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		last = sc.Text()
	}
	return strings.TrimSpace(last)
}

// mustMasterKeyFile writes a random master key for --master-key-file, one
// that every node of a cluster is given, and returns its path.
func mustMasterKeyFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(randomBytes(tb, 32))), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestRecording_SIGKILL: recsink is killed mid-recording and started again;
// the recorder resumes at the durable offset and the object is
// byte-identical. A recording stopped just before the crash is finalized
// after the restart.
func TestRecording_SIGKILL(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	e, p := mustProcessEnv(t, data)
	s3, org, bucket := e.S3, e.Org, e.Bucket
	meeting := e.MustMeeting(t, org)

	running := MustStartRecording(t, org, meeting)
	stopped := MustStartRecording(t, org, meeting)
	a := randomBytes(t, 17*mib+777)
	b := randomBytes(t, 3*mib+5)
	running.MustPut(t, a[:11*mib])
	stopped.MustPut(t, b)
	// The second recording stops while S3 is down, so it cannot complete
	// before the crash.
	s3.Stop(t)
	org.MustDo(t, 200, "POST", "/v1/recordings/"+stopped.ID+"/stop", nil)
	p.Kill()
	s3.Start(t)

	p = MustStartProcess(t, s3, data)
	e.Main.url = p.URL()
	running = ingestVia(running, p)
	offset := running.Offset(t)
	if offset != 11*mib {
		t.Fatalf("offset after SIGKILL %d, want %d (every acknowledged byte)", offset, 11*mib)
	}
	running.MustPut(t, a[offset:])
	org.MustDo(t, 200, "POST", "/v1/recordings/"+running.ID+"/stop", nil)
	WaitState(t, org, running.ID, recsink.RecordingUploaded, 60*time.Second)
	WaitState(t, org, stopped.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, s3, bucket, running.ObjectKey, a)
	checkObject(t, s3, bucket, stopped.ObjectKey, b)
}
