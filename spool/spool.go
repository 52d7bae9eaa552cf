// Package spool keeps the media that recorders stream to recsink on local
// disk until S3 has confirmed the multipart part that holds it.
//
// A recording's spool is a directory <root>/<id>/ with one file per part
// (part-000001, ...), written strictly in order and made durable before any
// byte in it is acknowledged: by one syncfs for the writes of every
// recording waiting then (group commit, see SyncFS), or by the part's own
// fsync. Beside the parts lie the SHA-256 state at the start of
// each part (hash-000002, ...), so that the recording's digest survives the
// deletion of parts S3 has confirmed, a "released" marker that remembers the
// end of the highest released part, and a "finished" marker written when the
// recording stops. Everything needed to resume is on disk, so a SIGKILL loses
// nothing that was acknowledged.
//
// A full or failing disk (ENOSPC, EDQUOT, EIO) is EUNAVAILABLE with the
// durable offset, never a loss: the bytes after it are cut off and the
// recording carries on at that offset once the disk has room. The spool also
// keeps headroom on its disk (Config.Headroom), refusing new media before the
// disk is full, so that the database beside it can still record the parts
// whose upload frees it. All disk work goes through FS, which tests replace
// with a file system that forgets what was not fsynced at a simulated crash.
package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsink/recsink"
)

// removingPrefix marks a recording directory that Remove has renamed away
// and not yet deleted; such directories are skipped by List and cleaned up by
// Open.
const removingPrefix = ".removing-"

// Config configures a Spool.
type Config struct {
	// Dir is the spool's root folder, created when needed.
	Dir string
	// Limit is the most bytes of spooled data across all recordings
	// (0 = unlimited).
	Limit int64
	// Headroom is the free space, in bytes, that the spool leaves on its
	// file system: once less is free, new media is refused with
	// EUNAVAILABLE, so that the database on the same disk can still record
	// the parts whose upload frees the spool. 0 keeps none; negative means
	// DefaultHeadroom of the disk.
	Headroom int64
	// FS is the file system; OSFS when nil.
	FS FS
	// Logger receives the (rate-limited) notice that media is refused for
	// headroom; slog.Default() when nil.
	Logger *slog.Logger
	// SyncEachFile makes each recording fsync its own part file before an
	// acknowledgement, instead of the group commit that a SyncFS allows
	// (the OS's, on Linux): one syncfs for the writes of every recording
	// waiting then. Group commit costs a fraction of the CPU per write
	// under load, but it also flushes whatever else is written to the
	// spool's file system: set this when the spool shares its disk with
	// heavy writers.
	SyncEachFile bool
}

// DefaultHeadroom returns the headroom kept on a disk of total bytes when
// none is configured: 512 MiB or 10% of the disk, whichever is smaller.
func DefaultHeadroom(total int64) int64 { return min(512<<20, total/10) }

// diskCheckEvery is how long a statfs of the spool's disk is trusted. Bytes
// written since are subtracted from it, so a burst cannot overshoot by more
// than what other processes write meanwhile.
const diskCheckEvery = 250 * time.Millisecond

// headroomLogEvery rate-limits the log of refusals for headroom.
const headroomLogEvery = time.Minute

// Spool is the root of the spool: every recording's directory, and the
// global accounting of disk bytes against the configured limit.
type Spool struct {
	fs       FS
	dir      string
	limit    int64
	headroom int64
	log      *slog.Logger
	used     atomic.Int64
	group    *groupSync // nil: each file fsyncs its own bytes

	// The disk's free space: statfs'd at most every diskCheckEvery, minus
	// the bytes written since.
	diskMu     sync.Mutex
	diskAt     time.Time
	diskFree   int64 // at diskAt
	diskMark   int64 // wrote at diskAt
	wrote      atomic.Int64
	diskErr    error
	refusedLog atomic.Int64 // unix nanos of the last log of a refusal

	mu   sync.Mutex
	open map[string]*File // files handed out and not closed: one writer per recording
	// idle holds the part bytes, counted in used, of the recordings on disk
	// that no File has open (found at start, or closed since): another
	// process (recsink spool purge) may delete them, and reclaim gives their
	// bytes back.
	idle      map[string]int64
	reclaimAt time.Time
}

