package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
	db := MustOpen(t, filepath.Join(t.TempDir(), "recsink.db"))
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, db)
	var recs []*recsink.Recording
	for range 5 {
		recs = append(recs, storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingRecording))
	}

	const goroutines, rounds = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*4)
	for g := range goroutines {
		wg.Go(func() {
			base := *recs[g%len(recs)] // each goroutine its own copy
			r := &base
			for i := range rounds {
				r.BytesReceived = int64(g*rounds + i)
				if err := db.UpdateRecording(ctx, r); err != nil {
					errs <- fmt.Errorf("update: %w", err)
				}
				p := recsink.Part{Number: int32(g*rounds + i + 1), Offset: int64(i), Size: 1, ETag: "e"}
				if err := db.PutPart(ctx, r.ID, p); err != nil {
					errs <- fmt.Errorf("put part: %w", err)
				}
				e := recsink.RecordingEvent{Time: r.StartDate, Type: recsink.EventUploadResumed, Message: fmt.Sprint(g, i)}
				if err := db.AddRecordingEvent(ctx, r.ID, e); err != nil {
					errs <- fmt.Errorf("add event: %w", err)
				}
				if _, err := db.FindRecordingByID(ctx, r.ID); err != nil {
					errs <- fmt.Errorf("find: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var parts, events int
	for _, r := range recs {
		ps, err := db.ListParts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		es, err := db.ListRecordingEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		parts, events = parts+len(ps), events+len(es)
	}
	if want := goroutines * rounds; parts != want || events != want {
		t.Fatalf("%d parts and %d events, want %d of each", parts, events, want)
	}
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
