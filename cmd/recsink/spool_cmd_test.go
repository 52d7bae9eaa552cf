package main_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/storetest"
)

// TestSpoolCommand runs "recsink spool list" and "recsink spool purge" on a
// real data folder: a SQLite database and a spool holding a failed, an
// uploaded, a running and an unknown recording.
func TestSpoolCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "recsink.db"))
	if err != nil {
		t.Fatal(err)
	}
	org := storetest.MustCreateOrganization(t, db)
	failed := storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingFailed)
	failed2 := storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingFailed)
	uploaded := storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingUploaded)
	running := storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingRecording)
	db.Close()

	sp, err := spool.Open(filepath.Join(dir, "spool"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{failed.ID, failed2.ID, uploaded.ID, running.ID, "rec_unknown"} {
		f, err := sp.Create(id, spool.NewLayout(0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Append(ctx, bytes.NewReader(make([]byte, 1000*(i+1))), 0); err != nil {
			t.Fatal(err)
		}
		if id == uploaded.ID {
			if err := f.Finish(); err != nil {
				t.Fatal(err)
			}
		}
		// A failed recording's file is closed, its data kept.
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := main.Run(ctx, append([]string{"spool"}, args...), &out, &errb)
		return out.String(), err
	}
	spooled := func() []string {
		t.Helper()
		s, err := spool.Open(filepath.Join(dir, "spool"), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	t.Run("List", func(t *testing.T) {
		out, err := run("list", "--data", dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("recsink spool list:\n%s", out)
		for _, want := range []string{
			"RECORDING", "BYTES", "STATE", "LAST CHANGE",
			failed.ID + "  ", "1000 B", "failed",
			uploaded.ID, "2.9 KiB", "uploaded", "finished",
			running.ID, "3.9 KiB", "recording", "unfinished",
			"rec_unknown", "not in the database",
			"5 recordings, 14.6 KiB spooled",
		} {
			mustContain(t, out, want)
		}
	})

	t.Run("ErrRunning", func(t *testing.T) {
		_, err := run("purge", running.ID, failed.ID, "--data", dir)
		if err == nil || !strings.Contains(err.Error(), running.ID+" is recording") || !strings.Contains(err.Error(), "nothing purged") {
			t.Fatalf("purge of a running recording: %v", err)
		}
		if len(spooled()) != 5 {
			t.Fatal("a refused purge removed data")
		}
	})

	t.Run("ErrNoData", func(t *testing.T) {
		if _, err := run("purge", "rec_nope", "--data", dir); err == nil || !strings.Contains(err.Error(), "rec_nope has no data") {
			t.Fatalf("purge of an unknown ID: %v", err)
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		if _, err := run("purge", "--data", dir); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Fatalf("purge without IDs nor --failed: %v", err)
		}
		if _, err := run("list", "--data", filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "no spool") {
			t.Fatalf("list of a folder without a spool: %v", err)
		}
	})

	t.Run("PurgeFailed", func(t *testing.T) {
		out, err := run("purge", "--failed", "--data", dir)
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, out, "purged "+failed.ID)
		mustContain(t, out, "purged "+failed2.ID)
		mustContain(t, out, "2 recordings purged, 2.9 KiB freed")
		ids := spooled()
		if len(ids) != 3 || strings.Contains(strings.Join(ids, " "), failed.ID) {
			t.Fatalf("spool after purge --failed: %v", ids)
		}
	})

	t.Run("PurgeNamed", func(t *testing.T) {
		out, err := run("purge", "--data", dir, uploaded.ID, "rec_unknown")
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, out, "2 recordings purged")
		if ids := spooled(); len(ids) != 1 || ids[0] != running.ID {
			t.Fatalf("spool after purge: %v", ids)
		}
		list, err := run("list", "--data", dir)
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, list, "1 recording, 3.9 KiB spooled")
	})
}
