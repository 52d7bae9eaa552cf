package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// MustMountTmpfs mounts a tmpfs of size bytes on a temporary folder and
// unmounts it at the end. It skips when mounting is not allowed (not root),
// unless RECSINK_REQUIRE_TOOLS is set, as in CI.
func MustMountTmpfs(tb testing.TB, size int64) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		if os.Getenv("RECSINK_REQUIRE_TOOLS") != "" {
			tb.Fatalf("mount a tmpfs on %s: %v (RECSINK_REQUIRE_TOOLS is set)", dir, err)
		}
		tb.Skipf("cannot mount a tmpfs (%v): this test needs root; set RECSINK_REQUIRE_TOOLS to make this a failure", err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file of zeros into dir until less than leave bytes are free
// (the tmpfs has no reserved blocks, so free means available).
func fill(tb testing.TB, dir string, leave int64) string {
	tb.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		tb.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(0, free-leave)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestAppend_DiskFull fills a real (tmpfs) file system under a recording:
// Append answers EUNAVAILABLE with the durable offset, leaves no unsynced
// tail on disk, and carries on at that offset once space is back, the
// recording byte-identical.
func TestAppend_DiskFull(t *testing.T) {
	t.Parallel()
	mnt := MustMountTmpfs(t, 8<<20)
	s, err := spool.OpenConfig(spool.Config{Dir: filepath.Join(mnt, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before the unmount
	l := spool.Layout{BaseSize: 1 << 20, TierParts: 1000}
	f := MustCreate(t, s, "rec", l)
	filler := fill(t, mnt, 1536<<10)
	data := randomBytes(4 << 20)

	off, err := f.Append(context.Background(), &chunkReader{data: data, max: 64 << 10}, 0)
	e := wantCode(t, err, recsink.EUNAVAILABLE)
	if !errors.Is(err, syscall.ENOSPC) || e.RetryAfter <= 0 || !strings.Contains(e.Message, "disk is full") {
		t.Fatalf("err = %v (RetryAfter %d), want ENOSPC as a 503 saying the disk is full", err, e.RetryAfter)
	}
	// What was written before the disk filled is synced and acknowledged:
	// the 1.5 MiB free less a few pages of metadata.
	if off <= 1<<20 || off > 1536<<10 || off != f.Offset() {
		t.Fatalf("Append on a full disk returned offset %d (Offset %d), want the bytes that fitted", off, f.Offset())
	}
	t.Logf("8 MiB tmpfs with 1.5 MiB free: Append of 4 MiB stopped at %d bytes with %q", off, e.Message)
	checkFile(t, f, l, data[:off], nil, false)
	// No unsynced tail is left on disk to be counted by a restart.
	last := l.PartAt(off - 1)
	start, _ := l.Part(last)
	if fi, err := os.Stat(filepath.Join(mnt, "spool", "rec", partName(last))); err != nil || fi.Size() != off-start {
		t.Fatalf("part %d on disk: %v, %v; want %d bytes", last, fi, err, off-start)
	}
	if s.Used() != off {
		t.Fatalf("Used = %d, want %d", s.Used(), off)
	}

	// Still full: the same answer, the same offset.
	if off2, err := f.Append(context.Background(), bytes.NewReader(data[off:]), off); recsink.ErrorCode(err) != recsink.EUNAVAILABLE || off2 != off {
		t.Fatalf("Append on a still full disk = %d, %v", off2, err)
	}

	// Space is back.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	MustAppend(t, f, data[off:])
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, f, l, data, nil, true)

	// And after a restart.
	_, g := MustReopen(t, f, filepath.Join(mnt, "spool"), 0, "rec", l)
	checkFile(t, g, l, data, nil, true)
}

// TestCreate_DiskFull: a recording cannot be created on a full disk, answers
// EUNAVAILABLE, and leaves nothing behind.
func TestCreate_DiskFull(t *testing.T) {
	t.Parallel()
	mnt := MustMountTmpfs(t, 1<<20)
	s, err := spool.OpenConfig(spool.Config{Dir: filepath.Join(mnt, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before the unmount
	filler := fill(t, mnt, 0)
	_, err = s.Create("rec", small)
	wantCode(t, err, recsink.EUNAVAILABLE)
	if ids, err := s.List(); err != nil || len(ids) != 0 {
		t.Fatalf("List after a failed Create = %v, %v", ids, err)
	}
	os.Remove(filler)
	MustCreate(t, s, "rec", small)
}

// logBuffer is a slog handler's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHeadroom: once free space on the disk falls below the headroom, new
// media (appends, new recordings) is refused with EUNAVAILABLE, logged once
// however often it happens, while releasing parts still works; with room
// again, the recording carries on byte-identical.
func TestHeadroom(t *testing.T) {
	t.Parallel()
	fsys := spool.NewStrictMemFS()
	var logs logBuffer
	s, err := spool.OpenConfig(spool.Config{Dir: "/spool", FS: fsys, Headroom: 10_000,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(20_000)
	fsys.SetCapacity(fsys.Used() + 15_000)
	waitFor(t, "DiskFree to see the capacity", func() bool { return s.DiskFree() < 16_000 })

	off, err := f.Append(context.Background(), &chunkReader{data: data, max: 700}, 0)
	e := wantCode(t, err, recsink.EUNAVAILABLE)
	if e.RetryAfter <= 0 || off != f.Offset() {
		t.Fatalf("Append = %d, %+v", off, e)
	}
	// The free space is counted down as the spool writes, not only at each
	// statfs: the refusal comes within one read of the headroom.
	if off < 4000 || off > 5000+700 {
		t.Fatalf("Append refused at offset %d, want about 5000 (15000 free, headroom 10000)", off)
	}
	if free := s.DiskFree(); free >= s.Headroom() {
		t.Fatalf("DiskFree = %d, Headroom %d", free, s.Headroom())
	}
	checkFile(t, f, small, data[:off], nil, false)
	for range 3 {
		if _, err := f.Append(context.Background(), bytes.NewReader(data[off:]), off); recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
			t.Fatalf("Append below the headroom: %v", err)
		}
	}
	if _, err := s.Create("other", small); recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
		t.Fatalf("Create below the headroom: %v", err)
	}
	if n := strings.Count(logs.String(), "refusing new media"); n != 1 {
		t.Fatalf("%d log lines for refusals, want 1 (rate-limited):\n%s", n, logs.String())
	}
	// Releasing parts (after their upload) is what frees the disk: it must
	// work below the headroom.
	for _, n := range f.CompleteParts() {
		if err := f.Release(n); err != nil {
			t.Fatal(err)
		}
	}
	fsys.SetCapacity(0)
	waitFor(t, "DiskFree to see the room", func() bool { return s.DiskFree() > s.Headroom() })
	MustAppend(t, f, data[off:])
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	if f.SHA256() != sha(data) {
		t.Fatal("digest differs from the data")
	}
}

// TestDefaultHeadroom: 512 MiB or 10% of the disk, whichever is smaller.
func TestDefaultHeadroom(t *testing.T) {
	for total, want := range map[int64]int64{1 << 30: 1 << 30 / 10, 100 << 30: 512 << 20, 0: 0} {
		if got := spool.DefaultHeadroom(total); got != want {
			t.Errorf("DefaultHeadroom(%d) = %d, want %d", total, got, want)
		}
	}
}

// TestClose_Faulted: a recording whose disk failed can be closed (its
// data stays), reopened and removed.
func TestClose_Faulted(t *testing.T) {
	t.Parallel()
	fsys := spool.NewStrictMemFS()
	s, err := spool.OpenConfig(spool.Config{Dir: "/spool", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(3000)
	MustAppend(t, f, data[:1500])
	fsys.FailAfter(1)
	if _, err := f.Append(context.Background(), bytes.NewReader(data[1500:]), 1500); recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
		t.Fatalf("Append on a failing disk: %v", err)
	}
	fsys.Revive()
	if err := f.Close(); err != nil {
		t.Fatalf("Close after a disk fault: %v", err)
	}
	g, err := s.Open("rec", small)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, g, small, data[:1500], nil, false)
	entries, err := s.Entries()
	if err != nil || len(entries) != 1 || entries[0].ID != "rec" || entries[0].Bytes != 1500 || entries[0].Finished {
		t.Fatalf("Entries = %+v, %v", entries, err)
	}
	if err := s.Remove("rec"); err != nil {
		t.Fatal(err)
	}
	if entries, err := s.Entries(); err != nil || len(entries) != 0 || s.Used() != 0 {
		t.Fatalf("Entries after Remove = %+v, %v; Used %d", entries, err, s.Used())
	}
}

func partName(n int32) string { return fmt.Sprintf("part-%06d", n) }

// TestReclaim: the data of a closed (failed) recording counts against the
// limit until another process (recsink spool purge) deletes it; then a full
// spool finds the space again without a restart.
func TestReclaim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := MustOpen(t, dir, 3000)
	failed := MustCreate(t, s, "failed", small)
	MustAppend(t, failed, randomBytes(2500))
	if err := failed.Close(); err != nil { // failed: its file released, its data kept
		t.Fatal(err)
	}
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(2000)
	off, err := f.Append(context.Background(), bytes.NewReader(data), 0)
	if recsink.ErrorCode(err) != recsink.EUNAVAILABLE || off != 500 {
		t.Fatalf("Append to a spool full of a failed recording = %d, %v", off, err)
	}

	// recsink spool purge, in another process.
	other := MustOpen(t, dir, 0)
	entries, err := other.Entries()
	if err != nil || len(entries) != 2 || entries[0].ID != "failed" || entries[0].Bytes != 2500 {
		t.Fatalf("Entries = %+v, %v", entries, err)
	}
	if err := other.Remove("failed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the purged space to be reclaimed", func() bool {
		var err error
		off, err = f.Append(context.Background(), bytes.NewReader(data[off:]), off)
		return err == nil
	})
	checkFile(t, f, small, data, nil, false)
	if s.Used() != 2000 {
		t.Fatalf("Used = %d, want 2000", s.Used())
	}
}
