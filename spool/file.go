package spool

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
)

// Sync cadence of Append: received bytes are fsynced, and so acknowledged, at
// least every SyncBytes and within SyncInterval of arriving, so that a long
// streamed PUT makes progress visible to HEAD and a recorder that reconnects
// resends little.
const (
	SyncBytes    = 1 << 20
	SyncInterval = 250 * time.Millisecond
)

// RetryAfterFull is the Retry-After hint, in seconds, of a full spool.
const RetryAfterFull = 5

// bufSize is the size of Append's read buffers. They come from a pool shared
// by all recordings and are held only while an Append reads and writes, not
// while it waits for its last sync.
const bufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// File names in a recording's directory.
const (
	partPrefix   = "part-"    // part-000001: the bytes of part 1
	hashPrefix   = "hash-"    // hash-000002: the SHA-256 state at the start of part 2
	releasedName = "released" // "<part> <end offset>": the highest part released
	finishedName = "finished" // "<offset> <sha256 hex>": written by Finish
	layoutName   = "layout"   // "<base size> <tier parts>": written by Create
	tmpSuffix    = ".tmp"     // a marker being written; removed on recovery
)

// File is one recording's spool. It is safe for concurrent use by one
// appender (the ingest handler) and the uploader.
type File struct {
	s     *Spool
	id    string
	dir   string
	l     Layout
	ready chan struct{}

	// offset is the durable offset, read by HEAD without any lock.
	offset atomic.Int64
	// appending is held by the one Append that runs.
	appending atomic.Bool

	// wmu guards the writer. Append holds it while writing and syncing,
	// never while reading its body. Lock order: wmu, then mu.
	wmu          sync.Mutex
	w            FSFile    // the part being written; nil between parts
	wpart        int32     // the part w holds
	failuresSeen int64     // the spool's failed group syncs, when w last synced on its own
	written      int64     // bytes written, synced or not
	hash         hash.Hash // over bytes 0..written; nil once finished
	syncedHash   []byte    // the marshaled state of hash at the durable offset
	// crc is the CRC64NVME of part wpart's bytes written so far, known
	// unless the part was reopened with bytes in it (after a restart);
	// syncedCRC and syncedCRCKnown are the same at the durable offset.
	crc, syncedCRC           uint64
	crcKnown, syncedCRCKnown bool
	finishDoubt              bool      // a failed Finish may have left its marker in place
	unsyncedSince            time.Time // when the first unsynced byte was written; zero when none
	timer                    *time.Timer
	timerArmed               bool
	broken                   error // a failure the file cannot recover from: it takes no more writes
	// faulted is the disk fault (see diskFault) that left bytes after the
	// durable offset that cannot be trusted: rollbackLocked drops them
	// before anything is written again.
	faulted error

	// mu guards what the uploader reads. Fields also guarded by wmu are
	// changed holding both.
	mu            sync.Mutex
	closed        bool   // also wmu
	finished      bool   // also wmu
	digest        string // also wmu; hex SHA-256 once finished
	complete      int32  // parts 1..complete are fully written, synced and hashed
	released      bitset // parts whose bytes are deleted
	lowUnreleased int32  // every part below it is released
	// states are the hash states at the start of parts that follow
	// complete parts, kept in memory until Release stores them (see
	// completePartLocked); cleared by Finish.
	states  []partState
	relPart int32 // the highest part recorded in the released marker
	// crcs are the CRC64NVMEs of complete parts taken as their bytes were
	// written, until their release; a part completed before a restart has
	// none. PartReader.PartChecksum hands them to the uploader.
	crcs map[int32]uint64

	// relMu serializes Release's disk work without holding mu through it.
	relMu sync.Mutex
}

// newFile returns the File of a recording with nothing written.
func newFile(s *Spool, id, dir string, l Layout) *File {
	f := &File{s: s, id: id, dir: dir, l: l, ready: make(chan struct{}, 1), hash: newHash(), lowUnreleased: 1}
	f.syncedHash = marshalHash(f.hash)
	return f
}

