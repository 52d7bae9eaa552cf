package spool

import (
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StrictMemFS is an in-memory FS that remembers what was fsynced, after
// pebble's vfs.NewStrictMem: Crash(false) forgets every write not yet synced,
// file data and directory entries alike (a new, renamed or removed entry
// holds only once its directory is synced), as a power cut would; Crash(true)
// keeps everything, as after a SIGKILL, where the page cache survives. Either
// way, files opened before the crash fail from then on.
//
// FailAfter(n) makes every operation after the next n changes fail with EIO
// and change nothing: the disk state freezes at that point, for a crash in
// the middle of an operation (Crash afterwards), or for a failing disk
// (Revive afterwards). SetCapacity makes writes beyond a size fail with
// ENOSPC. It is safe for concurrent use. Paths are absolute, "/"-separated.
type StrictMemFS struct {
	mu       sync.Mutex
	root     *memNode
	gen      int   // bumped by Crash: handles of an older generation fail
	budget   int   // changes left before failing; < 0: unlimited
	capacity int64 // bytes of file data allowed; 0: unlimited
}

var _ FS = (*StrictMemFS)(nil)

// NewStrictMemFS returns an empty StrictMemFS whose root directory exists.
func NewStrictMemFS() *StrictMemFS {
	return &StrictMemFS{root: newMemDir(), budget: -1}
}

type memNode struct {
	isDir   bool
	modTime time.Time
	// A file's bytes, and those of its last sync.
	data, synced []byte
	// A directory's entries, and those of its last sync.
	children, syncedChildren map[string]*memNode
}

func newMemDir() *memNode {
	return &memNode{isDir: true, modTime: time.Now(), children: map[string]*memNode{}, syncedChildren: map[string]*memNode{}}
}

// Crash simulates a crash: handles opened before it fail from now on, and
// unless keepUnsynced everything not synced is forgotten. It ends FailAfter.
func (m *StrictMemFS) Crash(keepUnsynced bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.budget = -1
	if !keepUnsynced {
		resetToSynced(m.root)
	}
}

func resetToSynced(n *memNode) {
	if !n.isDir {
		n.data = slices.Clone(n.synced)
		return
	}
	n.children = maps.Clone(n.syncedChildren)
	for _, c := range n.children {
		resetToSynced(c)
	}
}

// FailAfter lets n more changes happen, then fails every operation with EIO
// until Crash or Revive.
func (m *StrictMemFS) FailAfter(n int) {
	m.mu.Lock()
	m.budget = n
	m.mu.Unlock()
}

// Revive ends FailAfter without a crash: a disk that failed for a while.
func (m *StrictMemFS) Revive() {
	m.mu.Lock()
	m.budget = -1
	m.mu.Unlock()
}

// SetCapacity limits the bytes of file data (0 = unlimited).
func (m *StrictMemFS) SetCapacity(n int64) {
	m.mu.Lock()
	m.capacity = n
	m.mu.Unlock()
}

// Used returns the bytes of file data held.
func (m *StrictMemFS) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return usedBytes(m.root)
}

func usedBytes(n *memNode) int64 {
	if !n.isDir {
		return int64(len(n.data))
	}
	var u int64
	for _, c := range n.children {
		u += usedBytes(c)
	}
	return u
}

// dead reports whether operations fail now.
func (m *StrictMemFS) dead() bool { return m.budget == 0 }

// change accounts for one change: it fails when the budget is spent.
func (m *StrictMemFS) change(op, name string) error {
	if m.budget == 0 {
		return &fs.PathError{Op: op, Path: name, Err: syscall.EIO}
	}
	if m.budget > 0 {
		m.budget--
	}
	return nil
}

func (m *StrictMemFS) check(op, name string) error {
	if m.dead() {
		return &fs.PathError{Op: op, Path: name, Err: syscall.EIO}
	}
	return nil
}

// lookup returns the node at name and its parent directory.
func (m *StrictMemFS) lookup(name string) (parent, n *memNode, base string, err error) {
	name = path.Clean(name)
	if !path.IsAbs(name) {
		return nil, nil, "", fs.ErrInvalid
	}
	if name == "/" {
		return nil, m.root, "/", nil
	}
	dir := m.root
	parts := strings.Split(name[1:], "/")
	for i, p := range parts {
		c := dir.children[p]
		if i == len(parts)-1 {
			return dir, c, p, nil
		}
		if c == nil || !c.isDir {
			return nil, nil, "", fs.ErrNotExist
		}
		dir = c
	}
	panic("unreachable")
}

