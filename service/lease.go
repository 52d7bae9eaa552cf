package service

import (
	"context"
	"fmt"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// elsewhere returns an *ElsewhereError when another node runs the unfinished
// recording, so that the request is sent on to it.
func (s *Service) elsewhere(rec *recsink.Recording) error {
	if !rec.Holding() || rec.Owner.Node == "" || rec.Owner.Node == s.cfg.NodeID || rec.Owner.URL == "" {
		return nil
	}
	return &recsink.ElsewhereError{RecordingID: rec.ID, URL: rec.Owner.URL}
}

// leases renews this node's leases and takes over what dead nodes left,
// until ctx ends.
func (s *Service) leases(ctx context.Context) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		s.leaseTick(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) leaseTick(ctx context.Context) {
	now := recsink.Now()
	if err := s.store.RenewLeases(ctx, s.cfg.NodeID, now.Add(s.cfg.LeaseTTL)); err != nil {
		if ctx.Err() == nil {
			s.log.Error("renew leases", "err", err)
		}
		return
	}
	orphans, err := s.store.ListOrphanedRecordings(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("list orphaned recordings", "err", err)
		}
		return
	}
	for _, rec := range orphans {
		if s.recorder(rec.ID) != nil {
			continue
		}
		if err := s.takeOver(ctx, rec, now); err != nil && ctx.Err() == nil {
			s.log.Warn("take over recording", "recording", rec.ID, "err", err)
		}
	}
}

// takeOver handles a recording whose node stopped renewing its lease. A
// stopped recording whose every byte is in the bucket is completed here; one
// whose unsent bytes are in the dead node's spool waits for that node to come
// back, and is failed, saying so, after NodeLossTimeout.
func (s *Service) takeOver(ctx context.Context, rec *recsink.Recording, now time.Time) error {
	parts, err := s.store.ListParts(ctx, rec.ID)
	if err != nil {
		return err
	}
	var inBucket int64
	for _, p := range parts {
		inBucket += p.Size
	}
	complete := rec.State == recsink.RecordingStopping && rec.SHA256 != "" && inBucket == rec.BytesReceived
	lostSince := now
	if rec.Owner.LeaseExpiresAt != nil {
		lostSince = *rec.Owner.LeaseExpiresAt
	}
	lost := now.Sub(lostSince) > s.cfg.NodeLossTimeout
	if !complete && !lost {
		return nil
	}
	owner, err := s.store.ClaimRecording(ctx, rec.ID, s.cfg.NodeID, s.cfg.NodeURL, now, now.Add(s.cfg.LeaseTTL), false)
	if err != nil || owner.Node != s.cfg.NodeID {
		return err // another node won
	}
	from := rec.Owner.Node
	rec.Owner = owner
	r := s.newRecorder(*rec, nil, spool.Layout{}, nil, nil)
	if !complete {
		r.fail(fmt.Sprintf("node %s, which held %d bytes of this recording not yet in the bucket, has been gone since %s: those bytes cannot be recovered, so the recording is not completed",
			from, rec.BytesReceived-inBucket, lostSince.Format(time.RFC3339)))
		return nil
	}
	cred, client, err := s.recordingClient(ctx, rec)
	if err != nil {
		return err
	}
	r.cred, r.client = cred, client
	r.event(recsink.EventRecovered, "taken over from node %s, which stopped renewing its lease; every byte is in the bucket", from)
	s.log.Info("took over recording", "recording", rec.ID, "from", from)
	return r.completeFromBucket(ctx, parts)
}

// completeFromBucket completes a stopped recording whose parts are all in
// the bucket, without its spool.
func (r *recorder) completeFromBucket(ctx context.Context, parts []recsink.Part) error {
	rec := r.rec
	if err := completeObject(ctx, r.client, &rec, parts, rec.BytesReceived); err != nil {
		return err
	}
	return r.finishUploaded(ctx, r.client, rec.BytesReceived, rec.SHA256)
}
