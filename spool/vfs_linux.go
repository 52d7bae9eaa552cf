package spool

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

var _ SyncFS = osFS{}

// OpenSyncer opens dir to syncfs(2) the file system that holds it. Since
// Linux 5.8 syncfs reports a write that failed on that file system (EIO,
// ENOSPC) once to each open folder, as fsync does to each open file: the
// spool's Syncer sees every failure.
func (osFS) OpenSyncer(dir string) (Syncer, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return syncfs{d}, nil
}

type syncfs struct{ d *os.File }

func (s syncfs) Close() error { return s.d.Close() }

func (s syncfs) SyncAll() error {
	err := unix.Syncfs(int(s.d.Fd()))
	runtime.KeepAlive(s.d)
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: s.d.Name(), Err: err}
	}
	return nil
}
