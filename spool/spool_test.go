package spool_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/spool"
)

// small has parts of 1000, 1000, 2000, 2000, 4000, 4000, ... bytes, so that
// tests cross many boundaries and tiers with little data.
var small = spool.Layout{BaseSize: 1000, TierParts: 2}

// MustOpen opens a spool on dir.
func MustOpen(tb testing.TB, dir string, limit int64) *spool.Spool {
	tb.Helper()
	s, err := spool.Open(dir, limit)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// MustCreate creates the recording id in s and closes it at the end.
func MustCreate(tb testing.TB, s *spool.Spool, id string, l spool.Layout) *spool.File {
	tb.Helper()
	f, err := s.Create(id, l)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// MustReopen closes f and opens the recording again in a new Spool on dir,
// as after a restart.
func MustReopen(tb testing.TB, f *spool.File, dir string, limit int64, id string, l spool.Layout) (*spool.Spool, *spool.File) {
	tb.Helper()
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	s := MustOpen(tb, dir, limit)
	g, err := s.Open(id, l)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return s, g
}

// MustAppend appends data in small reads at the expected offset.
func MustAppend(tb testing.TB, f *spool.File, data []byte) {
	tb.Helper()
	want := f.Offset() + int64(len(data))
	off, err := f.Append(context.Background(), &chunkReader{data: data, max: 777}, f.Offset())
	if err != nil {
		tb.Fatal(err)
	}
	if off != want || f.Offset() != want {
		tb.Fatalf("Append returned %d, Offset %d, want %d", off, f.Offset(), want)
	}
}

// chunkReader returns data in reads of 1..max bytes, like a network body.
type chunkReader struct {
	data []byte
	max  int
	err  error // returned at the end instead of io.EOF
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+rand.IntN(r.max))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// failReader fails the test when read.
type failReader struct{ tb testing.TB }

func (r failReader) Read([]byte) (int, error) {
	r.tb.Error("body read")
	return 0, io.EOF
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// wantCode fails unless err is an *recsink.Error with code.
func wantCode(tb testing.TB, err error, code string) *recsink.Error {
	tb.Helper()
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != code {
		tb.Fatalf("err = %v, want code %s", err, code)
	}
	return e
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkFile checks everything f reports against data, the bytes appended,
// and released, the parts released.
func checkFile(tb testing.TB, f *spool.File, l spool.Layout, data []byte, released []int32, finished bool) {
	tb.Helper()
	end := int64(len(data))
	if f.Offset() != end {
		tb.Fatalf("Offset = %d, want %d", f.Offset(), end)
	}
	if got, want := f.SHA256(), sha(data); got != want {
		tb.Fatalf("SHA256 = %s, want %s", got, want)
	}
	if f.Finished() != finished {
		tb.Fatalf("Finished = %v, want %v", f.Finished(), finished)
	}
	var count int32
	if end > 0 {
		count = l.PartAt(end - 1)
	}
	if f.PartCount() != count {
		tb.Fatalf("PartCount = %d, want %d", f.PartCount(), count)
	}
	var want []int32
	for n := int32(1); n <= count; n++ {
		off, size := l.Part(n)
		if (off+size <= end || finished) && !slices.Contains(released, n) {
			want = append(want, n)
		}
	}
	if got := f.CompleteParts(); !slices.Equal(got, want) {
		tb.Fatalf("CompleteParts = %v, want %v", got, want)
	}
	for _, n := range want {
		off, size := l.Part(n)
		size = min(size, end-off)
		r, err := f.Part(n)
		if err != nil {
			tb.Fatal(err)
		}
		if r.Size() != size {
			tb.Fatalf("part %d size = %d, want %d", n, r.Size(), size)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(got, data[off:off+size]) {
			tb.Fatalf("part %d differs from the input", n)
		}
		// Seekable, so that a retried upload resends the same bytes.
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			tb.Fatal(err)
		}
		if again, _ := io.ReadAll(r); !bytes.Equal(again, got) {
			tb.Fatalf("part %d differs after Seek", n)
		}
		r.Close()
	}
	for _, n := range released {
		if _, err := f.Part(n); err == nil {
			tb.Fatalf("Part(%d) of a released part succeeded", n)
		}
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(20_000)
	var sent int
	for _, n := range []int{1, 999, 1, 1, 1998, 3, 4567, 7001, 5429} {
		MustAppend(t, f, data[sent:sent+n])
		sent += n
		checkFile(t, f, small, data[:sent], nil, false)
		if s.Used() != int64(sent) {
			t.Fatalf("Used = %d, want %d", s.Used(), sent)
		}
	}
	if sent != len(data) {
		t.Fatalf("sent %d", sent)
	}
	// expect < 0 appends at the end, whatever the offset.
	more := randomBytes(1234)
	if off, err := f.Append(context.Background(), bytes.NewReader(more), -1); err != nil || off != 21_234 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	checkFile(t, f, small, append(data, more...), nil, false)
}

func TestAppend_Ready(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	MustAppend(t, f, randomBytes(999))
	select {
	case <-f.Ready():
		t.Fatal("Ready before a part is complete")
	default:
	}
	MustAppend(t, f, randomBytes(1))
	select {
	case <-f.Ready():
	default:
		t.Fatal("not Ready after part 1 completed")
	}
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Ready():
	default:
		t.Fatal("not Ready after Finish")
	}
}

func TestAppend_ErrOffsetMismatch(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	MustAppend(t, f, randomBytes(10))
	off, err := f.Append(context.Background(), failReader{t}, 5)
	e := wantCode(t, err, recsink.ECONFLICT)
	if off != 10 || e.Message != "Upload-Offset 5 does not match the recording's offset 10" {
		t.Fatalf("Append = %d, %q", off, e.Message)
	}
}

func TestAppend_ErrConcurrent(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := f.Append(context.Background(), pr, 0)
		done <- err
	}()
	if _, err := pw.Write([]byte("hello")); err != nil { // the first Append is reading
		t.Fatal(err)
	}
	_, err := f.Append(context.Background(), failReader{t}, -1)
	if e := wantCode(t, err, recsink.ECONFLICT); e.Message != "another upload to this recording is in progress" {
		t.Fatalf("message %q", e.Message)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Offset() != 5 {
		t.Fatalf("Offset = %d", f.Offset())
	}
}

func TestAppend_ReaderError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := MustOpen(t, dir, 0)
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(2500)
	errGone := errors.New("client went away")
	off, err := f.Append(context.Background(), &chunkReader{data: data, max: 300, err: errGone}, 0)
	if !errors.Is(err, errGone) || off != 2500 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	checkFile(t, f, small, data, nil, false)
	_, f = MustReopen(t, f, dir, 0, "rec", small)
	checkFile(t, f, small, data, nil, false)
	MustAppend(t, f, data[:10])
	checkFile(t, f, small, append(data, data[:10]...), nil, false)
}

func TestAppend_ContextCanceled(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	ctx, cancel := context.WithCancel(context.Background())
	data := randomBytes(1500)
	r := &cancelReader{r: bytes.NewReader(data), after: 1500, cancel: cancel}
	off, err := f.Append(ctx, r, 0)
	if !errors.Is(err, context.Canceled) || off != 1500 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	checkFile(t, f, small, data, nil, false)
}

// cancelReader cancels a context once it has returned after bytes.
type cancelReader struct {
	r      io.Reader
	after  int
	n      int
	cancel func()
}

func (r *cancelReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p[:min(len(p), 100)])
	r.n += n
	if r.n >= r.after {
		r.cancel()
	}
	return n, err
}

func TestAppend_SpoolFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := MustOpen(t, dir, 2500)
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(4000)
	off, err := f.Append(context.Background(), &chunkReader{data: data, max: 700}, 0)
	e := wantCode(t, err, recsink.EUNAVAILABLE)
	if e.RetryAfter != 5 || off != 2500 || s.Used() != 2500 {
		t.Fatalf("Append = %d, %+v; Used %d", off, e, s.Used())
	}
	checkFile(t, f, small, data[:2500], nil, false)

	// The limit is global: another recording gets nothing either.
	g := MustCreate(t, s, "other", small)
	if _, err := g.Append(context.Background(), bytes.NewReader([]byte("x")), 0); recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
		t.Fatalf("other recording: %v", err)
	}

	for _, n := range []int32{1, 2} {
		if err := f.Release(n); err != nil {
			t.Fatal(err)
		}
	}
	if s.Used() != 500 {
		t.Fatalf("Used after Release = %d", s.Used())
	}
	MustAppend(t, f, data[2500:])
	checkFile(t, f, small, data, []int32{1, 2}, false)
	if s.Used() != 2000 {
		t.Fatalf("Used = %d", s.Used())
	}

	// A body that ends exactly at the limit is not an error.
	if off, err := g.Append(context.Background(), bytes.NewReader(data[:500]), 0); err != nil || off != 500 {
		t.Fatalf("Append to the limit = %d, %v", off, err)
	}

	// The count survives a restart.
	s2, _ := MustReopen(t, f, dir, 2500, "rec", small)
	if s2.Used() != 2500 {
		t.Fatalf("Used after restart = %d", s2.Used())
	}
}

