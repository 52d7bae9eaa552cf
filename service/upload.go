package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/recsink/recsink"
)

type partResult struct {
	n    int32
	cred string
	// keys is the recording's keyChanges when the attempt began.
	keys uint64
	err  error
}

// run uploads complete parts as they appear and completes the object once
// the recording stopped and every part is confirmed. It ends when the
// recording is over here: finished, or ctx ended (the service closes, or
// the lease was lost). A recording picked up by Open first asks S3 which
// parts it already holds.
func (r *recorder) run(ctx context.Context, deadline *time.Timer) {
	defer r.closeFinalizer()
	if res := r.resumed; res != nil {
		r.resumed = nil
		r.reconcile(ctx, res.known)
	}
	results := make(chan partResult, r.s.cfg.PartConcurrency)
	inflight := map[int32]string{} // part → the credential it goes out with
	defer func() {
		for len(inflight) > 0 { // uploads see ctx canceled and return
			res := <-results
			delete(inflight, res.n)
		}
	}()
	var retryAt time.Time
	var failures int
	defer deadline.Stop()
	// The durable offset is saved now and then, so that other nodes show
	// progress and a lost node's loss can be told in bytes.
	progress := time.NewTimer(r.s.progressInterval())
	defer progress.Stop()
	saved, savedUp := r.file.Offset(), r.snapshot().BytesUploaded
	// Parts found complete now (a resume) go at once; later ones wait their
	// spread while the recording is live.
	spread := newSpreader(r.s.cfg.UploadSpread, time.Now(), r.uploadable())
	spreadTimer := time.NewTimer(time.Hour)
	defer spreadTimer.Stop()

	for {
		ready := !time.Now().Before(retryAt)
		var spreadWait time.Duration // the shortest wait of a part held back
		if ready {
			r.decideFinalize()
			r.feedIndex()
			live := !r.file.Finished()
			for _, n := range r.uploadable() {
				if len(inflight) >= r.s.cfg.PartConcurrency {
					break
				}
				if inflight[n] != "" {
					continue
				}
				if w := spread.wait(n, time.Now(), live); w > 0 {
					if spreadWait == 0 || w < spreadWait {
						spreadWait = w
					}
					continue
				}
				r.mu.Lock()
				client, cred := r.client, r.cred.ID
				r.mu.Unlock()
				inflight[n] = cred
				keys := r.keyChanges.Load()
				go func() { results <- partResult{n: n, cred: cred, keys: keys, err: r.upload(ctx, client, n)} }()
			}
			if r.stopped() && len(inflight) == 0 && len(r.uploadable()) == 0 {
				r.mu.Lock()
				cred, client := r.cred.ID, r.client
				r.mu.Unlock()
				keys := r.keyChanges.Load()
				var err error
				switch {
				case r.fin != nil && r.fz == nil:
					r.fz, err = r.finalize(ctx, client)
					if err == nil {
						continue // finalized, or abandoned: then part 1 goes up as it is
					}
				case r.fz != nil:
					err = r.completeFinalized(ctx, r.fz)
				default:
					err = r.complete(ctx)
				}
				if err == nil || ctx.Err() != nil {
					return
				}
				if errors.Is(err, errRefused) {
					return // logged; the spool stays for a restart to look at
				}
				if isCanceled(err) {
					continue // the lease lapsed: the next attempt waits for a renewal
				}
				if r.handle(err, cred, failures, 0) {
					return
				}
				failures, retryAt = r.next(cred, failures, keys)
				continue
			}
		}
		var retry <-chan time.Time
		var retryTimer *time.Timer
		if !ready {
			retryTimer = time.NewTimer(time.Until(retryAt))
			retry = retryTimer.C
		}
		var spreadDone <-chan time.Time
		if spreadWait > 0 {
			spreadTimer.Reset(spreadWait)
			spreadDone = spreadTimer.C
		}
		select {
		case res := <-results:
			delete(inflight, res.n)
			if res.err == nil {
				failures = 0
				spread.sent(res.n)
				delete(r.digestRefusals, res.n)
				r.uploaded()
			} else if isCanceled(res.err) {
				// The lease lapsed (or the recorder stops): not S3's failure.
				// The part goes again once a renewal confirms the lease.
			} else if ctx.Err() == nil {
				if r.handle(res.err, res.cred, failures, res.n) {
					return
				}
				failures, retryAt = r.next(res.cred, failures, res.keys)
			}
			r.keyReleased(res.cred, inflight)
		case <-r.file.Ready():
		case <-progress.C:
			if off, up := r.file.Offset(), r.snapshot().BytesUploaded; off != saved || up != savedUp {
				saved, savedUp = off, up
				_ = r.persist()
			}
			progress.Reset(r.s.progressInterval())
		case <-r.kick:
			retryAt = time.Time{}
		case <-retry:
		case <-spreadDone:
		case <-deadline.C:
			r.s.wg.Add(1)
			go func() {
				defer r.s.wg.Done()
				if err := r.stop(ctx, recsink.StopMaxDuration); err != nil && !isCanceled(err) {
					r.s.log.Error("stop at maximum duration", "recording", r.rec.ID, "err", err)
				}
			}()
		case <-ctx.Done():
			return
		}
		if retryTimer != nil {
			retryTimer.Stop()
		}
		spreadTimer.Stop()
	}
}

