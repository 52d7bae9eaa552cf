package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// objectKey names the object like Whereby's files: [prefix/]<room>-<start>.<ext>.
// When the name is taken in the bucket, the recording ID is added so that no
// other recording is ever overwritten.
func (s *Service) objectKey(ctx context.Context, client recsink.StorageClient, d recsink.Destination, room, id string, start time.Time) string {
	base := strings.Trim(room, "/") + "-" + start.Format("2006-01-02T15:04:05.000Z07:00")
	if d.Prefix != "" {
		base = d.Prefix + "/" + base
	}
	key := base + "." + d.FileFormat
	if _, _, err := client.HeadObject(ctx, key); err == nil || s.keyInUse(d.Bucket, key) {
		key = base + "-" + id + "." + d.FileFormat
	}
	return key
}

// keyInUse reports whether a running recording writes to bucket/key: two
// recordings of a room started in the same millisecond.
func (s *Service) keyInUse(bucket, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recorders {
		if r.rec.Destination.Bucket == bucket && r.rec.ObjectKey == key {
			return true
		}
	}
	return false
}

// StartRecording implements recsink.RecordingService.
func (s *Service) StartRecording(ctx context.Context, orgID, meetingID string) (*recsink.Recording, string, error) {
	m, err := s.store.FindMeeting(ctx, orgID, meetingID)
	if err != nil {
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
	layout := spool.NewLayout(s.cfg.MaxIngestRate * int64(s.cfg.MaxDuration/time.Second))
	token := recsink.RandomToken(32)
	now := recsink.Now()
	rec := &recsink.Recording{
		ID:              recsink.NewID("rec"),
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
	}
	rec.ObjectKey = s.objectKey(ctx, client, cred.Destination, m.RoomName, rec.ID, now)
	up, err := client.CreateMultipartUpload(ctx, rec.ObjectKey, cred.Destination.ContentType(), map[string]string{"recording-id": rec.ID})
	rec.UploadID = up.ID
	if err != nil {
		return nil, "", fmt.Errorf("start recording: %w", err)
	}
	file, err := s.cfg.Spool.Create(rec.ID, layout)
	if err != nil {
		_ = client.AbortMultipartUpload(s.ctx, rec.ObjectKey, rec.UploadID)
		return nil, "", err
	}
	if err := s.store.CreateRecording(ctx, rec); err != nil {
		file.Close()
		_ = s.cfg.Spool.Remove(rec.ID)
		_ = client.AbortMultipartUpload(s.ctx, rec.ObjectKey, rec.UploadID)
		return nil, "", err
	}
	if rec.Owner, err = s.store.ClaimRecording(ctx, rec.ID, s.cfg.NodeID, s.cfg.NodeURL, recsink.Now(), recsink.Now().Add(s.cfg.LeaseTTL), true); err != nil {
		return nil, "", err
	}
	r := s.newRecorder(*rec, file, layout, cred, client)
	r.event(recsink.EventStarted, "recording started into s3://%s/%s with key %s", rec.Destination.Bucket, rec.ObjectKey, cred.AccessKeyID)
	r.notify(recsink.WebhookRecordingStarted, "")
	s.launch(r)
	return r.snapshot(), token, nil
}

func (s *Service) newRecorder(rec recsink.Recording, file *spool.File, layout spool.Layout, cred *recsink.Credential, client recsink.StorageClient) *recorder {
	return &recorder{
		s:         s,
		file:      file,
		layout:    layout,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		appendSem: make(chan struct{}, 1),
		rec:       rec,
		cred:      cred,
		client:    client,
		refused:   map[string]bool{},
	}
}

func (s *Service) launch(r *recorder) {
	s.mu.Lock()
	s.recorders[r.rec.ID] = r
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		r.run(s.ctx)
	}()
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
	if r == nil {
		if err := s.elsewhere(rec); err != nil {
			return nil, err
		}
		return rec, nil // already finished: stopping is idempotent
	}
	if err := r.stop(ctx, recsink.StopRequested); err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// stop ends ingest and marks the recording stopping; the run loop then
// uploads the tail and completes the object.
func (r *recorder) stop(ctx context.Context, reason string) error {
	r.mu.Lock()
	if r.rec.State != recsink.RecordingRecording && r.rec.State != recsink.RecordingBlocked {
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
	// Finish is persisted in the spool before the state, so that a crash in
	// between is seen at restart as a stop.
	if err := r.file.Finish(); err != nil {
		return err
	}
	now := recsink.Now()
	r.mu.Lock()
	if r.rec.State == recsink.RecordingRecording {
		r.rec.State = recsink.RecordingStopping
	} // a blocked recording stays blocked until a key works
	r.rec.EndDate = &now
	r.rec.StopReason = reason
	r.rec.UpdatedAt = now
	// Known for good now; saved so that another node can complete the
	// object if this one dies once every part is in the bucket.
	r.rec.SHA256 = r.file.SHA256()
	r.rec.BytesReceived = r.file.Offset()
	r.mu.Unlock()
	if err := r.persist(); err != nil {
		return err
	}
	if reason == recsink.StopMaxDuration {
		r.event(recsink.EventStopped, "stopped at the maximum duration of %s after %d bytes", r.s.cfg.MaxDuration, r.file.Offset())
	} else {
		r.event(recsink.EventStopped, "stopped after %d bytes", r.file.Offset())
	}
	r.poke()
	return nil
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
	rec.State = recsink.RecordingDeleted
	rec.UpdatedAt = recsink.Now()
	if err := s.store.UpdateRecording(ctx, rec); err != nil {
		return err
	}
	return s.store.AddRecordingEvent(ctx, id, recsink.RecordingEvent{Time: recsink.Now(), Type: recsink.EventDeleted, Message: "object deleted from the bucket"})
}
