package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/storetest"
)

// TestDatabaseBusy holds the file's write lock from another process's
// connection past the busy timeout: a write answers EUNAVAILABLE with a
// Retry-After (not an internal error), and works once the lock is gone.
func TestDatabaseBusy(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "recsink.db")
	db := MustOpen(t, path)
	ctx := context.Background()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	org := &recsink.Organization{ID: recsink.NewID("org"), Name: "busy-" + recsink.RandomToken(6)}
	err = db.CreateOrganization(ctx, org, recsink.HashToken(recsink.RandomToken(8)))
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != recsink.EUNAVAILABLE || e.RetryAfter <= 0 {
		t.Fatalf("write while another holds the lock: %v, want EUNAVAILABLE with RetryAfter", err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	storetest.MustCreateOrganization(t, db)
}

// TestFinalStateTrigger checks that the database itself keeps a recording
// in its final state, whatever statement tries to move it back.
func TestFinalStateTrigger(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "recsink.db")
	db := MustOpen(t, path)
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, db)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, from := range []string{recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
		for _, to := range []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
			recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
			r := storetest.MustCreateRecording(t, db, org.ID, "room", from)
			_, err := raw.ExecContext(ctx, `UPDATE recordings SET state = ? WHERE id = ?`, to, r.ID)
			allowed := from == to || to == recsink.RecordingDeleted && from != recsink.RecordingDeleted
			if allowed != (err == nil) {
				t.Errorf("raw UPDATE %s -> %s: %v", from, to, err)
			}
		}
	}
}
