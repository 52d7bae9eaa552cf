package service

import (
	"context"
	"fmt"
	"sync"
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

// A node's hold on a recording is a lease in the store, on the database's
// clock, renewed every LeaseTTL/3. Each recorder also keeps the lease
// locally, on this node's monotonic clock: valid until the start of the last
// renewal that confirmed it, plus LeaseTTL, less a margin. A statement's
// now() is after its start, so the local lease ends before the store's. A
// node paused (SIGSTOP, a long GC, a lost network) past that point makes no
// S3 write and no row write until a renewal confirms that it still holds the
// recording with the same epoch; one that does not is stopped.

// takeoverWorkers bounds the takeovers run at once; takeoverTimeout bounds
// each, S3 calls included.
const (
	takeoverWorkers = 4
	takeoverTimeout = 2 * time.Minute
)

// leaseMargin is what the local lease keeps in hand against the store's.
func (s *Service) leaseMargin() time.Duration { return s.cfg.LeaseTTL / 5 }

// leaseState is a recorder's local view of its lease.
type leaseState struct {
	mu      sync.Mutex
	until   time.Time     // monotonic: valid before this
	renewed chan struct{} // closed and replaced at each confirmation
	// valid ends when the lease lapses without a renewal, or the recorder
	// stops: writes in flight under the lease end with it.
	valid  context.Context
	lapse  context.CancelFunc
	timer  *time.Timer
	lost   chan struct{} // closed when the lease is lost for good
	losing sync.Once
}

func (l *leaseState) init(r *recorder) {
	l.renewed = make(chan struct{})
	l.lost = make(chan struct{})
	l.valid, l.lapse = context.WithCancel(r.ctx)
	l.lapse() // not valid until confirmed
	l.timer = time.AfterFunc(time.Hour, r.lapsed)
	l.timer.Stop()
}

// confirm records that the store holds the recording for this node, by a
// claim or renewal whose statement began at start.
func (r *recorder) confirm(start time.Time) {
	l := &r.lease
	until := start.Add(r.s.cfg.LeaseTTL - r.s.leaseMargin())
	l.mu.Lock()
	defer l.mu.Unlock()
	if !time.Now().Before(until) {
		return // the answer came too late to count
	}
	if until.After(l.until) {
		l.until = until
	}
	if l.valid.Err() != nil {
		l.valid, l.lapse = context.WithCancel(r.ctx)
	}
	l.timer.Reset(time.Until(l.until))
	close(l.renewed)
	l.renewed = make(chan struct{})
}

// lapsed ends the writes in flight once the lease ran out unrenewed.
func (r *recorder) lapsed() {
	l := &r.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.until) {
		return // renewed meanwhile
	}
	if l.valid.Err() == nil {
		r.s.log.Warn("lease of recording lapsed: writes wait for a renewal", "recording", r.rec.ID)
	}
	l.lapse()
}

// lost reports whether the recording's lease was lost to another node.
func (r *recorder) lost() bool {
	select {
	case <-r.lease.lost:
		return true
	default:
		return false
	}
}

// leaseCtx waits until the recorder's lease is valid and returns a context
// for writes under it: it ends with ctx, when the lease lapses, or when it is
// lost. Call done when the write is over.
func (r *recorder) leaseCtx(ctx context.Context) (wctx context.Context, done func(), err error) {
	l := &r.lease
	for {
		if r.lost() {
			return nil, nil, recsink.ErrLeaseLost
		}
		l.mu.Lock()
		valid, renewed := l.valid, l.renewed
		ok := valid.Err() == nil && time.Now().Before(l.until)
		l.mu.Unlock()
		if ok {
			wctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(valid, cancel)
			return wctx, func() { stop(); cancel() }, nil
		}
		select {
		case <-renewed:
		case <-l.lost:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// lose stops the recorder at once after another node took the recording:
// its uploads and ingest end and it leaves the map, but its spool stays,
// for the new owner to ask about or for this node's return (a restart
// resumes a recording whose spool it holds).
func (r *recorder) lose(why string) {
	r.lease.losing.Do(func() {
		close(r.lease.lost)
		r.cancel()
		r.lease.timer.Stop()
		r.mu.Lock()
		if r.appendCancel != nil {
			r.appendCancel()
		}
		r.mu.Unlock()
		r.s.forget(r)
		r.s.log.Warn("lost the lease of a recording: stopped it here and kept its spool", "recording", r.rec.ID, "why", why)
	})
}

// forget removes r from the running recorders, if it is still the one there.
func (s *Service) forget(r *recorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recorders[r.rec.ID] == r {
		delete(s.recorders, r.rec.ID)
	}
}

// renewals renews this node's leases every LeaseTTL/3, until ctx ends. It
// runs alone in its goroutine, so that nothing (a takeover, a slow S3 call)
// can delay it, and each renewal is bounded by the period.
func (s *Service) renewals(ctx context.Context) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		s.renew(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) renew(ctx context.Context) {
	held := s.heldRecorders() // before the statement: a recorder added later is judged next time
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL/3)
	epochs, err := s.store.RenewLeases(rctx, s.cfg.NodeID, s.cfg.LeaseTTL)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("renew leases", "err", err)
		}
		return
	}
	s.findStrays(ctx, epochs)
	for _, r := range held {
		r.mu.Lock()
		epoch, finished := r.rec.Owner.Epoch, r.rec.Finished()
		r.mu.Unlock()
		got, ok := epochs[r.rec.ID]
		switch {
		case ok && got == epoch:
			r.confirm(start)
		case finished || r.finalizing.Load():
			// Finished meanwhile: the store renews only unfinished ones.
		case ok:
			r.lose(fmt.Sprintf("the recording was claimed again (epoch %d, this recorder's %d)", got, epoch))
		default:
			r.lose("the lease renewal no longer lists the recording: another node claimed it")
		}
	}
}

