// Package spool keeps the media that recorders stream to recsink on local
// disk until S3 has confirmed the multipart part that holds it.
//
// A recording's spool is a directory <root>/<id>/ with one file per part
// (part-000001, ...), written strictly in order and fsynced before any byte in
// it is acknowledged. Beside the parts lie the SHA-256 state at the start of
// each part (hash-000002, ...), so that the recording's digest survives the
// deletion of parts S3 has confirmed, a "released" marker that remembers the
// end of the highest released part, and a "finished" marker written when the
// recording stops. Everything needed to resume is on disk, so a SIGKILL loses
// nothing that was acknowledged.
package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/recsink/recsink"
)

// removingPrefix marks a recording directory that Remove has renamed away
// and not yet deleted; such directories are skipped by List and cleaned up by
// Open.
const removingPrefix = ".removing-"

// Spool is the root of the spool: every recording's directory, and the
// global accounting of disk bytes against the configured limit.
type Spool struct {
	dir   string
	limit int64
	used  atomic.Int64

	mu   sync.Mutex
	open map[string]*File // files handed out and not closed: one writer per recording
}

// Open opens the spool rooted at dir, creating it when needed. limit is the
// most bytes of spooled data across all recordings (0 = unlimited). It scans
// the recordings present to count the bytes in use, so that the limit holds
// across restarts.
func Open(dir string, limit int64) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	s := &Spool{dir: dir, limit: limit, open: make(map[string]*File)}
	entries, err := os.ReadDir(dir)
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
			if err := os.RemoveAll(path); err != nil {
				return nil, fmt.Errorf("spool: remove %s: %w", path, err)
			}
			continue
		}
		n, err := partBytes(path)
		if err != nil {
			return nil, err
		}
		used += n
	}
	s.used.Store(used)
	return s, nil
}

// Used returns the bytes of unreleased part files across all recordings,
// including space reserved by reads in progress.
func (s *Spool) Used() int64 { return s.used.Load() }

// Limit returns the most bytes the spool may hold (0 = unlimited).
func (s *Spool) Limit() int64 { return s.limit }

// List returns the IDs of the recordings present on disk, for recovery at
// start.
func (s *Spool) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
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
	dir := filepath.Join(s.dir, id)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return nil, recsink.Errorf(recsink.ECONFLICT, "recording %s already has a spool", id)
	} else if err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	// The layout is stored so that a restart cannot cut parts differently
	// from those already uploaded, even if the configuration changed.
	if err := writeFileAtomic(dir, layoutName, fmt.Appendf(nil, "%d %d\n", l.BaseSize, l.TierParts)); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", id, err)
	}
	// The recording's directory must survive a crash before its first ack.
	if err := syncDir(s.dir); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", id, err)
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
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, recsink.Errorf(recsink.ENOTFOUND, "recording %s has no spool", id)
	} else if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", id, err)
	}
	switch data, err := os.ReadFile(filepath.Join(dir, layoutName)); {
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
		if err := f.Close(); err != nil {
			return err
		}
	}
	dir := filepath.Join(s.dir, id)
	n, err := partBytes(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	// Rename first so that a crash halfway through the deletion cannot leave
	// a recording that looks present but has lost parts.
	trash := filepath.Join(s.dir, removingPrefix+id)
	if err := os.RemoveAll(trash); err != nil { // left by an earlier crash
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("spool: remove %s: %w", id, err)
	}
	s.used.Add(-n)
	if err := os.RemoveAll(trash); err != nil {
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
	for {
		u := s.used.Load()
		avail := s.limit - u
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

// forget drops a closed File from the open set.
func (s *Spool) forget(f *File) {
	s.mu.Lock()
	if s.open[f.id] == f {
		delete(s.open, f.id)
	}
	s.mu.Unlock()
}

// partBytes returns the total size of the part files in a recording's
// directory.
func partBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
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

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
