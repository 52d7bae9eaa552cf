package spool_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/spool"
)

// gatedFS is a StrictMemFS whose group syncs can be held, or failed, and
// whose part files' own fsyncs are counted, and failed when asked.
type gatedFS struct {
	*spool.StrictMemFS
	hold     chan struct{} // when set, the next SyncAll signals entered and waits for it to close
	entered  chan struct{}
	failNext atomic.Bool // the next SyncAll fails with EIO

	mu        sync.Mutex
	ownSyncs  map[string]int  // part path → its own fsyncs
	failOwnOf map[string]bool // part path prefix → its next own fsync fails
}

func newGatedFS() *gatedFS {
	return &gatedFS{StrictMemFS: spool.NewStrictMemFS(), ownSyncs: map[string]int{}, failOwnOf: map[string]bool{}}
}

func (g *gatedFS) OpenSyncer(dir string) (spool.Syncer, error) {
	inner, err := g.StrictMemFS.OpenSyncer(dir)
	if err != nil {
		return nil, err
	}
	return syncerFunc(func() error {
		g.mu.Lock()
		hold := g.hold
		g.hold = nil
		g.mu.Unlock()
		if hold != nil {
			close(g.entered)
			<-hold
		}
		if g.failNext.CompareAndSwap(true, false) {
			return &fs.PathError{Op: "syncfs", Path: dir, Err: syscall.EIO}
		}
		return inner.SyncAll()
	}), nil
}

func (g *gatedFS) OpenFile(name string, flag int, perm fs.FileMode) (spool.FSFile, error) {
	f, err := g.StrictMemFS.OpenFile(name, flag, perm)
	if err != nil || !strings.Contains(name, "/part-") {
		return f, err
	}
	return &countedFile{FSFile: f, g: g, name: name}, nil
}

// holdNext makes the next SyncAll wait until the returned func is called;
// entered is closed once it waits.
func (g *gatedFS) holdNext() (entered <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	hold := make(chan struct{})
	g.hold, g.entered = hold, make(chan struct{})
	return g.entered, func() { close(hold) }
}

func (g *gatedFS) own(prefix string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for p, c := range g.ownSyncs {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

type syncerFunc func() error

func (f syncerFunc) SyncAll() error { return f() }

type countedFile struct {
	spool.FSFile
	g    *gatedFS
	name string
}

func (c *countedFile) Sync() error {
	c.g.mu.Lock()
	c.g.ownSyncs[c.name]++
	fail := false
	for p, on := range c.g.failOwnOf {
		if on && strings.HasPrefix(c.name, p) {
			fail = true
			c.g.failOwnOf[p] = false
		}
	}
	c.g.mu.Unlock()
	if fail {
		return &fs.PathError{Op: "sync", Path: c.name, Err: syscall.EIO}
	}
	return c.FSFile.Sync()
}

// openGated opens a spool on a gatedFS with n recordings, each with one byte
// appended, so that their parts are open.
func openGated(t *testing.T, n int) (*gatedFS, *spool.Spool, []*spool.File) {
	t.Helper()
	g := newGatedFS()
	s, err := spool.OpenConfig(spool.Config{Dir: "/spool", FS: g})
	if err != nil {
		t.Fatal(err)
	}
	files := make([]*spool.File, n)
	for i := range files {
		files[i] = MustCreate(t, s, fmt.Sprintf("rec%02d", i), small)
		if off, err := files[i].Append(context.Background(), bytes.NewReader([]byte{1}), 0); err != nil || off != 1 {
			t.Fatalf("first append: offset %d, %v", off, err)
		}
	}
	return g, s, files
}

// TestGroupSyncShares: the writes that wait while a sync runs share the next
// one, and each is acknowledged only once a sync that began after it ended.
func TestGroupSyncShares(t *testing.T) {
	t.Parallel()
	const n = 20
	g, s, files := openGated(t, n)
	waits0, syncs0 := s.SyncStats()
	ctx := context.Background()

	entered, release := g.holdNext()
	offsets := make([]atomic.Int64, n)
	var wg sync.WaitGroup
	appendOne := func(i int) {
		defer wg.Done()
		off, err := files[i].Append(ctx, bytes.NewReader([]byte{2}), 1)
		if err != nil {
			t.Errorf("rec%02d: %v", i, err)
		}
		offsets[i].Store(off)
	}
	wg.Add(1)
	go appendOne(0)
	<-entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go appendOne(i)
	}
	waitFor(t, "every append waiting for a sync", func() bool {
		w, _ := s.SyncStats()
		return w-waits0 == n
	})
	for i := range files {
		if off := files[i].Offset(); off != 1 {
			t.Fatalf("rec%02d acknowledged offset %d before its sync", i, off)
		}
	}
	release()
	wg.Wait()
	waits, syncs := s.SyncStats()
	if waits-waits0 != n || syncs-syncs0 != 2 {
		t.Fatalf("%d writes made durable by %d syncs, want %d by 2: the first, and one shared by the %d that waited for it", waits-waits0, syncs-syncs0, n, n-1)
	}
	g.Crash(false) // a power cut keeps only what was synced
	s2, err := spool.OpenConfig(spool.Config{Dir: "/spool", FS: g})
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		f, err := s2.Open(fmt.Sprintf("rec%02d", i), small)
		if err != nil {
			t.Fatal(err)
		}
		if off := f.Offset(); off != 2 || offsets[i].Load() != 2 {
			t.Errorf("rec%02d: offset %d after a power cut, %d acknowledged; want 2", i, off, offsets[i].Load())
		}
	}
}

