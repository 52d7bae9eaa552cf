package spool

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// recover rebuilds the File's state from its directory after a restart. The
// durable offset is the end of the highest part file, or the end of the
// highest released part when that is further. Bytes written after the last
// fsync before a crash may have survived: they count, since the recorder sent
// them in order, and the digest is recomputed over exactly what is on disk.
// They may also still be only in the page cache (the process died, not the
// machine), so the top part file and the directory are fsynced before the
// offset is reported: HEAD tells the recorder that those bytes are safe.
func (f *File) recover() error {
	fsys := f.s.fs
	entries, err := fsys.ReadDir(f.dir)
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", f.id, err)
	}
	var present, hashes bitset
	var top int32 // highest part file
	var finished bool
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// A marker torn by a crash; its rename never happened.
			_ = fsys.Remove(filepath.Join(f.dir, name))
			continue
		}
		if n, ok := parseName(name, partPrefix); ok {
			present.set(n)
			top = max(top, n)
		} else if n, ok := parseName(name, hashPrefix); ok {
			hashes.set(n)
		} else if name == finishedName {
			finished = true
		}
	}

	var offset int64
	if top > 0 {
		off, size := f.l.Part(top)
		n, err := syncFile(fsys, f.partPath(top))
		if err != nil {
			return fmt.Errorf("spool: open %s: %w", f.id, faultOr(err))
		}
		if n > size {
			return fmt.Errorf("spool: open %s: part %d has %d bytes, more than its size %d (wrong layout?)", f.id, top, n, size)
		}
		offset = off + n
	}
	// The part files' names, and the markers renamed into place, must be
	// durable too (a crash may have come between a creation and its
	// directory sync).
	if err := syncDir(fsys, f.dir); err != nil {
		return fmt.Errorf("spool: open %s: %w", f.id, faultOr(err))
	}
	var relPart int32
	var relEnd int64
	if data, err := readFile(fsys, filepath.Join(f.dir, releasedName)); err == nil {
		if _, err := fmt.Sscanf(string(data), "%d %d", &relPart, &relEnd); err != nil {
			return fmt.Errorf("spool: open %s: released marker %q: %w", f.id, data, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: open %s: %w", f.id, err)
	}
	offset = max(offset, relEnd)

	f.relPart = relPart
	for n := int32(1); n <= max(top, relPart); n++ {
		if !present.has(n) {
			f.released.set(n)
		}
	}
	for f.released.has(f.lowUnreleased) {
		f.lowUnreleased++
	}
	f.written = offset
	f.offset.Store(offset)

	if finished {
		data, err := readFile(fsys, filepath.Join(f.dir, finishedName))
		if err != nil {
			return fmt.Errorf("spool: open %s: %w", f.id, err)
		}
		var end int64
		var digest string
		if _, err := fmt.Sscanf(string(data), "%d %s", &end, &digest); err != nil {
			return fmt.Errorf("spool: open %s: finished marker %q: %w", f.id, data, err)
		}
		if end != offset {
			return fmt.Errorf("spool: open %s: finished at offset %d but its parts end at %d", f.id, end, offset)
		}
		f.finished, f.digest, f.hash, f.syncedHash = true, digest, nil, nil
		if offset > 0 {
			f.complete = f.l.PartAt(offset - 1)
		}
		return nil
	}
	if offset == 0 {
		return nil
	}
	last := f.l.PartAt(offset - 1)
	f.complete = last - 1
	next := last // the part whose start state is needed: the one being written
	if off, size := f.l.Part(last); offset == off+size {
		f.complete, next = last, last+1
	}
	h, err := f.recoverHash(next, offset, present, hashes)
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", f.id, faultOr(err))
	}
	f.hash = h
	f.syncedHash = marshalHash(h)
	return nil
}

// recoverHash returns the SHA-256 state at offset, which lies in part next
// (or at its start). It starts from the stored state nearest below and hashes
// only the part files after it, normally just the part being written. It
// rewrites any state a crash kept from being stored, since a part may not be
// released before the state at its end is durable.
func (f *File) recoverHash(next int32, offset int64, present, hashes bitset) (hash.Hash, error) {
	var h hash.Hash
	k := next
	for ; ; k-- {
		if k == 1 {
			h = newHash()
			break
		}
		if hashes.has(k) {
			off, _ := f.l.Part(k)
			if hh, err := readHashState(f.s.fs, f.dir, k, off); err == nil {
				h = hh
				break
			}
		}
		if !present.has(k - 1) {
			return nil, fmt.Errorf("cannot recover the digest: part %d and the hash state after it are missing", k-1)
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for n := k; n <= next; n++ {
		off, size := f.l.Part(n)
		if n > k {
			// Every state above k was missing or unreadable: store it again.
			if err := writeHashState(f.s.fs, f.dir, n, off, h); err != nil {
				return nil, fmt.Errorf("hash state of part %d: %w", n, err)
			}
		}
		if offset <= off {
			break
		}
		if err := hashPart(f.s.fs, h, f.partPath(n), min(size, offset-off), *bp); err != nil {
			return nil, fmt.Errorf("hash part %d: %w", n, err)
		}
	}
	return h, nil
}

// hashPart adds the first size bytes of a part file to h.
func hashPart(fsys FS, h hash.Hash, path string, size int64, buf []byte) error {
	r, err := openFile(fsys, path)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyBuffer(h, io.LimitReader(r, size), buf)
	if err == nil && n != size {
		err = fmt.Errorf("short part: %d of %d bytes", n, size)
	}
	return err
}

// syncFile fsyncs the file at path and returns its size.
func syncFile(fsys FS, path string) (int64, error) {
	w, err := fsys.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if err := w.Sync(); err != nil {
		return 0, err
	}
	fi, err := w.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
