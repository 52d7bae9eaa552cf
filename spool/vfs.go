package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/recsink/recsink"
)

// FS is what the spool needs of a file system. The spool does all its disk
// work through it, so that a test can put it on a file system that forgets,
// at a simulated crash, everything not yet fsynced (pebble's vfs.NewStrictMem
// is the model). A directory's new, renamed and removed entries are durable
// only once the directory itself is synced: open it with OpenFile(O_RDONLY)
// and call Sync.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (FSFile, error)
	Mkdir(name string, perm fs.FileMode) error
	MkdirAll(name string, perm fs.FileMode) error
	Rename(oldname, newname string) error
	Remove(name string) error
	RemoveAll(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// DiskUsage returns the bytes available to the spool and the total size
	// of the file system that holds name.
	DiskUsage(name string) (free, total int64, err error)
}

// FSFile is an open file or directory of an FS.
type FSFile interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	Sync() error
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
}

// OSFS is the operating system's file system, the spool's default.
var OSFS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (FSFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}

func (osFS) Mkdir(name string, perm fs.FileMode) error    { return os.Mkdir(name, perm) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }

func (osFS) DiskUsage(name string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(name, &st); err != nil {
		return 0, 0, &fs.PathError{Op: "statfs", Path: name, Err: err}
	}
	// Bavail, not Bfree: the blocks reserved for root are no room to count
	// on, and the database beside the spool may not run as root.
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// openFile opens name for reading.
func openFile(fsys FS, name string) (FSFile, error) { return fsys.OpenFile(name, os.O_RDONLY, 0) }

// readFile returns the contents of name.
func readFile(fsys FS, name string) ([]byte, error) {
	f, err := openFile(fsys, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(fsys FS, dir string) error {
	d, err := openFile(fsys, dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// RetryAfterDisk is the Retry-After hint, in seconds, of a full or failing
// spool disk.
const RetryAfterDisk = 10

// diskFault reports whether err is the disk's fault rather than ours: full
// (ENOSPC, EDQUOT) or failing (EIO). Such an error must not lose what was
// acknowledged nor keep the recording from carrying on once the disk is
// back.
func diskFault(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO)
}

// unavailable returns the error a recorder sees for a disk fault: a 503 with
// Retry-After in plain words, still wrapping err for the log and errors.Is.
func unavailable(err error) error {
	msg := "the spool disk is full; try again later"
	if errors.Is(err, syscall.EIO) {
		msg = "the spool disk failed a write; try again later"
	}
	return fmt.Errorf("%w: %w", err, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: RetryAfterDisk, Message: msg})
}

// faultOr returns unavailable(err) for a disk fault and err otherwise.
func faultOr(err error) error {
	if err != nil && diskFault(err) {
		return unavailable(err)
	}
	return err
}