// reclaimEvery rate-limits the scan for recordings deleted by another
// process, done when the spool is full.
const reclaimEvery = time.Second

// Open opens the spool rooted at dir with limit (see Config), on the OS's
// file system, keeping no headroom.
func Open(dir string, limit int64) (*Spool, error) {
	return OpenConfig(Config{Dir: dir, Limit: limit})
}

// OpenConfig opens the spool that cfg describes, creating its folder when
// needed. It scans the recordings present to count the bytes in use, so that
// the limit holds across restarts.
func OpenConfig(cfg Config) (*Spool, error) {
	fsys := cfg.FS
	if fsys == nil {
		fsys = OSFS
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := cfg.Dir
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, faultOr(err))
	}
	// A spool folder created just now must outlive a crash along with the
	// recordings in it.
	if err := syncDir(fsys, filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, faultOr(err))
	}
	s := &Spool{fs: fsys, dir: dir, limit: cfg.Limit, headroom: cfg.Headroom, log: log,
		open: make(map[string]*File), idle: make(map[string]int64)}
	if sfs, ok := fsys.(SyncFS); ok && !cfg.SyncEachFile {
		sy, err := sfs.OpenSyncer(dir)
		if err != nil {
			return nil, fmt.Errorf("spool: open %s: %w", dir, err)
		}
		s.group = &groupSync{syncer: sy}
		s.group.idle.L = &s.group.mu
	}
	if s.headroom < 0 {
		_, total, err := fsys.DiskUsage(dir)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.headroom = DefaultHeadroom(total)
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", dir, err)
	}
	var used int64
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), removingPrefix) {
			// A Remove was interrupted after its rename: finish it.
			if err := fsys.RemoveAll(path); err != nil {
				return nil, fmt.Errorf("spool: remove %s: %w", path, err)
			}
			continue
		}
		n, err := s.partBytes(path)
		if err != nil {
			return nil, err
		}
		used += n
		s.idle[e.Name()] = n
	}
	s.used.Store(used)
	return s, nil
}

// Headroom returns the free space the spool leaves on its disk.
func (s *Spool) Headroom() int64 { return s.headroom }

// DiskFree returns the bytes free on the spool's file system, as last
// measured (at most diskCheckEvery ago) less what the spool wrote since; -1
// when it cannot be measured. For metrics, and for the headroom check.
func (s *Spool) DiskFree() int64 {
	s.diskMu.Lock()
	defer s.diskMu.Unlock()
	if now := time.Now(); now.Sub(s.diskAt) >= diskCheckEvery {
		free, _, err := s.fs.DiskUsage(s.dir)
		s.diskAt, s.diskFree, s.diskMark, s.diskErr = now, free, s.wrote.Load(), err
	}
	if s.diskErr != nil {
		return -1
	}
	return max(0, s.diskFree-(s.wrote.Load()-s.diskMark))
}

// checkHeadroom returns EUNAVAILABLE when the disk's free space is below the
// headroom, and logs it now and then.
func (s *Spool) checkHeadroom() error {
	if s.headroom <= 0 {
		return nil
	}
	free := s.DiskFree()
	if free < 0 || free >= s.headroom {
		return nil // a disk that cannot be measured is not refused for it
	}
	now := time.Now().UnixNano()
	if last := s.refusedLog.Load(); now-last >= int64(headroomLogEvery) && s.refusedLog.CompareAndSwap(last, now) {
		s.log.Warn("refusing new media: free space on the spool disk is below the headroom kept for the database",
			"dir", s.dir, "free", free, "headroom", s.headroom)
	}
	return &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: RetryAfterDisk,
		Message: "the spool disk is nearly full; try again later"}
}

// Used returns the bytes of unreleased part files across all recordings,
// including space reserved by reads in progress.
func (s *Spool) Used() int64 { return s.used.Load() }