// OpenFile implements FS.
func (m *StrictMemFS) OpenFile(name string, flag int, perm fs.FileMode) (FSFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("open", name); err != nil {
		return nil, err
	}
	parent, n, base, err := m.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	switch {
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n == nil:
		if err := m.change("open", name); err != nil {
			return nil, err
		}
		n = &memNode{modTime: time.Now()}
		parent.children[base] = n
		parent.modTime = time.Now()
	case n.isDir && flag&(os.O_WRONLY|os.O_RDWR) != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	if flag&os.O_TRUNC != 0 && len(n.data) > 0 {
		if err := m.change("truncate", name); err != nil {
			return nil, err
		}
		n.data = nil
	}
	return &memFile{m: m, n: n, name: name, gen: m.gen, flag: flag}, nil
}

// Mkdir implements FS.
func (m *StrictMemFS) Mkdir(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mkdir(name)
}

func (m *StrictMemFS) mkdir(name string) error {
	if err := m.check("mkdir", name); err != nil {
		return err
	}
	parent, n, base, err := m.lookup(name)
	switch {
	case err != nil:
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	case n != nil:
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	if err := m.change("mkdir", name); err != nil {
		return err
	}
	parent.children[base] = newMemDir()
	parent.modTime = time.Now()
	return nil
}

// MkdirAll implements FS.
func (m *StrictMemFS) MkdirAll(name string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	for i := 1; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		_, n, _, err := m.lookup(name[:i])
		if err != nil {
			return &fs.PathError{Op: "mkdir", Path: name, Err: err}
		}
		if n == nil {
			if err := m.mkdir(name[:i]); err != nil {
				return err
			}
		} else if !n.isDir {
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
	}
	return nil
}

// Rename implements FS.
func (m *StrictMemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("rename", oldname); err != nil {
		return err
	}
	op, n, obase, err := m.lookup(oldname)
	if err == nil && n == nil {
		err = fs.ErrNotExist
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	np, _, nbase, err := m.lookup(newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if err := m.change("rename", oldname); err != nil {
		return err
	}
	delete(op.children, obase)
	np.children[nbase] = n
	op.modTime, np.modTime = time.Now(), time.Now()
	return nil
}

// Remove implements FS.
func (m *StrictMemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("remove", name); err != nil {
		return err
	}
	parent, n, base, err := m.lookup(name)
	switch {
	case err != nil:
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	case n == nil:
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	case n.isDir && len(n.children) > 0:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	if err := m.change("remove", name); err != nil {
		return err
	}
	delete(parent.children, base)
	parent.modTime = time.Now()
	return nil
}

// RemoveAll implements FS. Like os.RemoveAll it removes the entries inside a
// directory one by one, each a change of its own.
func (m *StrictMemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("remove", name); err != nil {
		return err
	}
	parent, n, base, err := m.lookup(name)
	if err != nil || n == nil {
		return nil
	}
	var removeAll func(n *memNode) error
	removeAll = func(n *memNode) error {
		for _, k := range slices.Sorted(maps.Keys(n.children)) {
			c := n.children[k]
			if c.isDir {
				if err := removeAll(c); err != nil {
					return err
				}
			}
			if err := m.change("remove", name); err != nil {
				return err
			}
			delete(n.children, k)
		}
		return nil
	}
	if n.isDir {
		if err := removeAll(n); err != nil {
			return err
		}
	}
	if err := m.change("remove", name); err != nil {
		return err
	}
	delete(parent.children, base)
	return nil
}

// ReadDir implements FS.
func (m *StrictMemFS) ReadDir(name string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("readdir", name); err != nil {
		return nil, err
	}
	_, n, _, err := m.lookup(name)
	if err == nil && (n == nil || !n.isDir) {
		err = fs.ErrNotExist
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	var list []fs.DirEntry
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		list = append(list, fs.FileInfoToDirEntry(memInfo(k, n.children[k])))
	}
	return list, nil
}

// Stat implements FS.
func (m *StrictMemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("stat", name); err != nil {
		return nil, err
	}
	_, n, base, err := m.lookup(name)
	if err == nil && n == nil {
		err = fs.ErrNotExist
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return memInfo(base, n), nil
}

// DiskUsage implements FS: the capacity left, or 1 TiB without one.
func (m *StrictMemFS) DiskUsage(name string) (free, total int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.capacity == 0 {
		return 1 << 40, 1 << 40, nil
	}
	return max(0, m.capacity-usedBytes(m.root)), m.capacity, nil
}

// memFile is an open file or directory of a StrictMemFS.
type memFile struct {
	m      *StrictMemFS
	n      *memNode
	name   string
	gen    int
	flag   int
	pos    int64
	closed bool
}

// valid fails a handle closed, or opened before a crash; m.mu is held.
func (f *memFile) valid(op string) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.gen != f.m.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EIO}
	}
	return f.m.check(op, f.name)
}

func (f *memFile) Read(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	n, err := f.readAt(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.readAt(p, off)
}

func (f *memFile) readAt(p []byte, off int64) (int, error) {
	if err := f.valid("read"); err != nil {
		return 0, err
	}
	if f.n.isDir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.valid("write"); err != nil {
		return 0, err
	}
	if f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	if err := f.m.change("write", f.name); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		f.pos = int64(len(f.n.data))
	}
	var err error
	if c := f.m.capacity; c > 0 {
		room := c - usedBytes(f.m.root)
		if grow := f.pos + int64(len(p)) - int64(len(f.n.data)); grow > room {
			p = p[:max(0, int64(len(p))-(grow-room))]
			err = &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	if end := f.pos + int64(len(p)); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[f.pos:], p)
	f.pos += int64(len(p))
	f.n.modTime = time.Now()
	return len(p), err
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.valid("sync"); err != nil {
		return err
	}
	if err := f.m.change("sync", f.name); err != nil {
		return err
	}
	if f.n.isDir {
		f.n.syncedChildren = maps.Clone(f.n.children)
	} else {
		f.n.synced = slices.Clone(f.n.data)
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.valid("truncate"); err != nil {
		return err
	}
	if err := f.m.change("truncate", f.name); err != nil {
		return err
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.valid("stat"); err != nil {
		return nil, err
	}
	return memInfo(path.Base(f.name), f.n), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// memInfo is a snapshot of a node's metadata.
func memInfo(name string, n *memNode) fs.FileInfo {
	mode := fs.FileMode(0o600)
	if n.isDir {
		mode = fs.ModeDir | 0o700
	}
	return &memFileInfo{name: name, size: int64(len(n.data)), mode: mode, modTime: n.modTime}
}

type memFileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i *memFileInfo) Name() string       { return i.name }
func (i *memFileInfo) Size() int64        { return i.size }
func (i *memFileInfo) Mode() fs.FileMode  { return i.mode }
func (i *memFileInfo) ModTime() time.Time { return i.modTime }
func (i *memFileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *memFileInfo) Sys() any           { return nil }

var _ SyncFS = (*StrictMemFS)(nil)

// OpenSyncer returns a Syncer that makes every file and folder of the file
// system durable at once, as syncfs(2) does. It fails after a Crash, as the
// old process's handles do.
func (m *StrictMemFS) OpenSyncer(dir string) (Syncer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("open", dir); err != nil {
		return nil, err
	}
	return &memSyncer{m: m, gen: m.gen}, nil
}

type memSyncer struct {
	m   *StrictMemFS
	gen int
}

func (s *memSyncer) SyncAll() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.gen != s.m.gen {
		return &fs.PathError{Op: "syncfs", Path: "/", Err: syscall.EIO}
	}
	if err := s.m.change("syncfs", "/"); err != nil {
		return err
	}
	syncTree(s.m.root)
	return nil
}

// syncTree makes n and everything under it durable.
func syncTree(n *memNode) {
	if !n.isDir {
		n.synced = slices.Clone(n.data)
		return
	}
	n.syncedChildren = maps.Clone(n.children)
	for _, c := range n.children {
		syncTree(c)
	}
}
