package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// objectBase names the object like Whereby's files, [prefix/]<room>-<start>,
// without its extension.
func objectBase(d recsink.Destination, room string, start time.Time) string {
	base := strings.Trim(room, "/") + "-" + start.Format("2006-01-02T15:04:05.000Z07:00")
	if d.Prefix != "" {
		base = d.Prefix + "/" + base
	}
	return base
}

// objectExister is what the s3 package's clients add to StorageClient: an
// existence check that tells "no such object" from a failure.
type objectExister interface {
	ObjectExists(ctx context.Context, key string) (bool, error)
}

// objectFree reports whether no object is named key in the bucket. Only S3's
// "not found" says so: any other answer (a refused HEAD, a timeout) counts
// as taken, so that no object of the customer's is ever overwritten.
func objectFree(ctx context.Context, client recsink.StorageClient, key string) bool {
	if oe, ok := client.(objectExister); ok {
		exists, err := oe.ObjectExists(ctx, key)
		return err == nil && !exists
	}
	_, _, err := client.HeadObject(ctx, key)
	var se *recsink.StorageError
	return errors.As(err, &se) && (se.StatusCode == 404 || se.Code == "NoSuchKey" || se.Code == "NotFound")
}

// StartRecording implements recsink.RecordingService. The row, its owner
// (this node) and its lease are created in one statement: a start that fails
// leaves no recording behind that holds a key.
func (s *Service) StartRecording(ctx context.Context, orgID, meetingID string) (*recsink.Recording, string, error) {
	m, err := s.store.FindMeeting(ctx, orgID, meetingID)
	if err != nil {
		return nil, "", err
	}
	if err := m.CanRecord(); err != nil {
		return nil, "", err
	}
	cred, err := s.resolveCredential(ctx, orgID, meetingID)
	if err != nil {
		return nil, "", err
	}
	key, err := s.accessKey(cred)
	if err != nil {
		return nil, "", err
	}
	client, err := s.cfg.Storage.Client(ctx, cred.Destination, key)
	if err != nil {
		return nil, "", err
	}
	// The start date is on the database's clock: it fixes the maximum
	// duration and the drain view, which every node must read alike.
	now, err := s.store.Now(ctx)
	if err != nil {
		return nil, "", err
	}
	layout := spool.NewLayout(s.cfg.MaxIngestRate * int64(s.cfg.MaxDuration/time.Second))
	token := recsink.RandomToken(32)
	id := recsink.NewID("rec")
	s.beginTakeover(id) // not a stray while it starts
	defer s.endTakeover(id)
	rec := &recsink.Recording{
		ID:              id,
		OrgID:           orgID,
		MeetingID:       m.ID,
		RoomName:        m.RoomName,
		State:           recsink.RecordingRecording,
		CredentialID:    cred.ID,
		AccessKeyID:     cred.AccessKeyID,
		Destination:     cred.Destination,
		IngestTokenHash: recsink.HashToken(token),
		StartDate:       now,
		PartSize:        layout.BaseSize,
		UpdatedAt:       now,
		Owner:           recsink.Owner{Node: s.cfg.NodeID, URL: s.cfg.NodeURL},
		Source:          recsink.SourceFrom(ctx),
	}
	// When the name is taken in the bucket, or by another recording (the
	// store's check, across nodes), the recording ID is added so that no
	// other object is ever overwritten.
	base := objectBase(cred.Destination, m.RoomName, now)
	unique := base + "-" + rec.ID + "." + cred.Destination.FileFormat
	rec.ObjectKey = base + "." + cred.Destination.FileFormat
	if !objectFree(ctx, client, rec.ObjectKey) {
		rec.ObjectKey = unique
	}
	file, err := s.cfg.Spool.Create(rec.ID, layout)
	if err != nil {
		return nil, "", err
	}
	var claimed time.Time
	for {
		// The upload asks for a full-object checksum that S3 verifies at
		// completion; the algorithm the endpoint took is kept with the row.
		var up recsink.Upload
		up, err = client.CreateMultipartUpload(ctx, rec.ObjectKey, cred.Destination.ContentType(), map[string]string{"recording-id": rec.ID}, recsink.FullObjectChecksums...)
		rec.UploadID, rec.ChecksumAlgorithm = up.ID, up.Checksum
		if err != nil {
			err = fmt.Errorf("start recording: %w", err)
			break
		}
		claimed = time.Now()
		err = s.store.CreateRecording(ctx, rec, s.cfg.LeaseTTL)
		if err == nil {
			break
		}
		_ = client.AbortMultipartUpload(context.WithoutCancel(ctx), rec.ObjectKey, rec.UploadID)
		if recsink.ErrorCode(err) == recsink.ECONFLICT && recsink.ErrorField(err) == "objectKey" && rec.ObjectKey != unique {
			rec.ObjectKey = unique
			continue
		}
		s.undoStart(ctx, rec, err)
		break
	}
	if err != nil {
		file.Close()
		_ = s.cfg.Spool.Remove(rec.ID)
		return nil, "", err
	}
	r := s.newRecorder(*rec, file, layout, cred, client, claimed)
	// recording.started waits for the first bytes, which may rename the
	// object (see placeObject), or the stop.
	r.event(recsink.EventStarted, "recording started into s3://%s/%s with key %s", rec.Destination.Bucket, rec.ObjectKey, cred.AccessKeyID)
	s.launch(r, s.cfg.MaxDuration)
	return r.snapshot(), token, nil
}

