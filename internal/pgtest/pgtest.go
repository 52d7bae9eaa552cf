// Package pgtest runs a throwaway PostgreSQL cluster for tests: one per test
// binary at a time, on a free loopback port and a temporary directory, with
// a fresh database per test.
//
// The cluster starts on the first MustStart and stops when the last test
// holding it (through MustStart or MustCreateDatabase) has finished, so that
// no server outlives `go test` even though the package owns no TestMain.
// Parallel tests share one cluster; a later sequential test starts a new one.
// If the test binary dies without running its cleanups, the kernel sends the
// server SIGQUIT (Linux), an immediate shutdown.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/recsink/recsink/internal/freeport"
)

// Environment variables that steer MustStart.
const (
	// EnvBinDir names the directory holding initdb and postgres, overriding
	// the search.
	EnvBinDir = "RECSINK_PG_BIN"
	// EnvRequireTools set to 1 turns missing binaries into a test failure
	// instead of a skip; CI sets it.
	EnvRequireTools = "RECSINK_REQUIRE_TOOLS"
)

const (
	startTimeout = 30 * time.Second // until the server accepts a connection
	stopTimeout  = 10 * time.Second // per shutdown mode: fast, then immediate, then SIGKILL
	// maxConnections leaves room for many parallel tests, each with its own
	// pool; the default of 100 runs out with the conformance suite on a
	// machine with many cores.
	maxConnections = 500
)

// Cluster is a running PostgreSQL server with its own data directory. Its
// only role is postgres, a superuser that needs no password.
type Cluster struct {
	// Port is the server's TCP port on 127.0.0.1.
	Port int

	dir    string // removed on stop; holds data/, the socket and the log
	bin    string // directory of initdb and postgres
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	admin  *pgxpool.Pool // to the postgres database, for CREATE/DROP DATABASE
}

// The process's one cluster and the number of holders; guarded by mu, which
// is held across start and stop so that a holder never sees a half-started
// or half-stopped cluster.
var (
	mu      sync.Mutex
	current *Cluster
	refs    int
)

// MustStart returns the test binary's running cluster, starting it if
// needed, and keeps it running until tb ends. It skips tb when the
// PostgreSQL binaries are absent, or fails it when RECSINK_REQUIRE_TOOLS=1.
func MustStart(tb testing.TB) *Cluster {
	tb.Helper()
	bin := findBinDir()
	if bin == "" {
		msg := "pgtest: PostgreSQL binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH " +
			"(set " + EnvBinDir + ", or install them: apt-get install postgresql-15)"
		if dir := os.Getenv(EnvBinDir); dir != "" {
			msg = "pgtest: " + EnvBinDir + "=" + dir + " holds no initdb and postgres"
		}
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}

	mu.Lock()
	defer mu.Unlock()
	if current == nil {
		began := time.Now()
		c, err := start(bin)
		if err != nil {
			tb.Fatalf("pgtest: start PostgreSQL: %v", err)
		}
		tb.Logf("pgtest: PostgreSQL started on 127.0.0.1:%d in %v (%s)", c.Port, time.Since(began).Round(time.Millisecond), bin)
		current = c
	}
	refs++
	c := current
	tb.Cleanup(func() {
		if err := release(); err != nil {
			tb.Errorf("pgtest: stop PostgreSQL: %v", err)
		}
	})
	return c
}

// MustStartPrivate starts a cluster for tb alone, which tb may stop and
// start again (Stop, Restart) to test an outage; it is removed when tb ends.
// It skips or fails like MustStart when the binaries are absent.
func MustStartPrivate(tb testing.TB) *Cluster {
	tb.Helper()
	bin := findBinDir()
	if bin == "" {
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal("pgtest: PostgreSQL binaries (initdb, postgres) not found")
		}
		tb.Skip("pgtest: PostgreSQL binaries (initdb, postgres) not found")
	}
	c, err := start(bin)
	if err != nil {
		tb.Fatalf("pgtest: start PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.stop(); err != nil {
			tb.Errorf("pgtest: stop PostgreSQL: %v", err)
		}
	})
	return c
}

// Stop shuts the server down (a fast shutdown: sessions end with
// admin_shutdown) and keeps its data and port for Restart. Only for a
// cluster of MustStartPrivate: others are shared.
func (c *Cluster) Stop() error {
	err := c.shutdown()
	c.cmd, c.admin = nil, nil
	return err
}

// Restart starts a stopped server again on the same port and data.
func (c *Cluster) Restart() error {
	return c.run(c.bin, c.cred)
}

// release drops one hold on the cluster and stops it when none is left.
func release() error {
	mu.Lock()
	defer mu.Unlock()
	refs--
	if refs > 0 {
		return nil
	}
	c := current
	current = nil
	return c.stop()
}

// DSN returns the URL of database dbname as the postgres superuser.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, dbname)
}