func TestFinish(t *testing.T) {
	t.Parallel()

	t.Run("ShortLastPart", func(t *testing.T) {
		t.Parallel()
		s := MustOpen(t, t.TempDir(), 0)
		f := MustCreate(t, s, "rec", small)
		data := randomBytes(1500)
		MustAppend(t, f, data)
		if got := f.CompleteParts(); !slices.Equal(got, []int32{1}) {
			t.Fatalf("CompleteParts = %v", got)
		}
		if _, err := f.Part(2); err == nil {
			t.Fatal("Part(2) of an incomplete part succeeded")
		}
		if err := f.Finish(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, f, small, data, nil, true)
		if f.PartCount() != 2 {
			t.Fatalf("PartCount = %d", f.PartCount())
		}
		_, err := f.Append(context.Background(), failReader{t}, 1500)
		if e := wantCode(t, err, recsink.ECONFLICT); e.Message != "the recording has stopped" {
			t.Fatalf("message %q", e.Message)
		}
		if err := f.Finish(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		s := MustOpen(t, t.TempDir(), 0)
		f := MustCreate(t, s, "rec", small)
		if err := f.Finish(); err != nil {
			t.Fatal(err)
		}
		if f.PartCount() != 0 || len(f.CompleteParts()) != 0 {
			t.Fatalf("PartCount %d, CompleteParts %v", f.PartCount(), f.CompleteParts())
		}
		if _, err := f.Part(1); err == nil {
			t.Fatal("Part(1) of an empty recording succeeded")
		}
		checkFile(t, f, small, nil, nil, true)
	})

	t.Run("WhileAppendBlocked", func(t *testing.T) {
		t.Parallel()
		s := MustOpen(t, t.TempDir(), 0)
		f := MustCreate(t, s, "rec", small)
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := f.Append(context.Background(), pr, 0)
			done <- err
		}()
		data := randomBytes(1200)
		if _, err := pw.Write(data); err != nil {
			t.Fatal(err)
		}
		// Bytes read but not yet written when Finish comes are dropped, as
		// they were never acknowledged; wait for them to be.
		waitFor(t, "Offset 1200", func() bool { return f.Offset() == 1200 })
		// Finish does not wait for the blocked read.
		if err := f.Finish(); err != nil {
			t.Fatal(err)
		}
		checkFile(t, f, small, data, nil, true)
		go pw.Write([]byte("late"))
		if err := <-done; recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("Append after Finish: %v", err)
		}
		checkFile(t, f, small, data, nil, true)
	})
}

