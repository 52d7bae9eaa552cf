package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink/internal/pgtest"
)

// TestPrivateStopStart: a private cluster goes down (connections refused)
// and comes back on the same port with its data.
func TestPrivateStopStart(t *testing.T) {
	t.Parallel()
	c, dsn := pgtest.MustStartForOutage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	c.MustStop(t)
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("the stopped cluster answered")
	}
	c.MustRestart(t)
	if err := exec("SELECT n FROM kept"); err != nil {
		t.Fatalf("after Start: %v", err)
	}
}
