package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink/internal/pgtest"
)

// TestCluster checks that each database is fresh and independent and that
// the server is the version the stores target.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := pgtest.MustStart(t)
	ctx := context.Background()
	for _, dsn := range []string{c.MustCreateDatabase(t), c.MustCreateDatabase(t)} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'probe'`).Scan(&n); err != nil {
			t.Fatal(err)
		} else if n != 0 {
			t.Fatalf("new database already has the table created in another")
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE probe (id int)`); err != nil {
			t.Fatal(err)
		}
		var version int
		if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
			t.Fatal(err)
		} else if version < 150000 {
			t.Fatalf("server_version_num = %d, want PostgreSQL 15 or later", version)
		}
	}
}

// TestSequential checks that a test that runs after the cluster stopped
// gets a new one.
func TestSequential(t *testing.T) {
	for range 2 {
		t.Run("Start", func(t *testing.T) {
			c := pgtest.MustStart(t)
			conn, err := pgx.Connect(context.Background(), c.MustCreateDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			conn.Close(context.Background())
		})
	}
}