// undoStart makes sure that a start whose CreateRecording failed leaves no
// running row: a driver may report an error after its statement committed
// (a connection reset at the commit), and such a row, owned and renewed by
// this node, would hold its key forever. Best effort: the row is marked
// failed if it is there.
func (s *Service) undoStart(ctx context.Context, rec *recsink.Recording, cause error) {
	switch recsink.ErrorCode(cause) {
	case recsink.ECONFLICT, recsink.EINVALID:
		return // refused: nothing was written
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	got, err := s.store.FindRecordingByID(ctx, rec.ID)
	if err != nil || !got.Holding() || got.Owner.Node != s.cfg.NodeID {
		return
	}
	got.State = recsink.RecordingFailed
	got.LastError = "the recording could not be started: " + recsink.ErrorMessage(cause)
	end := got.StartDate
	got.EndDate = &end
	got.UpdatedAt = recsink.Now()
	if err := s.store.UpdateRecording(ctx, got); err != nil {
		s.log.Error("mark a failed start failed", "recording", rec.ID, "err", err)
	}
}

// launch runs r until it finishes here; maxLeft is what remains of its
// maximum duration.
func (s *Service) launch(r *recorder, maxLeft time.Duration) {
	s.mu.Lock()
	s.recorders[r.rec.ID] = r
	s.mu.Unlock()
	deadline := time.NewTimer(maxLeft)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		r.run(r.ctx, deadline)
		r.exit()
	}()
}

// exit releases what a recorder that no longer runs here holds. Its spool
// stays on disk unless the recording finished (retire removed it).
func (r *recorder) exit() {
	r.s.forget(r)
	r.cancel()
	r.lease.timer.Stop()
	r.mu.Lock()
	if r.appendCancel != nil {
		r.appendCancel()
	}
	r.mu.Unlock()
	if r.file != nil {
		r.file.Close()
	}
}

func (s *Service) recorder(id string) *recorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recorders[id]
}

// StopRecording implements recsink.RecordingService.
func (s *Service) StopRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	rec, err := s.store.FindRecording(ctx, orgID, id)
	if err != nil {
		return nil, err
	}
	r := s.recorder(id)
	if err := s.elsewhere(rec); err != nil {
		if r != nil {
			// The row names another owner: this recorder is stale.
			r.lose("the recording's row names node " + rec.Owner.Node)
		}
		return nil, err
	}
	if r == nil {
		return rec, nil // already finished: stopping is idempotent
	}
	if err := r.stop(ctx, recsink.StopRequested); err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// stop ends ingest and marks the recording stopping; the run loop then
// uploads the tail and completes the object. Two stops (the API and the
// maximum-duration timer) may race: one saves the stop, the other finds it
// done.
func (r *recorder) stop(ctx context.Context, reason string) error {
	r.mu.Lock()
	if r.rec.State != recsink.RecordingRecording && r.rec.State != recsink.RecordingBlocked || r.rec.EndDate != nil {
		r.mu.Unlock()
		return nil
	}
	if r.appendCancel != nil {
		r.appendCancel() // a stream still running ends at its next read
	}
	r.mu.Unlock()

	select {
	case r.appendSem <- struct{}{}:
		defer func() { <-r.appendSem }()
	case <-time.After(appendWait):
		// A recorder stalled mid-body does not hold the stop up: the spool
		// finishes at the bytes it acknowledged, and the stalled request
		// ends with 409, so the recorder knows the rest was not taken.
		r.s.log.Warn("stopping while a recorder's request is stalled", "recording", r.rec.ID)
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.lost() {
		return recsink.ErrLeaseLost
	}
	r.mu.Lock()
	stopped := r.rec.EndDate != nil || r.rec.Finished()
	r.mu.Unlock()
	if stopped {
		return nil // the other stop (API or timer) came first
	}
	// Finish is persisted in the spool before the state, so that a crash in
	// between is seen at restart as a stop.
	if err := r.file.Finish(); err != nil {
		switch {
		case !errors.Is(err, os.ErrClosed):
			return err
		case r.lost():
			return recsink.ErrLeaseLost
		}
		// The recorder stopped here meanwhile (the service closes): the
		// node that runs it next saves a stop sent again.
		return &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 1,
			Message: "the recording's node is shutting down; try again"}
	}
	now := r.s.dbNow(ctx)
	save := func(rec *recsink.Recording) error {
		if rec.State != recsink.RecordingRecording && rec.State != recsink.RecordingBlocked || rec.EndDate != nil {
			return errUnchanged // stopped, or finished, meanwhile
		}
		if rec.State == recsink.RecordingRecording {
			rec.State = recsink.RecordingStopping
		} // a blocked recording stays blocked until a key works
		rec.EndDate = &now
		rec.StopReason = reason
		// Known for good now; saved so that another node can complete the
		// object if this one dies once every part is in the bucket.
		rec.SHA256 = r.file.SHA256()
		rec.BytesReceived = r.file.Offset()
		return nil
	}
	rec, err := r.transition(ctx, save)
	if isCanceled(err) && ctx.Err() == nil {
		rec, err = r.saveStopAgain(ctx, save)
	}
	if errors.Is(err, errUnchanged) {
		return nil
	} else if err != nil {
		return err
	}
	if reason == recsink.StopMaxDuration {
		r.event(recsink.EventStopped, "stopped at the maximum duration of %s after %d bytes", r.s.cfg.MaxDuration, rec.BytesReceived)
	} else {
		r.event(recsink.EventStopped, "stopped after %d bytes", rec.BytesReceived)
	}
	// Sent at the first bytes; a recording that received none is
	// announced now, its name final (a repeat is one event).
	r.announce()
	r.mu.Lock()
	r.stopSaved = true
	r.mu.Unlock()
	r.poke()
	return nil
}