// Limit returns the most bytes the spool may hold (0 = unlimited).
func (s *Spool) Limit() int64 { return s.limit }

// List returns the IDs of the recordings present on disk, for recovery at
// start.
func (s *Spool) List() ([]string, error) {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list %s: %w", s.dir, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Entry describes one recording's spool as found on disk.
type Entry struct {
	ID string
	// Bytes is the size of its unreleased part files, as counted by Used.
	Bytes int64
	// Finished reports whether the recording was finished in the spool
	// (all its bytes received).
	Finished bool
	// ModTime is the latest change in its folder.
	ModTime time.Time
}

// Entries describes every recording's spool present on disk, sorted by ID:
// for listing, and purging the data of failed recordings with Remove.
func (s *Spool) Entries() ([]Entry, error) {
	ids, err := s.List()
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	var list []Entry
	for _, id := range ids {
		dir := filepath.Join(s.dir, id)
		entries, err := s.fs.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("spool: scan %s: %w", dir, err)
		}
		e := Entry{ID: id}
		if fi, err := s.fs.Stat(dir); err == nil {
			e.ModTime = fi.ModTime()
		}
		for _, de := range entries {
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("spool: scan %s: %w", dir, err)
			}
			if fi.ModTime().After(e.ModTime) {
				e.ModTime = fi.ModTime()
			}
			if _, ok := parseName(de.Name(), partPrefix); ok {
				e.Bytes += fi.Size()
			} else if de.Name() == finishedName {
				e.Finished = true
			}
		}
		list = append(list, e)
	}
	return list, nil
}

// Create creates the spool of a new recording. It is ECONFLICT when the
// recording already has one.
func (s *Spool) Create(id string, l Layout) (*File, error) {
	if err := checkArgs(id, l); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[id] != nil {
		return nil, recsink.Errorf(recsink.ECONFLICT, "recording %s already has a spool", id)
	}
	if err := s.checkHeadroom(); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, id)
	if err := s.fs.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return nil, recsink.Errorf(recsink.ECONFLICT, "recording %s already has a spool", id)
	} else if err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, faultOr(err))
	}
	// The layout is stored so that a restart cannot cut parts differently
	// from those already uploaded, even if the configuration changed.
	err := writeFileAtomic(s.fs, dir, layoutName, fmt.Appendf(nil, "%d %d\n", l.BaseSize, l.TierParts))
	if err == nil {
		// The recording's directory must survive a crash before its first ack.
		err = syncDir(s.fs, s.dir)
	}
	if err != nil {
		// Leave no half-made spool behind (a full disk is the likely cause),
		// so that the recording can be created again.
		_ = s.fs.RemoveAll(dir)
		return nil, fmt.Errorf("spool: create %s: %w", id, faultOr(err))
	}
	f := newFile(s, id, dir, l)
	s.open[id] = f
	return f, nil
}

// Open reopens the spool of a recording after a restart, recovering its
// offset, parts and digest from disk. The layout stored by Create wins over l
// (see File.Layout), since the parts on disk and in S3 were cut by it; l is
// used only for a spool without one and may be the zero Layout otherwise. It
// is ENOTFOUND when the recording has no spool, and ECONFLICT when it is
// already open.
func (s *Spool) Open(id string, l Layout) (*File, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[id] != nil {
		return nil, recsink.Errorf(recsink.ECONFLICT, "the spool of recording %s is already open", id)
	}
	dir := filepath.Join(s.dir, id)
	if fi, err := s.fs.Stat(dir); errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, recsink.Errorf(recsink.ENOTFOUND, "recording %s has no spool", id)
	} else if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	}
	switch data, err := readFile(s.fs, filepath.Join(dir, layoutName)); {
	case err == nil:
		var stored Layout
		if _, err := fmt.Sscanf(string(data), "%d %d", &stored.BaseSize, &stored.TierParts); err != nil || !stored.valid() {
			return nil, fmt.Errorf("spool: open %s: layout %q: %v", id, data, err)
		}
		l = stored
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	case !l.valid():
		return nil, recsink.Errorf(recsink.EINVALID, "invalid spool layout %+v", l)
	}
	f := newFile(s, id, dir, l)
	if err := f.recover(); err != nil {
		return nil, err
	}
	s.open[id] = f
	delete(s.idle, id) // the File's releases count it down from here
	return f, nil
}

