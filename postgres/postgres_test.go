package postgres_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/postgres"
	"github.com/recsink/recsink/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	cluster := pgtest.MustStart(t)
	storetest.Run(t, func(t *testing.T) recsink.Store {
		return MustOpen(t, cluster.MustCreateDatabase(t))
	})
}

// MustOpen opens the database at dsn and closes it when the test ends.
func MustOpen(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// TestConcurrentOpen starts several nodes on one new database at once: the
// advisory lock lets exactly one apply each migration, and all of them work.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	ctx := context.Background()

	const nodes = 8
	dbs := make([]*postgres.DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(ctx, dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}

	// Each node sees what another wrote.
	org := storetest.MustCreateOrganization(t, dbs[0])
	for i, db := range dbs {
		if _, err := db.FindOrganizationByName(ctx, org.Name); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}

	// One schema_migrations row per migration file, and opening again
	// applies nothing twice.
	MustOpen(t, dsn)
	files, err := migrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	} else if n != files || n == 0 {
		t.Fatalf("%d migrations recorded, want %d", n, files)
	}
}

// TestConcurrentWrites runs the recording engine's writes from many
// goroutines at once: none may fail.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	storetest.RunConcurrentWrites(t, MustOpen(t, pgtest.MustStart(t).MustCreateDatabase(t)))
}

// TestConcurrentCreateCredential saves one scope from many nodes at once:
// every save succeeds and replaces the one before it, leaving exactly one
// current generation (SQLite serializes writers; PostgreSQL needs a lock).
func TestConcurrentCreateCredential(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	db := MustOpen(t, dsn)
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, db)

	const saves = 20
	var wg sync.WaitGroup
	errs := make(chan error, saves)
	for i := range saves {
		wg.Go(func() {
			c := storetest.NewCredential(org.ID, recsink.ScopeOrganization, time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC))
			if err := db.CreateCredential(ctx, c); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cs, err := db.ListCredentials(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, c := range cs {
		if c.ReplacedAt == nil {
			current++
		}
	}
	if len(cs) != saves || current != 1 {
		t.Fatalf("%d generations with %d current, want %d with 1", len(cs), current, saves)
	}
}

// TestConcurrentClaim claims one outbox from several nodes at once: every
// due delivery is claimed exactly once.
func TestConcurrentClaim(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	ctx := context.Background()
	nodes := []*postgres.DB{MustOpen(t, dsn), MustOpen(t, dsn), MustOpen(t, dsn), MustOpen(t, dsn)}
	org := storetest.MustCreateOrganization(t, nodes[0])
	due := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const deliveries = 200
	for range deliveries {
		storetest.MustCreateWebhookDelivery(t, nodes[0], org.ID, due)
	}

	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for _, db := range nodes {
		for range 3 { // workers per node
			wg.Go(func() {
				for {
					ds, err := db.ClaimWebhookDeliveries(ctx, due, due.Add(time.Hour), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						claimed[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(claimed) != deliveries {
		t.Fatalf("%d deliveries claimed, want %d", len(claimed), deliveries)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("delivery %s claimed %d times", id, n)
		}
	}
}

// TestOpenBadDSN checks that a DSN that cannot be parsed or reached fails
// Open without a panic.
func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{"postgres://%zz", "postgres://postgres@127.0.0.1:1/nope?sslmode=disable&connect_timeout=2"} {
		if db, err := postgres.Open(ctx, dsn); err == nil {
			db.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
	}
}

// migrationFiles returns the number of migration files in the package.
func migrationFiles() (int, error) {
	files, err := filepath.Glob("migrations/*.sql")
	return len(files), err
}

// TestWatchCredentials checks that a credential saved through one node
// wakes a watcher on another node of the same database.
func TestWatchCredentials(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	storetest.RunWatchCredentials(t, MustOpen(t, dsn), MustOpen(t, dsn))
}