// marshalHash returns h's state; a SHA-256 state is about 100 bytes.
func marshalHash(h hash.Hash) []byte {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // sha256 always marshals
	}
	return state
}

// unmarshalHash returns a hash in the state of marshalHash.
func unmarshalHash(state []byte) hash.Hash {
	h := newHash()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic(err) // a state from marshalHash always unmarshals
	}
	return h
}

// newHash returns the hash of a recording's digest.
func newHash() hash.Hash { return sha256.New() }

// Layout returns the layout the recording's parts are cut by: the one given
// to Create, also after a restart.
func (f *File) Layout() Layout { return f.l }

// Dir returns the recording's folder in the spool. Files whose names do
// not start with the spool's own prefixes are left alone there (a
// finalizer's index, say) and go with the folder when it is removed.
func (f *File) Dir() string { return f.dir }

// Offset returns the durable offset: the bytes received, written and
// fsynced, which HEAD reports as Upload-Offset.
func (f *File) Offset() int64 { return f.offset.Load() }

// Append copies r to the end of the recording and returns the new durable
// offset. When expect >= 0 and differs from Offset it is ECONFLICT without
// reading r; a second Append while one runs is ECONFLICT too. It fsyncs at
// least every SyncBytes and SyncInterval while reading, and at the end,
// advancing Offset after each fsync. An error from r (the client went away)
// or ctx is returned after syncing what was written, which stays
// acknowledged. When the spool limit would be exceeded, it writes and syncs
// what fits and returns EUNAVAILABLE with RetryAfter; so it does when free
// space on the disk falls below the headroom. A full or failing disk
// (ENOSPC, EDQUOT, EIO) is EUNAVAILABLE too, returned with the durable
// offset: nothing acknowledged is lost, and the next Append at that offset
// carries on once the disk has room again.
func (f *File) Append(ctx context.Context, r io.Reader, expect int64) (int64, error) {
	f.wmu.Lock()
	if err := f.writableLocked(); err != nil {
		f.wmu.Unlock()
		return f.Offset(), err
	}
	if f.faulted != nil {
		if err := f.rollbackLocked(); err != nil {
			f.wmu.Unlock()
			return f.Offset(), err
		}
	}
	if !f.appending.CompareAndSwap(false, true) {
		f.wmu.Unlock()
		return f.Offset(), recsink.Errorf(recsink.ECONFLICT, "another upload to this recording is in progress")
	}
	defer f.appending.Store(false)
	if off := f.Offset(); expect >= 0 && expect != off {
		f.wmu.Unlock()
		return off, recsink.Errorf(recsink.ECONFLICT, "Upload-Offset %d does not match the recording's offset %d", expect, off)
	}
	f.wmu.Unlock()

	// The buffer goes back to the pool before the last sync: under load
	// most of an Append is that wait, and a recording holds none of the
	// pool's memory through it.
	bp := bufPool.Get().(*[]byte)
	release := func() {
		if bp != nil {
			bufPool.Put(bp)
			bp = nil
		}
	}
	defer release()
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return f.end(err)
		}
		if err := f.s.checkHeadroom(); err != nil {
			return f.refuse(r, buf, err)
		}
		want := f.s.reserve(int64(len(buf)))
		if want == 0 {
			return f.refuse(r, buf, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: RetryAfterFull,
				Message: "the spool is full: try again later"})
		}
		// The read happens holding no lock: a recorder's body arrives in
		// real time, and HEAD, the idle sync and the uploader must not wait
		// for it.
		n, rerr := r.Read(buf[:want])

		f.wmu.Lock()
		err := f.writableLocked()
		if err == nil && f.faulted != nil {
			// The idle sync met a disk fault while the body was read: what
			// was read must not land after the bytes it drops.
			err = f.faulted
		}
		wrote := 0
		if err == nil && n > 0 {
			wrote, err = f.writeLocked(buf[:n])
		}
		f.s.used.Add(int64(wrote) - want) // give back the unused reservation
		f.s.wrote.Add(int64(wrote))
		done := true
		switch {
		case err == nil && rerr != nil:
			switch {
			case errors.Is(rerr, io.EOF):
			case ctx.Err() != nil:
				// The body failed because the request was canceled: say so,
				// as cancellation is not an error worth logging.
				err = ctx.Err()
			default:
				err = fmt.Errorf("spool: read body of %s: %w", f.id, rerr)
			}
			release()
			if serr := f.syncLocked(); serr != nil {
				err = serr
			}
		case err != nil:
			// Keep what was written acknowledged; a stopped or closed file
			// has synced already.
			_ = f.syncLocked()
		default:
			err = f.maybeSyncLocked()
			done = err != nil
		}
		if f.faulted != nil {
			// A disk fault: report it, and drop the tail that cannot be
			// trusted now, so that its space is free at once.
			err, done = f.faulted, true
			_ = f.rollbackLocked()
		}
		f.wmu.Unlock()
		if done {
			return f.Offset(), err
		}
	}
}