// Remove deletes everything of the recording, closing its File if open: for
// after the object is complete in the bucket, or deleted. Idempotent.
func (s *Spool) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	s.mu.Lock()
	f := s.open[id]
	s.mu.Unlock()
	if f != nil {
		// Its bytes are about to go: a failed sync no longer matters.
		_ = f.Close()
	}
	dir := filepath.Join(s.dir, id)
	n, err := s.partBytes(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	// Rename first so that a crash halfway through the deletion cannot leave
	// a recording that looks present but has lost parts.
	trash := filepath.Join(s.dir, removingPrefix+id)
	if err := s.fs.RemoveAll(trash); err != nil { // left by an earlier crash
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	if err := s.fs.Rename(dir, trash); err != nil {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	if err := syncDir(s.fs, s.dir); err != nil {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	s.used.Add(-n)
	s.mu.Lock()
	delete(s.idle, id)
	s.mu.Unlock()
	if err := s.fs.RemoveAll(trash); err != nil {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	return nil
}

// reserve claims up to n bytes of the spool's space and returns how many it
// got: 0 when the spool is full. The caller gives back what it does not write.
func (s *Spool) reserve(n int64) int64 {
	if s.limit <= 0 {
		s.used.Add(n)
		return n
	}
	for reclaimed := false; ; {
		u := s.used.Load()
		avail := s.limit - u
		if avail <= 0 && !reclaimed {
			reclaimed = true
			if s.reclaim() {
				continue
			}
		}
		if avail <= 0 {
			return 0
		}
		if n > avail {
			n = avail
		}
		if s.used.CompareAndSwap(u, u+n) {
			return n
		}
	}
}

// reclaim gives back the bytes of idle recordings that another process has
// deleted, at most every reclaimEvery, and reports whether it did.
func (s *Spool) reclaim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.reclaimAt) < reclaimEvery {
		return false
	}
	s.reclaimAt = time.Now()
	found := false
	for id, n := range s.idle {
		if _, err := s.fs.Stat(filepath.Join(s.dir, id)); errors.Is(err, fs.ErrNotExist) {
			s.used.Add(-n)
			delete(s.idle, id)
			found = true
		}
	}
	return found
}

// forget drops a closed File from the open set; its bytes are idle from now
// on.
func (s *Spool) forget(f *File) {
	n, err := s.partBytes(f.dir)
	s.mu.Lock()
	if s.open[f.id] == f {
		delete(s.open, f.id)
		if err == nil {
			s.idle[f.id] = n
		}
	}
	s.mu.Unlock()
}

// partBytes returns the total size of the part files in a recording's
// directory.
func (s *Spool) partBytes(dir string) (int64, error) {
	entries, err := s.fs.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("spool: scan %s: %w", dir, err)
	}
	var n int64
	for _, e := range entries {
		if _, ok := parseName(e.Name(), partPrefix); !ok {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		} else if err != nil {
			return 0, fmt.Errorf("spool: scan %s: %w", dir, err)
		}
		n += fi.Size()
	}
	return n, nil
}

// checkArgs validates a recording ID and a layout.
func checkArgs(id string, l Layout) error {
	if err := checkID(id); err != nil {
		return err
	}
	if !l.valid() {
		return recsink.Errorf(recsink.EINVALID, "invalid spool layout %+v", l)
	}
	return nil
}

// checkID keeps a recording ID from naming anything outside its directory.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.HasPrefix(id, ".") || strings.ContainsAny(id, `/\`+"\x00") {
		return recsink.Errorf(recsink.EINVALID, "invalid recording ID %q for the spool", id)
	}
	return nil
}