// strayRenewals is how many renewals in a row must list a recording that
// this node neither runs nor is taking on before it is settled: a start
// whose row was written though the store answered an error, or a resume
// that failed after its claim. Renewed here for ever, such a recording
// would never be orphaned, and would hold its key.
const strayRenewals = 3

// findStrays notes the recordings that a renewal listed and that this node
// does not run, and settles those seen strayRenewals times in a row, one
// at a time, as a restart would: resumed from the spool when it is here,
// failed when it is not.
func (s *Service) findStrays(ctx context.Context, epochs map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var settle []string
	for id := range s.strays {
		if _, ok := epochs[id]; !ok {
			delete(s.strays, id)
		}
	}
	for id := range epochs {
		if s.recorders[id] != nil {
			delete(s.strays, id)
			continue
		}
		if _, busy := s.pending[id]; busy {
			delete(s.strays, id)
			continue
		}
		s.strays[id]++
		if s.strays[id] >= strayRenewals {
			settle = append(settle, id)
		}
	}
	if len(settle) == 0 || s.settling {
		return
	}
	s.settling = true
	for _, id := range settle {
		s.pending[id] = nil
		delete(s.strays, id)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, id := range settle {
			s.settleStray(ctx, id)
			s.endTakeover(id)
		}
		s.mu.Lock()
		s.settling = false
		s.mu.Unlock()
	}()
}

func (s *Service) settleStray(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, takeoverTimeout)
	defer cancel()
	rec, err := s.store.FindRecordingByID(ctx, id)
	if err != nil || rec.Finished() || rec.Owner.Node != s.cfg.NodeID {
		return
	}
	s.log.Warn("a recording renewed by this node runs nowhere: settling it", "recording", id)
	if err := s.resume(ctx, rec); err != nil && ctx.Err() == nil {
		s.log.Error("settle recording", "recording", id, "err", err)
	}
}

// heldRecorders returns the recorders whose lease this node keeps: those
// it runs and those it is taking over.
func (s *Service) heldRecorders() []*recorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*recorder, 0, len(s.recorders)+len(s.pending))
	for _, r := range s.recorders {
		out = append(out, r)
	}
	for _, r := range s.pending {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// takeoverLoop looks for what dead nodes left every LeaseTTL/3 and takes it
// over with at most takeoverWorkers at once, each within takeoverTimeout,
// until ctx ends.
func (s *Service) takeoverLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer t.Stop()
	sem := make(chan struct{}, takeoverWorkers)
	for {
		s.findOrphans(ctx, sem)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) findOrphans(ctx context.Context, sem chan struct{}) {
	lctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL)
	orphans, err := s.store.ListOrphanedRecordings(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("list orphaned recordings", "err", err)
		}
		return
	}
	for _, rec := range orphans {
		if !s.beginTakeover(rec.ID) {
			continue // running here, or being taken over already
		}
		select {
		case sem <- struct{}{}:
		default:
			s.endTakeover(rec.ID)
			return // every worker is busy: the rest wait for the next round
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-sem }()
			defer s.endTakeover(rec.ID)
			tctx, cancel := context.WithTimeout(ctx, takeoverTimeout)
			defer cancel()
			if err := s.takeOver(tctx, rec); err != nil && ctx.Err() == nil {
				s.log.Warn("take over recording", "recording", rec.ID, "err", err)
			}
		}()
	}
}

