package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// appendWait is how long a new ingest request, or a stop, waits for an
// earlier request on the same recording to end once it canceled it.
const appendWait = 5 * time.Second

// recorder runs one recording: it takes media into the spool and uploads
// each part to S3 as soon as the part is complete.
type recorder struct {
	s      *Service
	file   spoolFile
	layout spool.Layout
	kick   chan struct{} // cap 1: credentials changed or state changed
	// keyChanges counts the credential changes that woke the recording: an
	// attempt that fails after one began was made with what may be an old
	// key, so the next one goes at once instead of after a backoff.
	keyChanges atomic.Uint64
	done       chan struct{}
	// resumed is set by Open for the upload loop to finish the resume.
	resumed *resumed

	// ctx ends when the recorder stops here: the service closes, or the
	// lease is lost to another node. Its uploads and waits end with it.
	ctx    context.Context
	cancel context.CancelFunc

	// appendSem admits one ingest request at a time.
	appendSem chan struct{}

	// wmu serializes transitions: one writer per recording.
	wmu sync.Mutex
	// finalizing is set while a transition to a final state is being saved,
	// so that a renewal that no longer lists the recording (it is finished)
	// is not taken for a lost lease.
	finalizing atomic.Bool

	lease leaseState

	mu  sync.Mutex
	rec recsink.Recording
	// digestRefusals counts, per part, the checksum mismatches in a row;
	// only the upload loop touches it.
	digestRefusals map[int32]int
	// fin finalizes a Matroska, WebM or MP4 stream at the stop (nil: the
	// object is the bytes received); finDecided is set once the first
	// bytes were looked at; fz holds the finalized parts once sent. Only
	// the upload loop touches them.
	fin          *finalizer
	finDecided   bool
	fz           *finalized
	cred         *recsink.Credential
	client       recsink.StorageClient
	refused      map[string]bool // credentials S3 refused since the last save
	appending    *appendCall     // the latest ingest request, running or waiting
	appendCancel context.CancelFunc
	lastLog      time.Time
	// stopSaved is set once the stop is saved and its event written: the
	// object is completed only then, so that the history reads in order.
	stopSaved bool
}

// newRecorder returns a recorder for rec, whose lease was claimed by a
// statement that began at claimed (this node's monotonic clock).
func (s *Service) newRecorder(rec recsink.Recording, file spoolFile, layout spool.Layout, cred *recsink.Credential, client recsink.StorageClient, claimed time.Time) *recorder {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &recorder{
		s:         s,
		file:      file,
		layout:    layout,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		appendSem: make(chan struct{}, 1),
		rec:       rec,
		cred:      cred,
		client:    client,
		refused:   map[string]bool{},
		stopSaved: rec.EndDate != nil,
	}
	r.lease.init(r)
	r.confirm(claimed)
	return r
}

func (r *recorder) snapshot() *recsink.Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec
	if r.file != nil {
		rec.BytesReceived = max(rec.BytesReceived, r.file.Offset())
	}
	return &rec
}

func (r *recorder) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// errUnchanged is returned by a transition's change when there is nothing
// to save: the recording is already where the change would take it.
var errUnchanged = errors.New("recording unchanged")

// errRefused wraps the ECONFLICT of a transition the store refused as going
// backwards: a bug signal, logged and not retried.
var errRefused = errors.New("the store refused the recording's transition")

// transition is the one way a recording's row changes. change edits a copy
// of the recording as it is now; the copy is saved with the lease fence (the
// store refuses it unless this node still owns the recording with the same
// epoch, and refuses a state that goes backwards) and only then becomes the
// recording in memory. Transitions of one recorder run one at a time, so an
// older copy is never saved after a newer one. A write refused for the lease
// stops the recorder here. ctx bounds the wait for a lapsed lease; the write
// itself runs on the recorder's lease, so that a request that went away does
// not leave the row behind.
func (r *recorder) transition(ctx context.Context, change func(rec *recsink.Recording) error) (recsink.Recording, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	// The lease first: change may queue a webhook event, which is a write
	// too.
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return *r.snapshot(), err
	}
	defer done()
	next := *r.snapshot()
	if err := change(&next); err != nil {
		return next, err
	}
	if next.Finished() {
		r.finalizing.Store(true)
	}
	if err := r.s.store.UpdateRecording(wctx, &next); err != nil {
		r.finalizing.Store(false)
		switch {
		case errors.Is(err, recsink.ErrLeaseLost):
			r.lose("the store refused a write: another node runs the recording now")
		case recsink.ErrorCode(err) == recsink.ECONFLICT:
			// Every state change goes through here in order, so a refused
			// transition means the recorder's idea of the row is wrong: a
			// bug to fix, not something a retry would mend.
			r.s.log.Error("the store refused a recording's transition (bug)", "recording", next.ID, "to", next.State, "err", err)
			err = fmt.Errorf("%w: %w", errRefused, err)
		case !isCanceled(err):
			r.s.log.Error("save recording", "recording", next.ID, "err", err)
		}
		return next, err
	}
	r.publish(&next)
	return next, nil
}

// publish makes a saved copy the recording in memory. It sets the mutable
// fields one by one: the others (ID, token hash) never change and are read
// without the lock. The object key and upload change once, at the first
// bytes: read them with object().
func (r *recorder) publish(next *recsink.Recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &r.rec
	rec.State, rec.EndDate, rec.StopReason = next.State, next.EndDate, next.StopReason
	rec.ObjectKey, rec.UploadID, rec.ChecksumAlgorithm = next.ObjectKey, next.UploadID, next.ChecksumAlgorithm
	rec.BytesReceived = next.BytesReceived
	// Parts confirmed while the row was being saved count too.
	rec.BytesUploaded = max(next.BytesUploaded, rec.BytesUploaded)
	next.BytesUploaded = rec.BytesUploaded
	rec.SizeBytes, rec.SHA256, rec.Checksum, rec.LastError = next.SizeBytes, next.SHA256, next.Checksum, next.LastError
	rec.CredentialID, rec.AccessKeyID = next.CredentialID, next.AccessKeyID
	rec.UpdatedAt = next.UpdatedAt
}

// persist saves the recording's progress (its durable offset and uploaded
// bytes) without changing its state.
func (r *recorder) persist() error {
	_, err := r.transition(r.ctx, func(*recsink.Recording) error { return nil })
	return err
}

func (r *recorder) event(typ, format string, args ...any) {
	e := recsink.RecordingEvent{Time: recsink.Now(), Type: typ, Message: fmt.Sprintf(format, args...)}
	if r.lost() {
		// Another node runs the recording: it writes the history now.
		r.s.log.Info("recording "+typ+" (not saved: lease lost)", "recording", r.rec.ID, "message", e.Message)
		return
	}
	if err := r.s.store.AddRecordingEvent(r.s.ctx, r.rec.ID, e); err != nil {
		r.s.log.Error("save recording event", "recording", r.rec.ID, "type", typ, "err", err)
	}
	r.s.log.Info("recording "+typ, "recording", r.rec.ID, "org", r.rec.OrgID, "message", e.Message)
}