// TestHeadVisibility checks that a long streamed body becomes durable, and
// visible to HEAD, while it is still being received.
func TestHeadVisibility(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", spool.NewLayout(0))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := f.Append(context.Background(), pr, 0)
		done <- err
	}()
	data := randomBytes(3*spool.SyncBytes + 12345)
	// A trickle, then silence with the body still open: the idle sync must
	// make it visible.
	if _, err := pw.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Offset 1000 during a stalled body", func() bool { return f.Offset() == 1000 })
	// A burst: synced at least every SyncBytes.
	if _, err := pw.Write(data[1000:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Offset at the end of the data", func() bool { return f.Offset() == int64(len(data)) })
	select {
	case err := <-done:
		t.Fatalf("Append returned before the body ended: %v", err)
	default:
	}
	if got := f.SHA256(); got != sha(data) {
		t.Fatalf("SHA256 mid-body = %s", got)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkFile(t, f, spool.NewLayout(0), data, nil, false)
}

// TestReopen closes and reopens the recording, as after a restart, at every
// stage of its life and checks that nothing is lost.
func TestReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := MustOpen(t, dir, 0)
	f := MustCreate(t, s, "rec", small)
	all := randomBytes(20_000)
	var data []byte
	var released []int32

	usedWant := func() int64 {
		var n int64
		for p := int32(1); len(data) > 0 && p <= small.PartAt(int64(len(data))-1); p++ {
			if !slices.Contains(released, p) {
				off, size := small.Part(p)
				n += min(size, int64(len(data))-off)
			}
		}
		return n
	}
	reopen := func(stage string) {
		t.Helper()
		s, f = MustReopen(t, f, dir, 0, "rec", small)
		if s.Used() != usedWant() {
			t.Fatalf("%s: Used = %d, want %d", stage, s.Used(), usedWant())
		}
		checkFile(t, f, small, data, released, f.Finished())
	}
	appendN := func(n int) {
		t.Helper()
		MustAppend(t, f, all[len(data):len(data)+n])
		data = all[:len(data)+n]
	}
	release := func(parts ...int32) {
		t.Helper()
		for _, n := range parts {
			if err := f.Release(n); err != nil {
				t.Fatal(err)
			}
			if err := f.Release(n); err != nil { // idempotent
				t.Fatal(err)
			}
			released = append(released, n)
		}
	}

	reopen("empty")
	appendN(1500) // part 1 complete, part 2 partial
	reopen("mid-part")
	appendN(500) // parts 1 and 2 complete, at a boundary
	reopen("boundary")
	release(1)
	reopen("first released")
	if _, err := f.Part(1); err == nil {
		t.Fatal("Part(1) after release and restart succeeded")
	}
	appendN(3500) // 5500: parts 3 complete, part 4 (4000..6000) partial
	reopen("tier 2")
	release(3) // out of order
	reopen("gap")
	release(2)
	reopen("all complete released")
	appendN(500) // 6000: part 4 complete
	release(4)
	reopen("every part released")
	if len(f.CompleteParts()) != 0 {
		t.Fatalf("CompleteParts = %v", f.CompleteParts())
	}
	appendN(100) // part 5 starts from the stored hash state
	reopen("after all released")
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	reopen("finished")
	if !f.Finished() {
		t.Fatal("not finished after restart")
	}
	if _, err := f.Append(context.Background(), failReader{t}, -1); recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Fatalf("Append after restart of a finished recording: %v", err)
	}
	release(5)
	reopen("finished and released")
	if f.PartCount() != 5 || f.Offset() != 6100 {
		t.Fatalf("PartCount %d, Offset %d", f.PartCount(), f.Offset())
	}
}