// saveStopAgain saves the stop once more when its first save ended with the
// lease rather than with the caller: the local lease lapsed during the write
// (this node or its database was slow under load, and the renewal came
// late), which cancels writes in flight. The spool is finished already; the
// save waits for a renewal that confirms the lease, up to a lease period. A
// lease lost meanwhile is ErrLeaseLost; a recorder that no longer runs here
// (the service closes), or a lease not confirmed in time, is EUNAVAILABLE: a
// later stop saves it (Finish is idempotent). Never an internal error.
func (r *recorder) saveStopAgain(ctx context.Context, save func(*recsink.Recording) error) (recsink.Recording, error) {
	unavailable := &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 1,
		Message: "the stop could not be saved yet: this node's hold on the recording is being renewed; try again"}
	switch {
	case r.lost():
		return *r.snapshot(), recsink.ErrLeaseLost
	case r.ctx.Err() != nil:
		return *r.snapshot(), unavailable
	}
	wctx, cancel := context.WithTimeout(ctx, r.s.cfg.LeaseTTL)
	defer cancel()
	rec, err := r.transition(wctx, save)
	switch {
	case err == nil, ctx.Err() != nil, !isCanceled(err) && !errors.Is(err, context.DeadlineExceeded):
		return rec, err
	case r.lost():
		return rec, recsink.ErrLeaseLost
	}
	return rec, unavailable
}

// FindRecording implements recsink.RecordingService.
func (s *Service) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, []recsink.RecordingEvent, error) {
	rec, err := s.store.FindRecording(ctx, orgID, id)
	if err != nil {
		return nil, nil, err
	}
	if r := s.recorder(id); r != nil {
		rec = r.snapshot()
	}
	events, err := s.store.ListRecordingEvents(ctx, id)
	return rec, events, err
}

// ListRecordings implements recsink.RecordingService.
func (s *Service) ListRecordings(ctx context.Context, orgID string, f recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	recs, next, err := s.store.ListRecordings(ctx, orgID, f)
	for i, rec := range recs {
		if r := s.recorder(rec.ID); r != nil {
			recs[i] = r.snapshot()
		}
	}
	return recs, next, err
}

// DeleteRecording implements recsink.RecordingService.
func (s *Service) DeleteRecording(ctx context.Context, orgID, id string) error {
	rec, _, err := s.FindRecording(ctx, orgID, id)
	if err != nil {
		return err
	}
	switch {
	case rec.State == recsink.RecordingDeleted:
		return nil
	case rec.Holding():
		return recsink.Errorf(recsink.ECONFLICT, "the recording is %s; stop it and wait until it is uploaded before deleting it", rec.State)
	}
	_, client, err := s.recordingClient(ctx, rec)
	if err != nil {
		return err
	}
	if err := client.DeleteObject(ctx, rec.ObjectKey); err != nil {
		return fmt.Errorf("delete recording %s: %w", id, err)
	}
	// Finished recordings have no owner to fence: any node may mark one.
	if err := s.store.MarkRecordingDeleted(ctx, orgID, id); err != nil {
		return err
	}
	return s.store.AddRecordingEvent(ctx, id, recsink.RecordingEvent{Time: recsink.Now(), Type: recsink.EventDeleted, Message: "object deleted from the bucket"})
}
