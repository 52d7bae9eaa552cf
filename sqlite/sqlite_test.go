package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) recsink.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "recsink.db"))
	})
}

// MustOpen opens the database at path and closes it when the test ends.
func MustOpen(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
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

// TestConcurrentWrites runs the recording engine's writes from many
// goroutines at once: none may fail with "database is locked".
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	storetest.RunConcurrentWrites(t, MustOpen(t, filepath.Join(t.TempDir(), "recsink.db")))
}

// TestReopen checks that data survives closing and reopening the file, and
// that reopening applies no migration twice.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "recsink.db")
	ctx := context.Background()

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	org := storetest.MustCreateOrganization(t, db)
	m := storetest.MustCreateMeeting(t, db, org.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 {
		db := MustOpen(t, path)
		if got, err := db.FindOrganizationByName(ctx, org.Name); err != nil {
			t.Fatal(err)
		} else if got.ID != org.ID {
			t.Fatalf("organization ID = %q, want %q", got.ID, org.ID)
		}
		if _, err := db.FindMeeting(ctx, org.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// One schema_migrations row per migration file.
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(files) || n == 0 {
		t.Fatalf("%d migrations recorded, want %d", n, len(files))
	}
	var mode string
	if err := raw.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	} else if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
}

// TestOpenPathWithQueryCharacters checks that a path is never parsed as
// driver parameters.
func TestOpenPathWithQueryCharacters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "odd ?name#1%.db")
	db := MustOpen(t, path)
	storetest.MustCreateOrganization(t, db)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// TestWatchCredentials checks that a credential saved through one handle on
// the file wakes a watcher on another.
func TestWatchCredentials(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "recsink.db")
	storetest.RunWatchCredentials(t, MustOpen(t, path), MustOpen(t, path))
}