// end syncs what was written and returns err with the durable offset.
func (f *File) end(err error) (int64, error) {
	f.wmu.Lock()
	if serr := f.syncLocked(); serr != nil {
		err = serr
		if f.faulted != nil {
			_ = f.rollbackLocked()
		}
	}
	f.wmu.Unlock()
	return f.Offset(), err
}

// refuse ends an Append that found the spool full or the disk below its
// headroom: it syncs what was written and returns refusal, unless the body
// has ended exactly there, which a one-byte read tells apart.
func (f *File) refuse(r io.Reader, buf []byte, refusal error) (int64, error) {
	if off, err := f.end(nil); err != nil {
		return off, err
	}
	n, err := r.Read(buf[:1])
	if n == 0 && errors.Is(err, io.EOF) {
		return f.Offset(), nil
	}
	return f.Offset(), refusal
}

// writableLocked returns why the file takes no more bytes, if it does not.
func (f *File) writableLocked() error {
	switch {
	case f.closed:
		return f.errClosed()
	case f.broken != nil:
		return f.broken
	case f.finished:
		return recsink.Errorf(recsink.ECONFLICT, "the recording has stopped")
	}
	return nil
}

func (f *File) errClosed() error { return fmt.Errorf("spool: recording %s: %w", f.id, os.ErrClosed) }