// TestReopen_Crash simulates what a SIGKILL can leave behind.
func TestReopen_Crash(t *testing.T) {
	t.Parallel()

	t.Run("UnsyncedTail", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := MustOpen(t, dir, 0)
		f := MustCreate(t, s, "rec", small)
		data := randomBytes(3000)
		MustAppend(t, f, data[:1500])
		f.Close()
		// Bytes written after the last fsync that made it to disk anyway.
		w, err := os.OpenFile(filepath.Join(dir, "rec", "part-000002"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[1500:1623])
		w.Close()
		s = MustOpen(t, dir, 0)
		f, err = s.Open("rec", small)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkFile(t, f, small, data[:1623], nil, false)
		MustAppend(t, f, data[1623:])
		checkFile(t, f, small, data, nil, false)
	})

	t.Run("HashStateLost", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := MustOpen(t, dir, 0)
		f := MustCreate(t, s, "rec", small)
		data := randomBytes(2000)
		MustAppend(t, f, data)
		// Killed after part 2 was synced but before the state after it was
		// stored, with a torn temporary file.
		os.Remove(filepath.Join(dir, "rec", "hash-000003"))
		os.WriteFile(filepath.Join(dir, "rec", "hash-000003.tmp"), []byte("torn"), 0o600)
		s, f = MustReopen(t, f, dir, 0, "rec", small)
		checkFile(t, f, small, data, nil, false)
		if _, err := os.Stat(filepath.Join(dir, "rec", "hash-000003.tmp")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary file left: %v", err)
		}
		// The state was stored again, so the parts can go.
		for _, n := range []int32{1, 2} {
			if err := f.Release(n); err != nil {
				t.Fatal(err)
			}
		}
		_, f = MustReopen(t, f, dir, 0, "rec", small)
		checkFile(t, f, small, data, []int32{1, 2}, false)
		_ = s
	})

	t.Run("ReleaseInterrupted", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := MustOpen(t, dir, 0)
		f := MustCreate(t, s, "rec", small)
		data := randomBytes(2000)
		MustAppend(t, f, data)
		if err := f.Release(2); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// Killed after the released marker was written, before the part
		// file was deleted: the part is offered again.
		if err := os.WriteFile(filepath.Join(dir, "rec", "part-000002"), data[1000:], 0o600); err != nil {
			t.Fatal(err)
		}
		s = MustOpen(t, dir, 0)
		f, err := s.Open("rec", small)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkFile(t, f, small, data, nil, false)
	})
}

