package spool

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// A SyncFS is an FS that can make durable, in one call, everything written
// to the file system that holds a folder: the bytes of every file and the
// names created, renamed or removed (Linux's syncfs(2)). The spool then
// commits in groups: the writes of every recording that wait for their
// fsync are made durable together, by one sync, instead of one fsync each.
type SyncFS interface {
	FS
	// OpenSyncer returns the Syncer of the file system that holds dir.
	OpenSyncer(dir string) (Syncer, error)
}

// A Syncer makes durable everything written to its file system so far, and
// reports any write to it that failed since its last call (as syncfs does
// since Linux 5.8).
type Syncer interface {
	SyncAll() error
}

// groupSync commits in groups, as databases commit their write-ahead logs
// (PostgreSQL's and pebble's group commit): a caller waits for a sync that
// starts after it asked, and every caller that asks while a sync runs shares
// the next one. Under load the syncs come back to back, each covering the
// writes of many recordings; alone, a caller waits for one sync, as with an
// fsync of its own. The goroutine that syncs ends when nobody waits.
type groupSync struct {
	syncer Syncer

	mu      sync.Mutex
	idle    sync.Cond  // on mu: running has turned false
	next    *syncBatch // the callers the next sync covers; nil when none waits
	running bool       // the syncing goroutine runs
	closed  bool       // by Spool.Close: callers fsync on their own

	// failures counts the syncs that failed. syncfs reports a failed write
	// once, to whichever batch syncs next, and that batch need not hold the
	// file whose bytes were lost: a file that has not synced on its own
	// since the count changed fsyncs itself too (File.syncPart), and its
	// own fsync reports its own lost bytes.
	failures atomic.Int64

	syncs, waits atomic.Int64 // for SyncStats
}

// syncBatch is the callers that one sync covers, and its result.
type syncBatch struct {
	done chan struct{}
	err  error
}

// errGroupClosed is sync's answer once the spool is closed.
var errGroupClosed = errors.New("spool: closed")

// sync returns once everything written before the call is durable, or with
// the error of the sync that was to make it so; errGroupClosed after close.
func (g *groupSync) sync() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errGroupClosed
	}
	g.waits.Add(1)
	b := g.next
	if b == nil {
		b = &syncBatch{done: make(chan struct{})}
		g.next = b
	}
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	<-b.done
	return b.err
}

// run syncs, one batch after the other, until no caller waits.
func (g *groupSync) run() {
	for {
		g.mu.Lock()
		b := g.next
		g.next = nil
		if b == nil {
			g.running = false
			g.idle.Broadcast()
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		b.err = g.syncer.SyncAll()
		if b.err != nil {
			g.failures.Add(1)
		}
		g.syncs.Add(1)
		close(b.done)
	}
}

// close waits for the syncs asked for, then closes the Syncer.
func (g *groupSync) close() error {
	g.mu.Lock()
	g.closed = true
	for g.running {
		g.idle.Wait()
	}
	g.mu.Unlock()
	if c, ok := g.syncer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Close lets go of the spool's folder, which group commit holds open, so
// that its file system can be unmounted. Files still open then fsync on
// their own; nothing else changes. Close is for the end of the process or
// of a test: call it once, after the service has stopped.
func (s *Spool) Close() error {
	if s.group == nil {
		return nil
	}
	return s.group.close()
}

// SyncStats counts the waits for durability that the spool's writes made
// and the syncs that served them: with group commit, waits/syncs is the
// writes made durable per sync. Without it (SyncEachFile, or a file system
// that cannot), both are 0.
func (s *Spool) SyncStats() (waits, syncs int64) {
	if s.group == nil {
		return 0, 0
	}
	return s.group.waits.Load(), s.group.syncs.Load()
}

// syncPart makes the bytes written to the open part durable: by the group
// sync when the spool has one, by the part's own fsync otherwise. After a
// group sync failed, for any file, the part fsyncs itself once as well.
func (f *File) syncPart() error {
	g := f.s.group
	if g == nil {
		return f.w.Sync()
	}
	if err := g.sync(); errors.Is(err, errGroupClosed) {
		return f.w.Sync()
	} else if err != nil {
		return err
	}
	if n := g.failures.Load(); n != f.failuresSeen {
		if err := f.w.Sync(); err != nil {
			return err
		}
		f.failuresSeen = n
	}
	return nil
}

// failuresNow is the count of failed group syncs, when a part is opened.
func (s *Spool) failuresNow() int64 {
	if s.group == nil {
		return 0
	}
	return s.group.failures.Load()
}

// syncNames makes the names created in dir durable, as syncDir does, by the
// group sync when the spool has one.
func (s *Spool) syncNames(dir string) error {
	if s.group != nil {
		if err := s.group.sync(); !errors.Is(err, errGroupClosed) {
			return err
		}
	}
	return syncDir(s.fs, dir)
}