// TestGroupSyncFailureReachesEveryFile: syncfs reports a lost write once, to
// whichever sync comes next. A recording whose bytes were lost but whose
// own sync came later must not be acknowledged: after a failed group sync
// each file fsyncs itself once, which reports its own loss.
func TestGroupSyncFailureReachesEveryFile(t *testing.T) {
	t.Parallel()
	g, _, files := openGated(t, 3)
	a, b, c := files[0], files[1], files[2]
	ctx := context.Background()

	g.failNext.Store(true)
	if off, err := a.Append(ctx, bytes.NewReader([]byte{2}), 1); recsink.ErrorCode(err) != recsink.EUNAVAILABLE || off != 1 {
		t.Fatalf("append to a during a failed sync: offset %d, %v; want 1 and EUNAVAILABLE", off, err)
	}
	// b's bytes were the ones lost: its own fsync says so.
	g.mu.Lock()
	g.failOwnOf["/spool/rec01/"] = true
	g.mu.Unlock()
	if off, err := b.Append(ctx, bytes.NewReader([]byte{2}), 1); recsink.ErrorCode(err) != recsink.EUNAVAILABLE || off != 1 {
		t.Fatalf("append to b after another recording's sync failed: offset %d, %v; want 1 and EUNAVAILABLE (its own fsync failed)", off, err)
	}
	// c lost nothing: one fsync of its own, and it is acknowledged.
	ownC := g.own("/spool/rec02/")
	if off, err := c.Append(ctx, bytes.NewReader([]byte{2}), 1); err != nil || off != 2 {
		t.Fatalf("append to c: offset %d, %v", off, err)
	}
	if got := g.own("/spool/rec02/") - ownC; got != 1 {
		t.Fatalf("c fsynced itself %d times after the failed group sync, want 1", got)
	}
	// a and b carry on at their durable offsets; then no write needs an
	// fsync of its own any more.
	for i, f := range files[:2] {
		if off, err := f.Append(ctx, bytes.NewReader([]byte{2}), 1); err != nil || off != 2 {
			t.Fatalf("rec%02d after the fault: offset %d, %v", i, off, err)
		}
	}
	own := g.own("/spool/")
	for i, f := range files {
		if off, err := f.Append(ctx, bytes.NewReader([]byte{3}), 2); err != nil || off != 3 {
			t.Fatalf("rec%02d: offset %d, %v", i, off, err)
		}
	}
	if got := g.own("/spool/") - own; got != 0 {
		t.Fatalf("%d own fsyncs once every file had checked itself, want 0", got)
	}
}

// TestPartChecksumAfterRollback: bytes written and then cut off after a
// failed sync leave no trace in the part's CRC.
func TestPartChecksumAfterRollback(t *testing.T) {
	t.Parallel()
	g, _, files := openGated(t, 1)
	f := files[0]
	ctx := context.Background()
	g.failNext.Store(true)
	if off, err := f.Append(ctx, bytes.NewReader([]byte{9, 9, 9}), 1); recsink.ErrorCode(err) != recsink.EUNAVAILABLE || off != 1 {
		t.Fatalf("append during a failed sync: offset %d, %v; want 1 and EUNAVAILABLE", off, err)
	}
	rest := randomBytes(999) // the rest of part 1, from the durable offset
	if off, err := f.Append(ctx, bytes.NewReader(rest), 1); err != nil || off != 1000 {
		t.Fatalf("append after the fault: offset %d, %v; want 1000", off, err)
	}
	pr, err := f.Part(1)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	crc64 := crc.ByName("CRC64NVME")
	want := crc64.Encode(crc64.Checksum(append([]byte{1}, rest...)))
	if got, ok := pr.PartChecksum(recsink.ChecksumCRC64NVME); !ok || got != want {
		t.Errorf("part 1's CRC64NVME after a rollback: %q, %v; want %q, of the bytes kept", got, ok, want)
	}
}
