package pgtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A private cluster is one test's own: not shared with parallel tests, so
// that it can be stopped and started again (a database outage) without
// touching anyone else's. privates holds their binary directories.
var (
	privateMu sync.Mutex
	privates  = map[*Cluster]string{}
)

// MustStartForOutage starts a cluster of tb's own, stopped and removed when tb
// ends, with one database, and returns the cluster and the database's DSN.
// It skips tb when the PostgreSQL binaries are absent, or fails it when
// RECSINK_REQUIRE_TOOLS=1. Only such a cluster can be stopped
// (MustStop) and started again (MustRestart).
func MustStartForOutage(tb testing.TB) (*Cluster, string) {
	tb.Helper()
	bin := findBinDir()
	if bin == "" {
		msg := "pgtest: PostgreSQL binaries (initdb, postgres) not found (set " + EnvBinDir + ", or apt-get install postgresql-15)"
		if os.Getenv(EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	began := time.Now()
	c, err := start(bin)
	if err != nil {
		tb.Fatalf("pgtest: start a private PostgreSQL: %v", err)
	}
	privateMu.Lock()
	privates[c] = bin
	privateMu.Unlock()
	tb.Cleanup(func() {
		privateMu.Lock()
		delete(privates, c)
		privateMu.Unlock()
		if err := c.stop(); err != nil {
			tb.Errorf("pgtest: stop the private PostgreSQL: %v", err)
		}
	})
	tb.Logf("pgtest: private PostgreSQL started on 127.0.0.1:%d in %v", c.Port, time.Since(began).Round(time.Millisecond))
	name := databaseName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return c, c.DSN(name)
}

// MustStop shuts a private cluster down (a fast shutdown: sessions end with
// "terminating connection due to administrator command"), keeping its data
// and port for MustRestart.
func (c *Cluster) MustStop(tb testing.TB) {
	tb.Helper()
	if _, ok := c.private(); !ok {
		tb.Fatal("pgtest: MustStop of a shared cluster; use MustStartForOutage")
	}
	if err := c.shutdown(); err != nil {
		tb.Fatalf("pgtest: stop PostgreSQL: %v", err)
	}
	c.admin = nil
}

// MustRestart starts a stopped private cluster again on the same port and data,
// and waits until it accepts connections.
func (c *Cluster) MustRestart(tb testing.TB) {
	tb.Helper()
	bin, ok := c.private()
	if !ok {
		tb.Fatal("pgtest: MustRestart of a shared cluster; use MustStartForOutage")
	}
	cred, err := serverCredential(c.dir)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	// The port may be taken by someone else while we were down: then
	// postgres exits at once; try a few times before giving up.
	for attempt := 0; ; attempt++ {
		err := c.run(bin, cred)
		if err == nil {
			return
		}
		if attempt == 4 {
			tb.Fatalf("pgtest: start PostgreSQL again on port %d: %v", c.Port, err)
		}
		time.Sleep(200 * time.Millisecond) // the port may be freed again
	}
}

func (c *Cluster) private() (string, bool) {
	privateMu.Lock()
	defer privateMu.Unlock()
	bin, ok := privates[c]
	return bin, ok
}