// writeLocked writes p at the end of the recording, splitting it at part
// boundaries and completing each part it fills.
func (f *File) writeLocked(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if f.w == nil {
			if err := f.openPartLocked(); err != nil {
				return total, f.faultLocked(err)
			}
		}
		off, size := f.l.Part(f.wpart)
		chunk := p
		if room := off + size - f.written; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := f.w.Write(chunk)
		f.hash.Write(chunk[:n])
		if f.crcKnown {
			f.crc = crc64.Update(f.crc, chunk[:n])
		}
		f.written += int64(n)
		total += n
		p = p[n:]
		if n > 0 && f.unsyncedSince.IsZero() {
			f.unsyncedSince = time.Now()
		}
		if err != nil {
			err = fmt.Errorf("spool: write part %d of %s: %w", f.wpart, f.id, err)
			if diskFault(err) && !errors.Is(err, syscall.EIO) {
				// A full disk refuses what does not fit; the bytes written
				// before have their blocks, and the caller syncs them, so
				// that they are acknowledged and not sent again.
				return total, unavailable(err)
			}
			return total, f.faultLocked(err)
		}
		if f.written == off+size {
			if err := f.completePartLocked(); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// openPartLocked opens the part that holds the next byte for appending,
// creating it (and making its name durable) when it does not exist.
func (f *File) openPartLocked() error {
	n := f.l.PartAt(f.written)
	path := f.partPath(n)
	w, err := f.s.fs.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Reopened after a restart in the middle of the part, or after a
		// disk fault between its creation and the sync below.
		w, err = f.s.fs.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("spool: open part %d of %s: %w", n, f.id, err)
		}
		off, _ := f.l.Part(n)
		fi, err := w.Stat()
		if err != nil {
			w.Close()
			return fmt.Errorf("spool: open part %d of %s: %w", n, f.id, err)
		}
		if fi.Size() != f.written-off {
			w.Close()
			return fmt.Errorf("spool: part %d of %s has %d bytes, not ending at offset %d", n, f.id, fi.Size(), f.written)
		}
	} else if err != nil {
		return fmt.Errorf("spool: create part %d of %s: %w", n, f.id, err)
	}
	// Without this, a crash could drop the file of bytes about to be
	// acknowledged.
	if err := f.s.syncNames(f.dir); err != nil {
		w.Close()
		return fmt.Errorf("spool: create part %d of %s: %w", n, f.id, err)
	}
	f.w, f.wpart = w, n
	f.failuresSeen = f.s.failuresNow()
	// The bytes written before a restart are not read back for their CRC:
	// that part is read for it when it goes up.
	off, _ := f.l.Part(n)
	f.crc, f.crcKnown = 0, f.written == off
	f.syncedCRC, f.syncedCRCKnown = f.crc, f.crcKnown
	return nil
}

// partState is the hash state at the start of part, at offset.
type partState struct {
	part   int32
	offset int64
	state  []byte // marshalHash's
}

// completePartLocked makes a full part durable and offers it to the
// uploader. The hash state at the start of the next part must be durable
// before the part is released, so that the digest survives the part's
// deletion; it is kept in memory until then, and Release stores it. Until
// the release the part file is there, and a restart recomputes any state
// not stored from the part files (recoverHash): so the write that completes
// a part is acknowledged after its bytes' fsync alone, not after a marker's
// two more fsyncs and a rename. When many recordings fill their parts
// together, those fsyncs came all at once, on the acknowledgement path.
func (f *File) completePartLocked() error {
	n := f.wpart
	if err := f.syncLocked(); err != nil {
		return err
	}
	err := f.w.Close()
	f.w = nil
	if err != nil {
		f.broken = fmt.Errorf("spool: close part %d of %s: %w", n, f.id, err)
		return f.broken
	}
	// syncLocked has just marshaled the state at f.written, a new slice
	// never written to again.
	st := partState{part: n + 1, offset: f.written, state: f.syncedHash}
	f.mu.Lock()
	f.states = append(f.states, st)
	f.complete = n
	f.keepCRCLocked(n)
	f.mu.Unlock()
	f.notify()
	return nil
}

// storeState stores the hash state at the start of part n, when it is kept
// in memory, before the part below it is released.
func (f *File) storeState(n int32) error {
	f.mu.Lock()
	i := slices.IndexFunc(f.states, func(st partState) bool { return st.part == n })
	var st partState
	if i >= 0 {
		st = f.states[i]
	}
	f.mu.Unlock()
	if i < 0 {
		return nil // stored, or not needed: the recording is finished
	}
	if err := writeStateBytes(f.s.fs, f.dir, st.part, st.offset, st.state); err != nil {
		return fmt.Errorf("spool: hash state of part %d of %s: %w", n, f.id, faultOr(err))
	}
	f.mu.Lock()
	f.states = slices.DeleteFunc(f.states, func(st partState) bool { return st.part == n })
	f.mu.Unlock()
	return nil
}