// MustCreateDatabase creates an empty database for tb, drops it when tb
// ends, and returns its DSN. The cluster keeps running at least as long.
func (c *Cluster) MustCreateDatabase(tb testing.TB) string {
	tb.Helper()
	mu.Lock()
	if current != c {
		mu.Unlock()
		tb.Fatal("pgtest: MustCreateDatabase on a cluster that has stopped: call it within the test that called MustStart")
	}
	refs++
	mu.Unlock()

	name := databaseName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The name is made of [a-z0-9_] only, so quoting is enough.
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		release()
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends the sessions of a pool that a test forgot to close.
		if _, err := c.admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
		if err := release(); err != nil {
			tb.Errorf("pgtest: stop PostgreSQL: %v", err)
		}
	})
	return c.DSN(name)
}

// databaseName returns a unique database name that starts with the test's
// name, for reading the server log: lowercase letters, digits and '_' within
// PostgreSQL's 63-byte limit.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	prefix := b.String()
	if len(prefix) > 40 {
		prefix = prefix[len(prefix)-40:]
	}
	return "t_" + prefix + "_" + randomHex(8)
}

// start initializes a cluster in a new temporary directory and starts its
// server on a free port.
func start(bin string) (c *Cluster, err error) {
	removeStale()
	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, err
	}
	// The owner file lets a later run remove the directory if this test
	// binary dies without its cleanups.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	cred, err := serverCredential(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")

	// Trust authentication on loopback, no fsync: a throwaway test cluster.
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = sysProcAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}

	// A free port found by listening on :0 may be taken again (by another
	// package's test binary) before postgres binds it; then postgres exits
	// and we try another port.
	for range 5 {
		c = &Cluster{dir: dir, bin: bin, cred: cred}
		if c.Port, err = freeport.One(); err != nil {
			return nil, err
		}
		if err = c.run(bin, cred); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// run starts postgres and waits until it accepts connections.
func (c *Cluster) run(bin string, cred *syscall.Credential) error {
	logPath := filepath.Join(c.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(c.Port),
		"-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections="+strconv.Itoa(maxConnections),
		// Durability is worthless for a cluster deleted after the tests.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(cred)

	// The parent-death signal follows the OS thread that forked, not the
	// process (golang/go#27505): fork from a locked thread that lives, blocked
	// in Wait, as long as the server does.
	started := make(chan error, 1)
	c.exited = make(chan struct{})
	go func() {
		defer close(c.exited)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(c.DSN("postgres"))
	if err != nil {
		c.shutdown()
		return err
	}
	cfg.MaxConns = 4
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.ConnectConfig(actx, cfg.ConnConfig)
		acancel()
		if err == nil {
			conn.Close(ctx)
			if c.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
				c.shutdown()
				return err
			}
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited (%v) on port %d: %s", cmd.ProcessState, c.Port, tail(logPath))
		case <-ctx.Done():
			c.shutdown()
			return fmt.Errorf("postgres on port %d not ready after %v: %v; log: %s", c.Port, startTimeout, err, tail(logPath))
		case <-tick.C:
		}
	}
}

// stop shuts the server down and removes its directory.
func (c *Cluster) stop() error {
	err := c.shutdown()
	return errors.Join(err, os.RemoveAll(c.dir))
}

// shutdown stops the server, fast (SIGINT) and then immediately (SIGQUIT),
// killing it as a last resort.
func (c *Cluster) shutdown() error {
	if c.admin != nil {
		c.admin.Close()
	}
	var errs []error
	if c.cmd != nil {
		for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGQUIT, os.Kill} {
			if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, err)
			}
			select {
			case <-c.exited:
			case <-time.After(stopTimeout):
				errs = append(errs, fmt.Errorf("postgres did not stop %v after %v", sig, stopTimeout))
				continue
			}
			break
		}
	}
	return errors.Join(errs...)
}

// Cluster directories are os.TempDir()/recsink-pgtest-*, with the PID of
// the test binary that made them in ownerFile.
const (
	dirPattern = "recsink-pgtest-"
	ownerFile  = "owner.pid"
)

// removeStale removes the cluster directories of test binaries that died
// without their cleanups. A directory is stale when its owner and its
// server (data/postmaster.pid) are both gone; one without an owner file
// may be in the making, and is left alone.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern+"*"))
	for _, dir := range dirs {
		if alive(filepath.Join(dir, ownerFile)) || alive(filepath.Join(dir, "data", "postmaster.pid")) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, ownerFile)); err == nil {
			os.RemoveAll(dir)
		}
	}
}

// alive reports whether the process whose PID starts the file at path
// exists; false when the file is missing.
func alive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	// Signal 0 checks existence; EPERM means it exists as another user.
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// serverCredential returns the credential to run initdb and postgres with,
// nil to run them as ourselves. Both refuse to run as root, so as root they
// run as the postgres user, which must be able to write dir.
func serverCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: need a postgres user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// findBinDir returns the directory holding initdb and postgres: $RECSINK_PG_BIN,
// else the newest /usr/lib/postgresql/N/bin (Debian), else the PATH's.
func findBinDir() string {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if has(dir) {
			return dir
		}
		return ""
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p)
	}
	return ""
}

// versionOf returns N of /usr/lib/postgresql/N/bin.
func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
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