// keyReleased reports a key the recording switched away from as drained
// once no part in flight goes out with it: that was its last use.
func (r *recorder) keyReleased(credID string, inflight map[int32]string) {
	r.mu.Lock()
	current := r.cred.ID
	r.mu.Unlock()
	if credID == current {
		return
	}
	for _, c := range inflight {
		if c == credID {
			return
		}
	}
	r.s.checkDrained(r.rec.OrgID, credID)
}

// next returns the failure count and the time of the next attempt after a
// failure with credential credID of an attempt that began when the
// recording's keyChanges was keys: at once when the recording has just
// switched to another key, or a key was saved while the attempt ran (its
// wake-up came while it was in flight), else after a backoff.
func (r *recorder) next(credID string, failures int, keys uint64) (int, time.Time) {
	r.mu.Lock()
	switched := r.cred.ID != credID
	r.mu.Unlock()
	if switched || r.keyChanges.Load() != keys {
		return failures, time.Time{}
	}
	return failures + 1, time.Now().Add(r.backoff(failures + 1))
}

// progressInterval is how often a recording's durable offset is saved: every
// 2 s, and less often when this node runs more than 200 recordings, so
// that the node saves at most about 100 rows a second. Each save is a
// database transaction; at 370 recordings the saves every 2 s took 12 % of
// the node's CPU (BenchmarkConcurrentRecordings' profile), for figures that
// only show progress on other nodes and tell a lost node's loss.
func (s *Service) progressInterval() time.Duration {
	s.mu.Lock()
	n := len(s.recorders)
	s.mu.Unlock()
	return max(minProgressInterval, time.Duration(n)*progressPerRecording)
}

const (
	minProgressInterval  = 2 * time.Second
	progressPerRecording = 10 * time.Millisecond
)

// backoff is capped exponential with jitter: 250 ms, 500 ms, ... RetryMax.
func (r *recorder) backoff(failures int) time.Duration {
	d := 250 * time.Millisecond << min(failures-1, 16)
	d = min(d, r.s.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// upload sends part n and records it once S3 confirmed it; only then are
// its bytes released from the spool.
func (r *recorder) upload(ctx context.Context, client recsink.StorageClient, n int32) error {
	release, err := r.s.slots.Acquire(ctx, r.rec.OrgID)
	if err != nil {
		return err
	}
	defer release()
	// No S3 write and no row write without a valid lease; a lease that
	// lapses or is lost meanwhile ends the upload.
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return err
	}
	defer done()
	pr, err := r.file.Part(n)
	if err != nil {
		return err
	}
	defer pr.Close()
	began := time.Now()
	key, up := r.object()
	part, err := client.UploadPart(wctx, key, up, n, pr, pr.Size())
	if err != nil {
		r.s.cfg.Observer.UploadFailed(errorLabel(err))
		return err
	}
	r.s.cfg.Observer.PartUploaded(pr.Size(), time.Since(began))
	offset, _ := r.layout.Part(n)
	if err := r.s.store.PutPart(wctx, r.rec.ID, recsink.Part{Number: n, Offset: offset, Size: pr.Size(), ETag: part.ETag, Checksum: part.Checksum}); err != nil {
		return err
	}
	if err := r.file.Release(n); err != nil {
		return err
	}
	r.mu.Lock()
	r.rec.BytesUploaded += pr.Size()
	r.mu.Unlock()
	return nil
}

// uploaded notes a confirmed part: it ends a block. The bytes uploaded are
// saved with the durable offset every progressInterval, and at completion.
func (r *recorder) uploaded() {
	r.mu.Lock()
	blocked := r.rec.State == recsink.RecordingBlocked
	r.mu.Unlock()
	if !blocked {
		return
	}
	var wasBlocked bool
	rec, err := r.transition(r.ctx, func(rec *recsink.Recording) error {
		wasBlocked = rec.State == recsink.RecordingBlocked
		if !wasBlocked {
			return errUnchanged
		}
		rec.State = recsink.RecordingRecording
		if rec.EndDate != nil {
			rec.State = recsink.RecordingStopping
		}
		rec.LastError = ""
		return nil
	})
	if err == nil && wasBlocked {
		r.event(recsink.EventUploadResumed, "uploads resumed with key %s", rec.AccessKeyID)
		r.notify(recsink.WebhookRecordingUploadResumed, "")
	}
}

// stopped reports whether the stop is saved: then, once every part is
// confirmed, the object can be completed.
func (r *recorder) stopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopSaved && r.file.Finished()
}