// syncLocked fsyncs the bytes written and advances the durable offset. After
// a failed fsync the kernel may have dropped the dirty pages, and writing on
// would acknowledge bytes that are not on disk: a disk fault (ENOSPC, EDQUOT,
// EIO) faults the file until rollbackLocked has cut those bytes off, and any
// other error breaks it.
func (f *File) syncLocked() error {
	switch {
	case f.broken != nil:
		return f.broken
	case f.faulted != nil:
		return f.faulted
	case f.written == f.offset.Load():
		return nil
	}
	if err := f.syncPart(); err != nil {
		err = fmt.Errorf("spool: sync part %d of %s: %w", f.wpart, f.id, err)
		if diskFault(err) {
			return f.faultLocked(err)
		}
		f.broken = err
		return f.broken
	}
	f.offset.Store(f.written)
	f.syncedHash = marshalHash(f.hash)
	f.syncedCRC, f.syncedCRCKnown = f.crc, f.crcKnown
	f.unsyncedSince = time.Time{}
	return nil
}

// faultLocked records err, when it is a disk fault, as the reason why the
// bytes after the durable offset cannot be trusted, and returns it as
// EUNAVAILABLE. Other errors are returned as they are.
func (f *File) faultLocked(err error) error {
	if !diskFault(err) {
		return err
	}
	if f.faulted == nil {
		f.faulted = unavailable(err)
	}
	return f.faulted
}

// rollbackLocked drops the bytes written after the durable offset once a
// disk fault has made them untrustworthy: after a failed fsync Linux (since
// 4.13) reports the error once and may have marked the dirty pages clean
// without writing them, so syncing again could "succeed" over lost bytes
// (PostgreSQL's "fsyncgate", 2018). The part file is cut back to the durable
// offset and synced, and the hash rewound, so that the next write lands
// exactly at the offset the recorder was told. On failure the fault stays,
// and the next Append tries again.
func (f *File) rollbackLocked() error {
	if f.finishDoubt {
		if err := removeDurably(f.s.fs, f.dir, finishedName); err != nil {
			return faultOr(fmt.Errorf("spool: remove the finished marker of %s: %w", f.id, err))
		}
		f.finishDoubt = false
	}
	off := f.offset.Load()
	if f.w != nil {
		start, _ := f.l.Part(f.wpart)
		if err := f.w.Truncate(off - start); err != nil {
			return faultOr(fmt.Errorf("spool: truncate part %d of %s: %w", f.wpart, f.id, err))
		}
		if err := f.w.Sync(); err != nil {
			return faultOr(fmt.Errorf("spool: sync part %d of %s: %w", f.wpart, f.id, err))
		}
	}
	if f.written != off {
		f.s.used.Add(off - f.written)
		f.written = off
		f.hash = unmarshalHash(f.syncedHash)
		f.crc, f.crcKnown = f.syncedCRC, f.syncedCRCKnown
	}
	f.unsyncedSince = time.Time{}
	f.faulted = nil
	return nil
}

// maybeSyncLocked syncs when SyncBytes or SyncInterval has been reached, and
// otherwise arms the timer that syncs when the body stalls: the next read may
// block for long, and bytes already received must become visible to HEAD.
func (f *File) maybeSyncLocked() error {
	unsynced := f.written - f.offset.Load()
	if unsynced == 0 {
		return nil
	}
	age := time.Since(f.unsyncedSince)
	if unsynced >= SyncBytes || age >= SyncInterval {
		return f.syncLocked()
	}
	if !f.timerArmed {
		f.timerArmed = true
		if f.timer == nil {
			f.timer = time.AfterFunc(SyncInterval-age, f.idleSync)
		} else {
			f.timer.Reset(SyncInterval - age)
		}
	}
	return nil
}

// idleSync is the timer's sync. An error breaks the file, and the appender
// reports it when its read returns.
func (f *File) idleSync() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.timerArmed = false
	if !f.closed && !f.finished && f.w != nil {
		_ = f.syncLocked() // a fault is seen by the Append when its read returns
	}
}