func TestSpool(t *testing.T) {
	t.Parallel()

	t.Run("CreateOpenRemove", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := MustOpen(t, dir, 0)
		f := MustCreate(t, s, "a", small)
		MustAppend(t, f, randomBytes(1500))
		MustCreate(t, s, "b", small)
		if _, err := s.Create("a", small); recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("Create existing: %v", err)
		}
		if _, err := s.Open("a", small); recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("Open while open: %v", err)
		}
		if _, err := s.Open("zzz", small); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("Open absent: %v", err)
		}
		for _, id := range []string{"", ".", "..", "../x", "a/b", ".hidden"} {
			if _, err := s.Create(id, small); recsink.ErrorCode(err) != recsink.EINVALID {
				t.Fatalf("Create(%q): %v", id, err)
			}
		}
		if _, err := s.Create("c", spool.Layout{}); recsink.ErrorCode(err) != recsink.EINVALID {
			t.Fatalf("Create with zero layout: %v", err)
		}
		// The stored layout wins over the one given on reopen.
		b, err := s.Create("l", small)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b, err = s.Open("l", spool.NewLayout(0)); err != nil || b.Layout() != small {
			t.Fatalf("Open: %v, layout %+v", err, b.Layout())
		}
		b.Close()
		if err := s.Remove("l"); err != nil {
			t.Fatal(err)
		}
		ids, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Sort(ids); !slices.Equal(ids, []string{"a", "b"}) {
			t.Fatalf("List = %v", ids)
		}
		if err := s.Remove("a"); err != nil { // open: closed first
			t.Fatal(err)
		}
		if err := s.Remove("a"); err != nil {
			t.Fatal(err)
		}
		if s.Used() != 0 {
			t.Fatalf("Used after Remove = %d", s.Used())
		}
		if ids, _ := s.List(); !slices.Equal(ids, []string{"b"}) {
			t.Fatalf("List = %v", ids)
		}
		if _, err := f.Append(context.Background(), failReader{t}, -1); err == nil {
			t.Fatal("Append to a removed recording succeeded")
		}
		// The ID can be used again.
		MustCreate(t, s, "a", small)
	})

	t.Run("InterruptedRemove", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".removing-x"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, ".removing-x", "part-000001"), []byte("abc"), 0o600)
		s := MustOpen(t, dir, 0)
		if ids, _ := s.List(); len(ids) != 0 || s.Used() != 0 {
			t.Fatalf("List = %v, Used = %d", ids, s.Used())
		}
	})

	t.Run("ReleaseIncomplete", func(t *testing.T) {
		t.Parallel()
		s := MustOpen(t, t.TempDir(), 0)
		f := MustCreate(t, s, "a", small)
		MustAppend(t, f, randomBytes(1500))
		if err := f.Release(2); recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("Release of an incomplete part: %v", err)
		}
	})
}

// TestConcurrentUploader runs an appender, an uploader that reads and
// releases parts as they complete, and a HEAD poller at once (run with -race).
func TestConcurrentUploader(t *testing.T) {
	t.Parallel()
	s := MustOpen(t, t.TempDir(), 0)
	f := MustCreate(t, s, "rec", small)
	data := randomBytes(200_000)

	uploaded := make(chan error, 1)
	go func() {
		uploaded <- func() error {
			for {
				<-f.Ready()
				for _, n := range f.CompleteParts() {
					r, err := f.Part(n)
					if err != nil {
						return err
					}
					got, err := io.ReadAll(r)
					r.Close()
					if err != nil {
						return err
					}
					off, _ := small.Part(n)
					if !bytes.Equal(got, data[off:off+int64(len(got))]) {
						return errors.New("part differs from the input")
					}
					if err := f.Release(n); err != nil {
						return err
					}
				}
				if f.Finished() && len(f.CompleteParts()) == 0 {
					return nil
				}
			}
		}()
	}()
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			if off := f.Offset(); off < last {
				t.Errorf("Offset went back from %d to %d", last, off)
			} else {
				last = off
			}
			_ = f.PartCount()
		}
	}()
	for sent := 0; sent < len(data); {
		n := min(len(data)-sent, 1+rand.IntN(20_000))
		MustAppend(t, f, data[sent:sent+n])
		sent += n
	}
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := <-uploaded; err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-polled
	if f.SHA256() != sha(data) || s.Used() != 0 {
		t.Fatalf("SHA256 %s, Used %d", f.SHA256(), s.Used())
	}
}

