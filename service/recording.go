package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// appendWait is how long a new ingest request waits for an earlier one on
// the same recording (a recorder reconnecting before the server noticed its
// old connection died) before it gets 409.
const appendWait = 5 * time.Second

// recorder runs one recording: it takes media into the spool and uploads
// each part to S3 as soon as the part is complete.
type recorder struct {
	s      *Service
	file   *spool.File
	layout spool.Layout
	kick   chan struct{} // cap 1: credentials changed or state changed
	done   chan struct{}

	// appendSem admits one ingest request at a time.
	appendSem chan struct{}

	mu           sync.Mutex
	rec          recsink.Recording
	cred         *recsink.Credential
	client       recsink.StorageClient
	refused      map[string]bool // credentials S3 refused since the last save
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

// resolveCredential returns the credential a new recording in the meeting
// binds: the room's own, else the organization's.
func (s *Service) resolveCredential(ctx context.Context, orgID, meetingID string) (*recsink.Credential, error) {
	c, err := s.store.CurrentCredential(ctx, orgID, meetingID)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		c, err = s.store.CurrentCredential(ctx, orgID, recsink.ScopeOrganization)
	}
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, recsink.Errorf(recsink.EDESTINATION, "no storage destination: set the organization's with PUT /v1/storage or the room's with PUT /v1/meetings/%s/recording/destination", meetingID)
	}
	return c, err
}

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
	rec.UploadID, err = client.CreateMultipartUpload(ctx, rec.ObjectKey, cred.Destination.ContentType(), map[string]string{"recording-id": rec.ID})
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