// notify wakes the uploader without blocking: one pending signal is enough,
// as the uploader rereads CompleteParts.
func (f *File) notify() {
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives whenever a part becomes complete or
// the recording is finished.
func (f *File) Ready() <-chan struct{} { return f.ready }

// CompleteParts returns, ascending, the numbers of the parts fully written
// and synced (after Finish, including the last, possibly short, part) that
// have not been released: the parts to upload.
func (f *File) CompleteParts() []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []int32
	for n := f.lowUnreleased; n <= f.complete; n++ {
		if !f.released.has(n) {
			parts = append(parts, n)
		}
	}
	return parts
}

// PartReader reads one part: a seekable section of exactly the part's size,
// so that a retried upload resends identical bytes.
type PartReader struct {
	*io.SectionReader
	f        FSFile
	crc      uint64 // CRC64NVME of the part's bytes as they were written
	crcKnown bool
}

// Close closes the part's file.
func (p *PartReader) Close() error { return p.f.Close() }

// PartChecksum implements recsink.PartChecksummer: the part's CRC64NVME,
// taken as its bytes were written, so that S3 checks the bytes read back
// from the disk against the bytes received, and the uploader need not read
// the part once more for its CRC. False for another algorithm, and for a
// part completed before a restart.
func (p *PartReader) PartChecksum(alg recsink.ChecksumAlgorithm) (string, bool) {
	if alg != recsink.ChecksumCRC64NVME || !p.crcKnown {
		return "", false
	}
	return crc64.Encode(p.crc), true
}

// crc64 is the CRC that the spool takes of each part as it is written: S3's
// default full-object checksum, and recsink's first choice.
var crc64 = crc.ByName(string(recsink.ChecksumCRC64NVME))

// keepCRCLocked keeps the CRC of part n, just completed, for its upload
// when it is known. Holding wmu and mu.
func (f *File) keepCRCLocked(n int32) {
	if !f.crcKnown {
		return
	}
	if f.crcs == nil {
		f.crcs = map[int32]uint64{}
	}
	f.crcs[n] = f.crc
}

// Part opens part n for reading. It fails when n is released or not
// complete. The caller closes the reader.
func (f *File) Part(n int32) (*PartReader, error) {
	f.mu.Lock()
	var err error
	switch {
	case f.closed:
		err = f.errClosed()
	case n < 1 || n > f.complete:
		err = recsink.Errorf(recsink.ECONFLICT, "part %d of recording %s is not complete", n, f.id)
	case f.released.has(n):
		err = recsink.Errorf(recsink.ECONFLICT, "part %d of recording %s is released", n, f.id)
	}
	sum, known := f.crcs[n]
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	off, size := f.l.Part(n)
	if end := f.Offset(); off+size > end {
		size = end - off // the short last part of a finished recording
	}
	r, err := openFile(f.s.fs, f.partPath(n))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, recsink.Errorf(recsink.ECONFLICT, "part %d of recording %s is released", n, f.id)
	} else if err != nil {
		return nil, fmt.Errorf("spool: open part %d of %s: %w", n, f.id, err)
	}
	return &PartReader{SectionReader: io.NewSectionReader(r, 0, size), f: r, crc: sum, crcKnown: known}, nil
}

