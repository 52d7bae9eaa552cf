package service

import (
	"context"
	"fmt"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// tierParts is the spool layout's tier length; with a recording's PartSize
// it fixes every part boundary.
const tierParts = 1000

// Open picks every unfinished recording back up after a start or a crash:
// its spool holds what was acknowledged and not yet confirmed by S3, its
// confirmed parts are in the store. Recorders resume at the durable offset.
// Open asks only the store and the local spool, so it returns within
// moments and HEAD and ingest work at once, whatever S3 is doing; each
// recording asks S3 which parts it holds (reconcile) in the background,
// before its first upload.
func (s *Service) Open(ctx context.Context) error {
	recs, err := s.store.ListUnfinishedRecordings(ctx)
	if err != nil {
		return fmt.Errorf("list unfinished recordings: %w", err)
	}
	for _, rec := range recs {
		// One recording that cannot resume (its endpoint is no longer
		// allowed, say) must not keep the others, or the server, down. Its
		// spool stays; the next start tries again.
		if err := s.resume(ctx, rec); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Error("resume recording", "recording", rec.ID, "err", err)
		}
	}
	s.removeFinishedSpools(ctx)
	s.startBackground()
	return nil
}

// resumed is what a recording picked up by Open still has to do before its
// first upload.
type resumed struct {
	known []recsink.Part // the parts the store had confirmed
}

// reconcileTimeout bounds reconcile, the wait for an upload slot included.
const reconcileTimeout = 10 * time.Second

// reconcile asks S3 which parts it holds: a part uploaded just before a
// crash, before the store recorded it, is recorded now instead of sent again.
// Part n's bytes are fixed by the layout and the spool never changes them,
// so S3's part n of the right size is the spool's part n. When S3 cannot be
// asked now, the parts are simply sent again. It runs in the recording's
// upload loop, with an upload slot, so that a hanging bucket delays only its
// own organization's recordings.
func (r *recorder) reconcile(ctx context.Context, known []recsink.Part) {
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	r.mu.Lock()
	client := r.client
	r.mu.Unlock()
	key, up := r.object()
	var inS3 []recsink.Part
	release, err := r.s.slots.Acquire(ctx, r.rec.OrgID)
	if err == nil {
		inS3, err = client.ListParts(ctx, key, up.ID)
		release()
	}
	if err != nil {
		if !isCanceled(err) {
			r.s.log.Warn("list parts at resume; unconfirmed parts will be sent again", "recording", r.rec.ID, "err", err)
		}
		return
	}
	recorded := map[int32]bool{}
	for _, p := range known {
		recorded[p.Number] = true
	}
	complete := map[int32]int64{}
	for _, n := range r.file.CompleteParts() {
		pr, err := r.file.Part(n)
		if err != nil {
			continue
		}
		complete[n] = pr.Size()
		pr.Close()
	}
	held := r.holdsFirstPart()
	for _, p := range inS3 {
		if held && p.Number == 1 {
			continue // a finalized part 1 sent before the crash: it is sent again at the stop
		}
		size, ok := complete[p.Number]
		if recorded[p.Number] || !ok || size != p.Size {
			continue
		}
		p.Offset, _ = r.layout.Part(p.Number)
		if err := r.s.store.PutPart(ctx, r.rec.ID, p); err != nil {
			return
		}
		if err := r.file.Release(p.Number); err != nil {
			return
		}
		r.mu.Lock()
		r.rec.BytesUploaded += p.Size
		r.mu.Unlock()
		r.s.log.Info("part found in S3 at resume", "recording", r.rec.ID, "part", p.Number)
	}
}

// removeFinishedSpools frees the spool of recordings that another node
// completed while this one was down.
func (s *Service) removeFinishedSpools(ctx context.Context) {
	ids, err := s.cfg.Spool.List()
	if err != nil {
		s.log.Error("list spool", "err", err)
		return
	}
	for _, id := range ids {
		if s.recorder(id) != nil {
			continue
		}
		rec, err := s.store.FindRecordingByID(ctx, id)
		if err != nil || !rec.Finished() || rec.State == recsink.RecordingFailed {
			continue // a failed recording's spool is kept for recovery by hand
		}
		if err := s.cfg.Spool.Remove(id); err != nil {
			s.log.Error("remove spool", "recording", id, "err", err)
		} else {
			s.log.Info("removed the spool of a recording completed elsewhere", "recording", id)
		}
	}
}

func (s *Service) resume(ctx context.Context, rec *recsink.Recording) error {
	if s.beginTakeover(rec.ID) { // not a stray while it resumes
		defer s.endTakeover(rec.ID)
	}
	layout := spool.Layout{BaseSize: rec.PartSize, TierParts: tierParts}
	file, err := s.cfg.Spool.Open(rec.ID, layout)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		if rec.Owner.Node != "" && rec.Owner.Node != s.cfg.NodeID {
			return nil // another node's: its spool is there
		}
		// Ours, and the data folder lost its spool: what it held cannot
		// come back. Say so rather than complete a truncated object.
		claimed := time.Now()
		if rec.Owner, err = s.store.ClaimRecording(ctx, rec.ID, s.cfg.NodeID, s.cfg.NodeURL, s.cfg.LeaseTTL, false); err != nil || rec.Owner.Node != s.cfg.NodeID {
			return err
		}
		r := s.newRecorder(*rec, nil, layout, nil, nil, claimed)
		defer r.exit()
		r.fail(ctx, "the local spool of this recording is gone; bytes not yet in the bucket cannot be recovered")
		return nil
	} else if err != nil {
		return err
	}
	// This node holds the spool, so it runs the recording, whoever held
	// the lease meanwhile: the forced claim takes a new epoch, which fences
	// off any other node's writes.
	claimed := time.Now()
	if rec.Owner, err = s.store.ClaimRecording(ctx, rec.ID, s.cfg.NodeID, s.cfg.NodeURL, s.cfg.LeaseTTL, true); err != nil {
		file.Close()
		return err
	}
	now, err := s.store.Now(ctx)
	if err != nil {
		file.Close()
		return err
	}
	parts, err := s.store.ListParts(ctx, rec.ID)
	if err != nil {
		file.Close()
		return err
	}
	for _, p := range parts {
		// Confirmed by S3 before the crash, maybe not yet released.
		if err := file.Release(p.Number); err != nil {
			file.Close()
			return err
		}
	}
	cred, client, err := s.recordingClient(ctx, rec)
	if err != nil {
		file.Close()
		return err
	}
	r := s.newRecorder(*rec, file, file.Layout(), cred, client, claimed)
	r.resumed = &resumed{known: parts}
	if file.Finished() && rec.EndDate == nil {
		// Stopped in the spool just before the crash, not yet in the store.
		end := s.dbNow(ctx)
		if _, err := r.transition(ctx, func(rec *recsink.Recording) error {
			if rec.State == recsink.RecordingRecording {
				rec.State = recsink.RecordingStopping
			}
			rec.EndDate = &end
			rec.StopReason = recsink.StopRequested
			rec.SHA256 = file.SHA256()
			rec.BytesReceived = file.Offset()
			return nil
		}); err != nil {
			r.exit()
			return err
		}
		r.stopSaved = true
	}
	r.event(recsink.EventRecovered, "picked up after a restart at offset %d with %d parts confirmed", file.Offset(), len(parts))
	s.log.Info("resumed recording", "recording", rec.ID, "offset", file.Offset(), "parts", len(parts))
	s.launch(r, rec.StartDate.Add(s.cfg.MaxDuration).Sub(now))
	return nil
}
