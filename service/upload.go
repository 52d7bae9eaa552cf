package service

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/recsink/recsink"
)

type partResult struct {
	n    int32
	cred string
	err  error
}

// run uploads complete parts as they appear and completes the object once
// the recording stopped and every part is confirmed.
func (r *recorder) run(ctx context.Context) {
	results := make(chan partResult, r.s.cfg.PartConcurrency)
	inflight := map[int32]bool{}
	defer func() {
		for len(inflight) > 0 { // uploads see ctx canceled and return
			res := <-results
			delete(inflight, res.n)
		}
	}()
	var retryAt time.Time
	var failures int
	deadline := time.NewTimer(time.Until(r.rec.StartDate.Add(r.s.cfg.MaxDuration)))
	defer deadline.Stop()
	// The durable offset is saved now and then, so that other nodes show
	// progress and a lost node's loss can be told in bytes.
	progress := time.NewTicker(progressInterval)
	defer progress.Stop()
	saved := r.file.Offset()

	for {
		ready := !time.Now().Before(retryAt)
		if ready {
			for _, n := range r.file.CompleteParts() {
				if len(inflight) >= r.s.cfg.PartConcurrency {
					break
				}
				if inflight[n] {
					continue
				}
				inflight[n] = true
				r.mu.Lock()
				client, cred := r.client, r.cred.ID
				r.mu.Unlock()
				go func() { results <- partResult{n: n, cred: cred, err: r.upload(ctx, client, n)} }()
			}
			if r.file.Finished() && len(inflight) == 0 && len(r.file.CompleteParts()) == 0 {
				r.mu.Lock()
				cred := r.cred.ID
				r.mu.Unlock()
				err := r.complete(ctx)
				if err == nil || ctx.Err() != nil {
					return
				}
				if r.handle(err, cred, failures) {
					return
				}
				failures, retryAt = r.next(cred, failures)
				continue
			}
		}
		var retry <-chan time.Time
		var retryTimer *time.Timer
		if !ready {
			retryTimer = time.NewTimer(time.Until(retryAt))
			retry = retryTimer.C
		}
		select {
		case res := <-results:
			delete(inflight, res.n)
			if res.err == nil {
				failures = 0
				r.uploaded()
			} else if ctx.Err() == nil {
				if r.handle(res.err, res.cred, failures) {
					return
				}
				failures, retryAt = r.next(res.cred, failures)
			}
		case <-r.file.Ready():
		case <-progress.C:
			if off := r.file.Offset(); off != saved {
				saved = off
				_ = r.persist()
			}
		case <-r.kick:
			retryAt = time.Time{}
		case <-retry:
		case <-deadline.C:
			go func() {
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
	}
}

// next returns the failure count and the time of the next attempt after a
// failure with credential credID: at once when the recording has just
// switched to another key, else after a backoff.
func (r *recorder) next(credID string, failures int) (int, time.Time) {
	r.mu.Lock()
	switched := r.cred.ID != credID
	r.mu.Unlock()
	if switched {
		return failures, time.Time{}
	}
	return failures + 1, time.Now().Add(r.backoff(failures + 1))
}

// progressInterval is how often a recording's durable offset is saved.
const progressInterval = 2 * time.Second

// backoff is capped exponential with jitter: 250 ms, 500 ms, ... RetryMax.
func (r *recorder) backoff(failures int) time.Duration {
	d := 250 * time.Millisecond << min(failures-1, 16)
	d = min(d, r.s.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// upload sends part n and records it once S3 confirmed it; only then are
// its bytes released from the spool.
func (r *recorder) upload(ctx context.Context, client recsink.StorageClient, n int32) error {
	select {
	case r.s.slots <- struct{}{}:
		defer func() { <-r.s.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	pr, err := r.file.Part(n)
	if err != nil {
		return err
	}
	defer pr.Close()
	began := time.Now()
	part, err := client.UploadPart(ctx, r.rec.ObjectKey, recsink.Upload{ID: r.rec.UploadID}, n, pr, pr.Size())
	if err != nil {
		r.s.cfg.Observer.UploadFailed(errorLabel(err))
		return err
	}
	r.s.cfg.Observer.PartUploaded(pr.Size(), time.Since(began))
	offset, _ := r.layout.Part(n)
	if err := r.s.store.PutPart(r.s.ctx, r.rec.ID, recsink.Part{Number: n, Offset: offset, Size: pr.Size(), ETag: part.ETag}); err != nil {
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

// uploaded notes a confirmed part: it saves progress and ends a block.
func (r *recorder) uploaded() {
	r.mu.Lock()
	wasBlocked := r.rec.State == recsink.RecordingBlocked
	if wasBlocked {
		r.rec.State = recsink.RecordingRecording
		if r.file.Finished() {
			r.rec.State = recsink.RecordingStopping
		}
		r.rec.LastError = ""
	}
	r.mu.Unlock()
	_ = r.persist()
	if wasBlocked {
		r.event(recsink.EventUploadResumed, "uploads resumed with key %s", r.cred.AccessKeyID)
		r.notify(recsink.WebhookRecordingUploadResumed, "")
	}
}
