package service

import (
	"context"
	"fmt"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// tierParts is the spool layout's tier length; with a recording's PartSize
// it fixes every part boundary.
const tierParts = 1000

// Open picks every unfinished recording back up after a start or a crash:
// its spool holds what was acknowledged and not yet confirmed by S3, its
// confirmed parts are in the store. Recorders resume at the durable offset.
func (s *Service) Open(ctx context.Context) error {
	recs, err := s.store.ListUnfinishedRecordings(ctx)
	if err != nil {
		return fmt.Errorf("list unfinished recordings: %w", err)
	}
	for _, rec := range recs {
		if err := s.resume(ctx, rec); err != nil {
			return fmt.Errorf("resume recording %s: %w", rec.ID, err)
		}
	}
	if len(recs) > 0 {
		s.log.Info("resumed unfinished recordings", "count", len(recs))
	}
	return nil
}

func (s *Service) resume(ctx context.Context, rec *recsink.Recording) error {
	layout := spool.Layout{BaseSize: rec.PartSize, TierParts: tierParts}
	file, err := s.cfg.Spool.Open(rec.ID, layout)
	if err != nil {
		// The data folder lost this recording's spool: what it held cannot
		// come back. Say so rather than complete a truncated object.
		r := s.newRecorder(*rec, nil, layout, nil, nil)
		r.fail(fmt.Sprintf("the local spool of this recording is gone (%v); bytes not yet in the bucket cannot be recovered", err))
		return nil
	}
	parts, err := s.store.ListParts(ctx, rec.ID)
	if err != nil {
		return err
	}
	for _, p := range parts {
		// Confirmed by S3 before the crash, maybe not yet released.
		if err := file.Release(p.Number); err != nil {
			return err
		}
	}
	cred, err := s.store.FindCredential(ctx, rec.OrgID, rec.CredentialID)
	if err != nil {
		return err
	}
	r := s.newRecorder(*rec, file, file.Layout(), cred, nil)
	key, err := s.accessKey(cred)
	if err != nil {
		return err
	}
	if r.client, err = s.cfg.Storage.Client(ctx, rec.Destination, key); err != nil {
		return err
	}
	if file.Finished() && rec.State == recsink.RecordingRecording {
		// Stopped in the spool just before the crash, not yet in the store.
		now := recsink.Now()
		r.rec.State = recsink.RecordingStopping
		r.rec.EndDate = &now
		r.rec.StopReason = recsink.StopRequested
		if err := r.persist(); err != nil {
			return err
		}
	}
	r.event(recsink.EventRecovered, "picked up after a restart at offset %d with %d parts confirmed", file.Offset(), len(parts))
	s.launch(r)
	return nil
}
