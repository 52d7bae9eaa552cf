package main_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// mustMountTmpfs mounts a tmpfs of size bytes on a temporary folder until the
// test ends. It skips when mounting is not allowed (not root), unless
// RECSINK_REQUIRE_TOOLS is set, as in CI.
func mustMountTmpfs(tb testing.TB, size int64) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		if os.Getenv("RECSINK_REQUIRE_TOOLS") != "" {
			tb.Fatalf("mount a tmpfs on %s: %v (RECSINK_REQUIRE_TOOLS is set)", dir, err)
		}
		tb.Skipf("cannot mount a tmpfs (%v): this test needs root; set RECSINK_REQUIRE_TOOLS to make this a failure", err)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestSpool_DiskFull puts the data folder (spool and SQLite database) on a
// 48 MiB tmpfs with S3 down, and streams 60 MiB in PATCHes as a tus client
// does: the spool keeps its headroom (10% of the disk by default), ingest
// answers only 204 or 503 with Retry-After and the offset, the database can
// still record the parts once S3 is back, and the object is byte-identical.
func TestSpool_DiskFull(t *testing.T) {
	t.Parallel()
	mnt := mustMountTmpfs(t, 48*mib)
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.Data = mnt })
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 60*mib)
	e.S3.Stop(t)

	const chunk = 4 * mib
	var offset, refusedAt int64
	var refusals int
	deadline := time.Now().Add(90 * time.Second)
	for offset < int64(len(data)) {
		if time.Now().After(deadline) {
			logs := e.Main.Logs.String()
			t.Fatalf("stuck at offset %d; recsink's log ends:\n%s", offset, logs[max(0, len(logs)-4000):])
		}
		resp := rec.Patch(t, offset, bytes.NewReader(data[offset:min(offset+chunk, int64(len(data)))]))
		switch resp.StatusCode {
		case 204:
		case 503:
			if resp.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After at offset %d", offset)
			}
		default:
			t.Fatalf("PATCH at %d: status %d, want 204 or 503", offset, resp.StatusCode)
		}
		got, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if err != nil || got < offset {
			t.Fatalf("PATCH at %d: status %d, Upload-Offset %q", offset, resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
		offset = got
		if resp.StatusCode == 503 {
			if refusals++; refusals == 1 {
				refusedAt = offset
				var st syscall.Statfs_t
				if err := syscall.Statfs(mnt, &st); err != nil {
					t.Fatal(err)
				}
				t.Logf("48 MiB tmpfs, S3 down: first 503 at offset %.1f MiB with %.1f MiB free; S3 comes back", float64(offset)/mib, float64(int64(st.Bavail)*int64(st.Bsize))/mib)
				e.S3.Start(t)
			}
		}
		if resp.StatusCode == 503 {
			time.Sleep(100 * time.Millisecond) // the recorder's pause before it retries
		}
	}
	if refusedAt == 0 {
		t.Fatal("60 MiB fitted on a 48 MiB disk: the test filled nothing")
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	t.Logf("%d answers 503, object of %d bytes byte-identical", refusals, len(data))
}