// beginTakeover reserves id for a takeover (or a start, or settling a
// stray) unless it runs here or is reserved already.
func (s *Service) beginTakeover(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recorders[id] != nil {
		return false
	}
	if _, busy := s.pending[id]; busy {
		return false
	}
	s.pending[id] = nil
	return true
}

func (s *Service) endTakeover(id string) {
	s.mu.Lock()
	r := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		r.lease.timer.Stop()
	}
}

// takeOver handles a recording whose node stopped renewing its lease. A
// stopped recording whose every byte is in the bucket is completed here; one
// whose unsent bytes are in the dead node's spool waits for that node to come
// back, and is failed, saying so, after NodeLossTimeout.
func (s *Service) takeOver(ctx context.Context, rec *recsink.Recording) error {
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	parts, err := s.store.ListParts(ctx, rec.ID)
	if err != nil {
		return err
	}
	complete, lostSince, lost := s.orphanState(rec, parts, now)
	if !complete && !lost {
		return nil
	}
	start := time.Now()
	owner, err := s.store.ClaimRecording(ctx, rec.ID, s.cfg.NodeID, s.cfg.NodeURL, s.cfg.LeaseTTL, false)
	if err != nil || owner.Node != s.cfg.NodeID {
		return err // another node won
	}
	from := rec.Owner.Node
	// Read again under the claim: the owner may have moved it on meanwhile.
	if rec, err = s.store.FindRecordingByID(ctx, rec.ID); err != nil {
		return err
	}
	if rec.Finished() {
		return nil
	}
	if parts, err = s.store.ListParts(ctx, rec.ID); err != nil {
		return err
	}
	complete, _, _ = s.orphanState(rec, parts, now)
	rec.Owner = owner
	r := s.newRecorder(*rec, nil, spool.Layout{}, nil, nil, start)
	s.mu.Lock()
	s.pending[rec.ID] = r // renewed with the rest until it is done
	s.mu.Unlock()
	if !complete {
		r.fail(ctx, fmt.Sprintf("node %s, which held %d bytes of this recording not yet in the bucket, has been gone since %s: those bytes cannot be recovered, so the recording is not completed",
			from, rec.BytesReceived-sumParts(parts), lostSince.Format(time.RFC3339)))
		return nil
	}
	cred, client, err := s.recordingClient(ctx, rec)
	if err != nil {
		return err
	}
	r.cred, r.client = cred, client
	r.event(recsink.EventRecovered, "taken over from node %s, which stopped renewing its lease; every byte is in the bucket", from)
	s.log.Info("took over recording", "recording", rec.ID, "from", from, "took", time.Since(start))
	return r.completeFromBucket(ctx, parts)
}

// orphanState tells whether an orphaned recording can be completed from the
// bucket, and whether its node is lost for good (gone since lostSince, on
// the database's clock, for longer than NodeLossTimeout). A recording with
// no lease at all counts from its last update.
func (s *Service) orphanState(rec *recsink.Recording, parts []recsink.Part, now time.Time) (complete bool, lostSince time.Time, lost bool) {
	// Stopped (stopping, or blocked after its stop) with every byte in the
	// bucket: whoever holds the lease can complete it.
	stopped := rec.State == recsink.RecordingStopping || rec.State == recsink.RecordingBlocked && rec.EndDate != nil
	complete = stopped && rec.SHA256 != "" && sumParts(parts) == rec.BytesReceived
	lostSince = rec.UpdatedAt
	if rec.Owner.LeaseExpiresAt != nil {
		lostSince = *rec.Owner.LeaseExpiresAt
	}
	return complete, lostSince, now.Sub(lostSince) > s.cfg.NodeLossTimeout
}

func sumParts(parts []recsink.Part) int64 {
	var n int64
	for _, p := range parts {
		n += p.Size
	}
	return n
}

// completeFromBucket completes a stopped recording whose parts are all in
// the bucket, without its spool.
func (r *recorder) completeFromBucket(ctx context.Context, parts []recsink.Part) error {
	rec := *r.snapshot()
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return err
	}
	sum, err := completeObject(wctx, r.client, &rec, parts, rec.BytesReceived)
	done()
	if err != nil {
		return err
	}
	return r.finishUploaded(ctx, r.client, rec.BytesReceived, sumParts(parts), rec.SHA256, sum)
}