// TestHashStateStoredByRelease: the write that completes a part stores no
// hash state (its acknowledgement waits for the part's fsync alone); the
// state at the end of a part is stored when the part is released, before
// its bytes go. Restarts in between, with parts released out of order on
// either side of them, keep the digest of every byte.
func TestHashStateStoredByRelease(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, 0)
	flat := spool.Layout{BaseSize: 1000, TierParts: 1000}
	f := MustCreate(t, s, "rec", flat)
	data := randomBytes(8000) // 5,321 bytes: parts 1..5 complete, part 6 begun
	MustAppend(t, f, data[:5321])
	states := func() []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(f.Dir(), "hash-*"))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		return names
	}
	if got := states(); len(got) != 0 {
		t.Fatalf("hash states %v stored by the writes, want none before a release", got)
	}
	if err := f.Release(3); err != nil {
		t.Fatal(err)
	}
	if got := states(); !slices.Equal(got, []string{"hash-000004"}) {
		t.Fatalf("hash states %v after releasing part 3, want [hash-000004]", got)
	}

	// A restart: parts 1, 2, 4 and 5 are there with no state stored but
	// the one after part 3; the digest is recomputed from them.
	s, f = MustReopen(t, f, dir, 0, "rec", flat)
	if got, want := f.SHA256(), sha(data[:5321]); got != want {
		t.Fatalf("digest after restart %s, want %s", got, want)
	}
	// Released after the restart, in any order, and more bytes written.
	for _, n := range []int32{5, 1, 2} {
		if err := f.Release(n); err != nil {
			t.Fatal(err)
		}
	}
	MustAppend(t, f, data[5321:])
	if err := f.Release(4); err != nil {
		t.Fatal(err)
	}
	_, f = MustReopen(t, f, dir, 0, "rec", flat)
	if got, want := f.SHA256(), sha(data); got != want {
		t.Fatalf("digest after the second restart %s, want %s", got, want)
	}
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	if got, want := f.SHA256(), sha(data); got != want {
		t.Fatalf("digest when finished %s, want %s", got, want)
	}
}

// TestPartChecksum: each part's CRC64NVME is taken as its bytes are written
// and handed to the uploader with the part (recsink.PartChecksummer), so that
// S3 checks the bytes read back from the disk against the bytes received.
// A part with bytes from before a restart has none, to be read for it; nor
// has any other algorithm.
func TestPartChecksum(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, 0)
	f := MustCreate(t, s, "rec", small)
	// Parts of 1000, 1000, 2000, 2000 and 4000 bytes: 1 to 3 complete,
	// and 200 bytes of part 4.
	data := randomBytes(7000)
	MustAppend(t, f, data[:4200])
	crc64 := crc.ByName("CRC64NVME")
	check := func(f *spool.File, n int32, wantKnown bool) {
		t.Helper()
		pr, err := f.Part(n)
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		var _ recsink.PartChecksummer = pr
		got, ok := pr.PartChecksum(recsink.ChecksumCRC64NVME)
		if !wantKnown {
			if ok {
				t.Errorf("part %d: CRC64NVME %s known, want none (bytes from before a restart)", n, got)
			}
			return
		}
		off, _ := small.Part(n)
		want := crc64.Encode(crc64.Checksum(data[off : off+pr.Size()]))
		if !ok || got != want {
			t.Errorf("part %d: CRC64NVME %q, %v; want %q, the CRC of its bytes", n, got, ok, want)
		}
		if v, ok := pr.PartChecksum(recsink.ChecksumCRC32C); ok {
			t.Errorf("part %d: CRC32C %q given, want none: only CRC64NVME is taken", n, v)
		}
	}
	for n := int32(1); n <= 3; n++ {
		check(f, n, true)
	}
	if err := f.Release(1); err != nil {
		t.Fatal(err)
	}

	// A restart in the middle of part 4: parts 2 and 3, complete before it,
	// and part 4, which has bytes from before it, are read for their CRCs.
	_, f = MustReopen(t, f, dir, 0, "rec", small)
	MustAppend(t, f, data[4200:6500])
	check(f, 2, false)
	check(f, 3, false)
	check(f, 4, false)
	// Part 5 is written after the restart, and the stop makes its 1000
	// bytes the last part.
	MustAppend(t, f, data[6500:])
	if err := f.Finish(); err != nil {
		t.Fatal(err)
	}
	check(f, 5, true)
	if err := f.Release(5); err != nil {
		t.Fatal(err)
	}
}