// Release deletes part n's bytes once S3 has confirmed the part, and lowers
// Used. Idempotent. A released part stays released after a restart, and
// Offset still counts it. Only complete parts can be released.
func (f *File) Release(n int32) error {
	f.relMu.Lock()
	defer f.relMu.Unlock()
	f.mu.Lock()
	var err error
	switch {
	case f.closed:
		err = f.errClosed()
	case n < 1:
		err = recsink.Errorf(recsink.EINVALID, "invalid part number %d", n)
	case f.released.has(n):
		f.mu.Unlock()
		return nil
	case n > f.complete:
		err = recsink.Errorf(recsink.ECONFLICT, "part %d of recording %s is not complete", n, f.id)
	}
	relPart := f.relPart
	f.mu.Unlock()
	if err != nil {
		return err
	}
	// The digest must survive the part's deletion.
	if err := f.storeState(n + 1); err != nil {
		return err
	}

	// The marker must be durable before the part goes: were the highest
	// part gone with no marker, a restart would compute a smaller offset
	// than the recorder was told. While durable bytes lie beyond part n, the
	// part file that holds them keeps the offset, and no marker is needed:
	// so releasing parts, which frees the disk, needs no new file on a disk
	// that may be full.
	if off, size := f.l.Part(n); n > relPart && f.Offset() <= off+size {
		end := min(off+size, f.Offset())
		if err := writeFileAtomic(f.s.fs, f.dir, releasedName, fmt.Appendf(nil, "%d %d\n", n, end)); err != nil {
			return fmt.Errorf("spool: release part %d of %s: %w", n, f.id, faultOr(err))
		}
		f.mu.Lock()
		f.relPart = n
		f.mu.Unlock()
	}
	path := f.partPath(n)
	var size int64
	if fi, err := f.s.fs.Stat(path); err == nil {
		size = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: release part %d of %s: %w", n, f.id, faultOr(err))
	}
	if err := f.s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: release part %d of %s: %w", n, f.id, faultOr(err))
	}
	f.s.used.Add(-size)
	// The state at the start of a released part is never needed again.
	_ = f.s.fs.Remove(f.hashPath(n))
	if err := syncDir(f.s.fs, f.dir); err != nil {
		return fmt.Errorf("spool: release part %d of %s: %w", n, f.id, faultOr(err))
	}
	f.mu.Lock()
	f.released.set(n)
	delete(f.crcs, n)
	for f.released.has(f.lowUnreleased) {
		f.lowUnreleased++
	}
	f.mu.Unlock()
	return nil
}

// Finish marks the recording ended: Append is refused from now on, and the
// last partial part becomes complete. It is persistent across restarts and
// idempotent. An Append blocked reading its body is not waited for: what it
// wrote is synced, and what it reads later is dropped.
func (f *File) Finish() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.closed {
		return f.errClosed()
	}
	if f.finished {
		return nil
	}
	if f.faulted != nil {
		if err := f.rollbackLocked(); err != nil {
			return err
		}
	}
	if err := f.syncLocked(); err != nil {
		return err
	}
	// The last part, partial, becomes complete below.
	lastOpen := f.w != nil
	if f.w != nil {
		if err := f.w.Close(); err != nil {
			return fmt.Errorf("spool: close part %d of %s: %w", f.wpart, f.id, err)
		}
		f.w = nil
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	digest := hex.EncodeToString(f.hash.Sum(nil))
	if err := writeFileAtomic(f.s.fs, f.dir, finishedName, fmt.Appendf(nil, "%d %s\n", f.written, digest)); err != nil {
		// The marker may be in place all the same (renamed, but its
		// directory not synced): were it to outlive a crash after more
		// bytes were appended, the recording could not be opened again.
		// Take it back durably, or take no more bytes.
		err = fmt.Errorf("spool: finish %s: %w", f.id, err)
		if rerr := removeDurably(f.s.fs, f.dir, finishedName); rerr != nil {
			f.finishDoubt = true
			if !diskFault(err) {
				f.broken = err
			}
			return f.faultLocked(err)
		}
		return faultOr(err)
	}
	f.mu.Lock()
	f.finished, f.digest, f.hash = true, digest, nil
	f.states = nil // the finished marker holds the digest
	if f.written > 0 {
		f.complete = f.l.PartAt(f.written - 1)
	}
	if lastOpen && f.wpart == f.complete {
		f.keepCRCLocked(f.wpart)
	}
	f.mu.Unlock()
	f.notify()
	return nil
}

// Finished reports whether Finish has been called, in this run or before a
// restart.
func (f *File) Finished() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}

// PartCount returns the number of parts holding the recording's bytes so
// far: after Finish, the total to complete the multipart upload with.
func (f *File) PartCount() int32 {
	off := f.Offset()
	if off == 0 {
		return 0
	}
	return f.l.PartAt(off - 1)
}

