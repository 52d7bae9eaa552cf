package service

import (
	"context"
	"fmt"
	"sync"
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
	file   *spool.File
	layout spool.Layout
	kick   chan struct{} // cap 1: credentials changed or state changed
	done   chan struct{}
	// resumed is set by Open for the upload loop to finish the resume.
	resumed *resumed

	// appendSem admits one ingest request at a time.
	appendSem chan struct{}

	mu           sync.Mutex
	rec          recsink.Recording
	cred         *recsink.Credential
	client       recsink.StorageClient
	refused      map[string]bool // credentials S3 refused since the last save
	appending    *appendCall     // the latest ingest request, running or waiting
	appendCancel context.CancelFunc
	lastLog      time.Time
}

func (r *recorder) snapshot() *recsink.Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec
	if r.file != nil {
		rec.BytesReceived = r.file.Offset()
	}
	return &rec
}

func (r *recorder) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// persist saves the recording's row. Called after each state change and
// each confirmed part, from the service's lifetime context: a request that
// went away must not leave the row behind.
func (r *recorder) persist() error {
	return r.persistAs(r.snapshot())
}

// persistAs saves rec as the recording's row. A final state is saved this
// way before it is shown in memory, so that no reader sees a recording
// finished that the store (and so the drain view) still counts as running.
func (r *recorder) persistAs(rec *recsink.Recording) error {
	if err := r.s.store.UpdateRecording(r.s.ctx, rec); err != nil {
		r.s.log.Error("save recording", "recording", rec.ID, "err", err)
		return err
	}
	return nil
}

func (r *recorder) event(typ, format string, args ...any) {
	e := recsink.RecordingEvent{Time: recsink.Now(), Type: typ, Message: fmt.Sprintf(format, args...)}
	if err := r.s.store.AddRecordingEvent(r.s.ctx, r.rec.ID, e); err != nil {
		r.s.log.Error("save recording event", "recording", r.rec.ID, "type", typ, "err", err)
	}
	r.s.log.Info("recording "+typ, "recording", r.rec.ID, "org", r.rec.OrgID, "message", e.Message)
}
