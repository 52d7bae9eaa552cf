package s3test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// shared is the SeaweedFS of SharedSeaweedFS: one per test binary.
var shared struct {
	once sync.Once
	s    *SeaweedFS
	err  error
	took time.Duration
}

// sharedDirPrefix names the shared server's data folders in the temporary
// directory; each holds ownerFile, the pid of the test binary.
const (
	sharedDirPrefix = "recsink-seaweedfs-"
	ownerFile       = "owner.pid"
)

// SharedSeaweedFS returns the SeaweedFS shared by every test of the package
// that asks for it, started by the first (about 4 s, against under 0.3 s for
// a versitygw: one per test would cost that again in every test). Tests on
// it run in parallel, each with its own buckets and keys (CreateBucketAndKey,
// CreateUserFor); none may stop it (Stop fails the test) or change its IAM:
// a test that needs to, or needs an STS, starts its own with
// MustStartSeaweedFS.
//
// The server lives until StopShared, which a package's TestMain calls after
// m.Run, or until the test binary exits: the kernel kills it then
// (Pdeathsig; it is started from a thread that never exits, since the
// signal follows the starting thread, not the process). A data folder left
// by a binary that is gone is removed by the next SharedSeaweedFS.
func SharedSeaweedFS(tb testing.TB) *SeaweedFS {
	tb.Helper()
	bin := mustFindSeaweedFS(tb)
	started := false
	shared.once.Do(func() {
		started = true
		removeStaleSharedDirs()
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread outlives weed
			shared.s, shared.err = startShared(bin)
			close(done)
			select {}
		}()
		<-done
	})
	if shared.err != nil {
		tb.Fatalf("s3test: shared SeaweedFS: %v", shared.err)
	}
	if started {
		tb.Logf("s3test: shared SeaweedFS on %s started in %v", shared.s.HostPort, shared.took.Round(time.Millisecond))
	}
	return shared.s
}

func startShared(bin string) (*SeaweedFS, error) {
	begin := time.Now()
	dir, err := os.MkdirTemp("", sharedDirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := newSeaweedFS(bin, dir)
	s.shared = true
	if err := s.launch(SeaweedFSOptions{}); err != nil {
		s.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	shared.took = time.Since(begin)
	return s, nil
}

// StopShared stops the shared SeaweedFS, if one was started, and removes
// its data folder.
func StopShared() {
	s := shared.s
	if s == nil {
		return
	}
	s.stop()
	s.http.CloseIdleConnections()
	os.RemoveAll(s.dir)
}

// removeStaleSharedDirs removes the data folders of shared servers whose
// test binary is gone.
func removeStaleSharedDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		os.RemoveAll(d)
	}
}