// SHA256 returns the hex SHA-256 of every byte appended (0..Offset()), kept
// up to date as bytes are written, so that no part needs rereading.
func (f *File) SHA256() string {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.finished {
		return f.digest
	}
	// Bytes written by an Append in progress but not yet synced would make
	// the digest cover more than Offset.
	if f.written != f.Offset() && !f.closed {
		_ = f.syncLocked()
	}
	h := f.hash
	if f.written != f.Offset() {
		h = unmarshalHash(f.syncedHash) // the sync failed
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Close syncs what was written and releases the File's resources. The
// recording stays on disk; Spool.Open resumes it. An Append blocked reading
// its body returns an error when its read returns.
func (f *File) Close() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.closed {
		return nil
	}
	var err error
	if f.faulted != nil {
		// Cut the untrusted tail, so that a restart does not count it.
		err = f.rollbackLocked()
	} else {
		err = f.syncLocked()
	}
	if f.w != nil {
		if cerr := f.w.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("spool: close part %d of %s: %w", f.wpart, f.id, cerr)
		}
		f.w = nil
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.s.forget(f)
	return err
}

func (f *File) partPath(n int32) string { return filepath.Join(f.dir, partName(n)) }
func (f *File) hashPath(n int32) string { return filepath.Join(f.dir, hashName(n)) }

func partName(n int32) string { return fmt.Sprintf("%s%06d", partPrefix, n) }
func hashName(n int32) string { return fmt.Sprintf("%s%06d", hashPrefix, n) }

// parseName returns the part number in a file name such as "part-000012".
func parseName(name, prefix string) (int32, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || n < 1 {
		return 0, false
	}
	return int32(n), true
}

// writeHashState stores h's state, which must be at the start of part n at
// offset, in hash-<n>: 8 bytes of offset then the marshaled state.
func writeHashState(fsys FS, dir string, n int32, offset int64, h hash.Hash) error {
	return writeStateBytes(fsys, dir, n, offset, marshalHash(h))
}

// writeStateBytes is writeHashState of a state marshalHash returned.
func writeStateBytes(fsys FS, dir string, n int32, offset int64, state []byte) error {
	data := binary.BigEndian.AppendUint64(nil, uint64(offset))
	return writeFileAtomic(fsys, dir, hashName(n), append(data, state...))
}

// readHashState loads the state stored by writeHashState, checking that it
// was taken at offset.
func readHashState(fsys FS, dir string, n int32, offset int64) (hash.Hash, error) {
	data, err := readFile(fsys, filepath.Join(dir, hashName(n)))
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || int64(binary.BigEndian.Uint64(data)) != offset {
		return nil, fmt.Errorf("hash state of part %d is not at offset %d", n, offset)
	}
	h := newHash()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(data[8:]); err != nil {
		return nil, err
	}
	return h, nil
}

// writeFileAtomic replaces dir/name with data durably: a crash leaves the
// old or the new content, never a torn one.
func writeFileAtomic(fsys FS, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	w, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		// A full disk: leave no torn temporary file taking space.
		_ = fsys.Remove(tmp)
		return err
	}
	return syncDir(fsys, dir)
}

// removeDurably removes dir/name, if present, and syncs dir.
func removeDurably(fsys FS, dir, name string) error {
	if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(fsys, dir)
}

// bitset is a set of part numbers: about 1 KiB for a 9,000-part recording,
// where a map would cost hundreds of KiB of the heap budget.
type bitset []uint64

func (b bitset) has(n int32) bool {
	i := int(n) / 64
	return n >= 0 && i < len(b) && b[i]&(1<<(uint(n)%64)) != 0
}

func (b *bitset) set(n int32) {
	i := int(n) / 64
	for len(*b) <= i {
		*b = append(*b, 0)
	}
	(*b)[i] |= 1 << (uint(n) % 64)
}