// credentialsChanged wakes the organization's recordings after a key was
// saved, so that blocked ones resume within moments.
func (s *Service) credentialsChanged(orgID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recorders {
		if r.rec.OrgID != orgID {
			continue
		}
		r.mu.Lock()
		clear(r.refused)
		r.mu.Unlock()
		r.poke()
	}
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
	etag, err := client.UploadPart(ctx, r.rec.ObjectKey, r.rec.UploadID, n, pr, pr.Size())
	if err != nil {
		r.s.cfg.Observer.UploadFailed(errorLabel(err))
		return err
	}
	r.s.cfg.Observer.PartUploaded(pr.Size(), time.Since(began))
	offset, _ := r.layout.Part(n)
	if err := r.s.store.PutPart(r.s.ctx, r.rec.ID, recsink.Part{Number: n, Offset: offset, Size: pr.Size(), ETag: etag}); err != nil {
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

// handle reacts to a failed upload or completion and reports whether the
// recording is over (failed for good).
func (r *recorder) handle(err error, credID string, failures int) (fatal bool) {
	var se *recsink.StorageError
	if !errors.As(err, &se) {
		r.logRateLimited("upload", err)
		r.setError("internal error while uploading; retrying")
		return false
	}
	switch {
	case se.Code == "NoSuchUpload":
		r.fail(fmt.Sprintf("the multipart upload was removed from the bucket (a lifecycle rule or someone aborted it); %s", se.Explain()))
		return true
	case se.KeyRefused() || se.Code == "NoSuchBucket" || se.StatusCode == 404:
		if se.KeyRefused() && r.switchCredential(credID, se) {
			return false
		}
		r.block(se)
	case failures+1 >= stuckAfter:
		// S3 down or failing for a while: say so, as for a refused key.
		r.logRateLimited("upload", err)
		r.block(se)
	default:
		r.logRateLimited("upload", err)
		r.setError(se.Explain())
	}
	return false
}

// stuckAfter is how many failed attempts in a row make a recording blocked
// when S3 does not answer (with backoff, about 2 s).
const stuckAfter = 4

func (r *recorder) setError(msg string) {
	r.mu.Lock()
	changed := r.rec.LastError != msg
	r.rec.LastError = msg
	r.mu.Unlock()
	if changed {
		_ = r.persist()
	}
}

func (r *recorder) logRateLimited(op string, err error) {
	r.mu.Lock()
	quiet := time.Since(r.lastLog) < 10*time.Second
	if !quiet {
		r.lastLog = time.Now()
	}
	r.mu.Unlock()
	if !quiet {
		r.s.log.Warn("recording "+op+" failed; retrying", "recording", r.rec.ID, "err", err)
	}
}

// block marks the recording blocked: media keeps flowing into the spool and
// uploads retry until a working key is saved.
func (r *recorder) block(se *recsink.StorageError) {
	r.mu.Lock()
	was := r.rec.State
	r.rec.State = recsink.RecordingBlocked
	r.rec.LastError = se.Explain()
	keyID := r.cred.AccessKeyID
	r.mu.Unlock()
	_ = r.persist()
	if was == recsink.RecordingBlocked {
		return
	}
	var reason string
	if se.KeyRefused() || se.Code == "NoSuchBucket" || se.StatusCode == 404 {
		reason = fmt.Sprintf("S3 refused key %s with %s. %s Media keeps arriving into the spool; save a working key and uploads resume by themselves.", keyID, orNone(se.Code, se.StatusCode), se.Explain())
	} else {
		reason = fmt.Sprintf("S3 keeps failing (%s). %s Media keeps arriving into the spool and uploads resume by themselves when S3 answers again.", orNone(se.Code, se.StatusCode), se.Explain())
	}
	r.event(recsink.EventUploadBlocked, "uploads are blocked: %s", reason)
	r.notify(recsink.WebhookRecordingUploadBlocked, reason)
}

func orNone(code string, status int) string {
	if code != "" {
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// switchCredential moves the recording to another saved key after S3
// refused the one it holds: the current key of the same scope, then the
// organization's, where it reaches the same bucket. It continues the same
// multipart upload with it.
func (r *recorder) switchCredential(refusedID string, se *recsink.StorageError) bool {
	r.mu.Lock()
	r.refused[refusedID] = true
	old := r.cred
	r.mu.Unlock()
	if old.ID != refusedID {
		return true // already switched by another part's failure
	}
	for _, scope := range []string{old.Scope, recsink.ScopeOrganization} {
		c, err := r.s.store.CurrentCredential(r.s.ctx, r.rec.OrgID, scope)
		if err != nil {
			continue
		}
		r.mu.Lock()
		skip := r.refused[c.ID]
		r.mu.Unlock()
		if skip || c.ID == old.ID || c.Destination.Bucket != r.rec.Destination.Bucket || c.Destination.Endpoint != r.rec.Destination.Endpoint {
			continue
		}
		key, err := r.s.accessKey(c)
		if err != nil {
			continue
		}
		client, err := r.s.cfg.Storage.Client(r.s.ctx, r.rec.Destination, key)
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.cred, r.client = c, client
		r.rec.CredentialID, r.rec.AccessKeyID = c.ID, c.AccessKeyID
		r.mu.Unlock()
		_ = r.persist()
		r.event(recsink.EventCredentialSwitched, "S3 refused key %s (%s); continuing the same upload with key %s", old.AccessKeyID, orNone(se.Code, se.StatusCode), c.AccessKeyID)
		r.s.checkDrained(r.rec.OrgID, old.ID)
		return true
	}
	return false
}

// complete finishes the multipart upload (or writes an empty object), checks
// the object's size and records the recording as uploaded.
func (r *recorder) complete(ctx context.Context) error {
	r.mu.Lock()
	client, rec := r.client, r.rec
	r.mu.Unlock()
	var parts []recsink.Part
	if n := r.file.PartCount(); n > 0 {
		var err error
		if parts, err = r.s.store.ListParts(ctx, rec.ID); err != nil {
			return err
		}
		if len(parts) != int(n) {
			return fmt.Errorf("complete %s: %d parts confirmed of %d", rec.ID, len(parts), n)
		}
	}
	size := r.file.Offset()
	if err := completeObject(ctx, client, &rec, parts, size); err != nil {
		return err
	}
	return r.finishUploaded(ctx, client, size, r.file.SHA256())
}

// completeObject completes the multipart upload, or writes an empty object
// when there are no parts: S3 refuses to complete an upload without parts.
func completeObject(ctx context.Context, client recsink.StorageClient, rec *recsink.Recording, parts []recsink.Part, size int64) error {
	if len(parts) == 0 {
		if err := client.AbortMultipartUpload(ctx, rec.ObjectKey, rec.UploadID); err != nil && !isNoSuchUpload(err) {
			return err
		}
		return client.PutObject(ctx, rec.ObjectKey, rec.Destination.ContentType(), map[string]string{"recording-id": rec.ID}, bytes.NewReader(nil), 0)
	}
	err := client.CompleteMultipartUpload(ctx, rec.ObjectKey, rec.UploadID, parts)
	if err != nil && isNoSuchUpload(err) {
		// Completed before a crash: the upload is gone and the object is there.
		if got, _, herr := client.HeadObject(ctx, rec.ObjectKey); herr == nil && got == size {
			return nil
		}
	}
	return err
}

// finishUploaded checks the object's size and records the recording as
// uploaded, with its size and SHA-256.
func (r *recorder) finishUploaded(ctx context.Context, client recsink.StorageClient, size int64, sum string) error {
	rec := r.snapshot()
	if got, _, err := client.HeadObject(ctx, rec.ObjectKey); err == nil && got != size {
		r.fail(fmt.Sprintf("the object in the bucket has %d bytes where %d were received", got, size))
		return nil
	} else if err != nil {
		r.event(recsink.EventUploaded, "could not check the object's size: %s", recsink.ErrorMessage(err))
	}
	done := *rec
	done.State = recsink.RecordingUploaded
	done.SizeBytes = &size
	done.SHA256 = sum
	done.BytesReceived = size
	done.BytesUploaded = size
	done.LastError = ""
	done.UpdatedAt = recsink.Now()
	// The event goes into the outbox before the state is saved: after a
	// crash in between, the completion is done again and the event, with the
	// same ID, is not added twice. Never the other way round, which could
	// lose it.
	r.notifyAs(&done, recsink.WebhookRecordingFinished, "")
	if err := r.persistAs(&done); err != nil {
		return err
	}
	r.mu.Lock()
	r.rec = done
	r.mu.Unlock()
	r.event(recsink.EventUploaded, "object complete: s3://%s/%s, %d bytes, sha256 %s", rec.Destination.Bucket, rec.ObjectKey, size, sum)
	r.retire()
	r.s.cfg.Observer.RecordingFinished(recsink.RecordingUploaded)
	r.s.checkDrained(rec.OrgID, rec.CredentialID)
	r.addChecksumMetadata(ctx, client, rec, size, sum)
	return nil
}

// maxCopySize is the largest object S3 copies in one request.
const maxCopySize = 5 << 30

// addChecksumMetadata adds the SHA-256 to the object's metadata. A multipart
// upload fixes metadata at its start, before the checksum is known, so the
// object is copied onto itself inside the bucket. Best effort: a refusal
// (the key lacks s3:GetObject) is an event, not a failure of the recording.
func (r *recorder) addChecksumMetadata(ctx context.Context, client recsink.StorageClient, rec *recsink.Recording, size int64, sum string) {
	if size > maxCopySize {
		r.event(recsink.EventUploaded, "the object is over 5 GiB: its SHA-256 is in the recording and the webhook, not in the object's metadata")
		return
	}
	meta := map[string]string{"recording-id": rec.ID, "sha256": sum}
	if err := client.ReplaceMetadata(ctx, rec.ObjectKey, rec.Destination.ContentType(), meta); err != nil && !isCanceled(err) {
		r.event(recsink.EventUploaded, "could not add the SHA-256 to the object's metadata: %s", recsink.ErrorMessage(err))
	}
}

// retire forgets a finished recording and frees its spool.
func (r *recorder) retire() {
	r.s.mu.Lock()
	delete(r.s.recorders, r.rec.ID)
	r.s.mu.Unlock()
	if r.file == nil {
		return // taken over from another node: the spool is there
	}
	r.file.Close()
	if err := r.s.cfg.Spool.Remove(r.rec.ID); err != nil {
		r.s.log.Error("remove spool", "recording", r.rec.ID, "err", err)
	}
}

// fail records that the recording cannot be completed.
func (r *recorder) fail(msg string) {
	done := *r.snapshot()
	done.State = recsink.RecordingFailed
	done.LastError = msg
	if done.EndDate == nil {
		now := recsink.Now()
		done.EndDate = &now
	}
	r.notifyAs(&done, recsink.WebhookRecordingFailed, msg)
	_ = r.persistAs(&done)
	r.mu.Lock()
	r.rec = done
	r.mu.Unlock()
	r.event(recsink.EventFailed, "%s", msg)
	r.s.mu.Lock()
	delete(r.s.recorders, r.rec.ID)
	r.s.mu.Unlock()
	r.s.cfg.Observer.RecordingFinished(recsink.RecordingFailed)
	r.s.checkDrained(r.rec.OrgID, r.rec.CredentialID)
	// The spool is kept: its bytes may still be recovered by hand.
}

var knownCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
	"NoSuchBucket": true, "NoSuchUpload": true, "SlowDown": true, "InternalError": true, "ServiceUnavailable": true,
	"RequestTimeout": true, "EntityTooSmall": true, "InvalidPart": true, "InvalidPartOrder": true,
}

// errorLabel names an upload error for metrics with a bounded set of
// values: S3's code, or the class of failure.
func errorLabel(err error) string {
	var se *recsink.StorageError
	switch {
	case isCanceled(err):
		return "canceled"
	case !errors.As(err, &se):
		return "internal"
	case knownCodes[se.Code]:
		return se.Code
	case se.Code != "":
		return "other" // a custom endpoint may send anything: keep labels bounded
	case se.StatusCode == 0:
		return "network"
	}
	return fmt.Sprintf("http_%d", se.StatusCode)
}

func isNoSuchUpload(err error) bool {
	var se *recsink.StorageError
	return errors.As(err, &se) && (se.Code == "NoSuchUpload" || se.StatusCode == 404)
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
