package service

import (
	"context"
	"io"
	"time"

	"github.com/recsink/recsink"
)

// ingestRecorder finds the running recording that token opens.
func (s *Service) ingestRecorder(ctx context.Context, id, token string) (*recorder, error) {
	r := s.recorder(id)
	if r == nil {
		rec, err := s.store.FindRecordingByID(ctx, id)
		if err != nil || !tokenMatches(token, rec.IngestTokenHash) {
			return nil, recsink.Errorf(recsink.EUNAUTHORIZED, "the ingest token is not valid for this recording")
		}
		if err := s.elsewhere(rec); err != nil {
			return nil, err
		}
		return nil, recsink.Errorf(recsink.ECONFLICT, "the recording has stopped (state %s)", rec.State)
	}
	if !tokenMatches(token, r.rec.IngestTokenHash) {
		return nil, recsink.Errorf(recsink.EUNAUTHORIZED, "the ingest token is not valid for this recording")
	}
	return r, nil
}

// Offset implements recsink.IngestService.
func (s *Service) Offset(ctx context.Context, id, token string) (int64, error) {
	r := s.recorder(id)
	if r == nil {
		// A finished recording still answers its offset, so that a recorder
		// that reconnects after the stop learns that everything arrived.
		rec, err := s.store.FindRecordingByID(ctx, id)
		if err != nil || !tokenMatches(token, rec.IngestTokenHash) {
			return 0, recsink.Errorf(recsink.EUNAUTHORIZED, "the ingest token is not valid for this recording")
		}
		if err := s.elsewhere(rec); err != nil {
			return 0, err
		}
		return rec.BytesReceived, nil
	}
	if !tokenMatches(token, r.rec.IngestTokenHash) {
		return 0, recsink.Errorf(recsink.EUNAUTHORIZED, "the ingest token is not valid for this recording")
	}
	return r.file.Offset(), nil
}

// Append implements recsink.IngestService.
func (s *Service) Append(ctx context.Context, id, token string, offset int64, body io.Reader) (int64, error) {
	r, err := s.ingestRecorder(ctx, id, token)
	if err != nil {
		return 0, err
	}
	select {
	case r.appendSem <- struct{}{}:
		defer func() { <-r.appendSem }()
	case <-time.After(appendWait):
		return 0, recsink.Errorf(recsink.ECONFLICT, "another upload to this recording is in progress")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	if r.rec.State != recsink.RecordingRecording && r.rec.State != recsink.RecordingBlocked || r.file.Finished() {
		r.mu.Unlock()
		return r.file.Offset(), recsink.Errorf(recsink.ECONFLICT, "the recording has stopped")
	}
	if r.lost() {
		// Another node claimed the recording: nothing more is taken here.
		r.mu.Unlock()
		return r.file.Offset(), recsink.ErrLeaseLost
	}
	r.appendCancel = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.appendCancel = nil
		r.mu.Unlock()
	}()
	before := r.file.Offset()
	n, err := r.file.Append(actx, body, offset)
	if n > before {
		s.cfg.Observer.Received(n - before)
	}
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		// Cut off by a stop: what was synced is kept, and the recorder is told.
		return n, recsink.Errorf(recsink.ECONFLICT, "the recording was stopped while streaming; %d bytes were received", n)
	}
	return n, err
}
