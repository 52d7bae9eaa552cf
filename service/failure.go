package service

import (
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

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
	// The spool's data is kept, for recovery by hand; its file handle is not.
	// A request still streaming ends first, with 409.
	r.mu.Lock()
	if r.appendCancel != nil {
		r.appendCancel()
	}
	r.mu.Unlock()
	if r.file != nil {
		if err := r.file.Close(); err != nil {
			r.s.log.Error("close the spool of a failed recording", "recording", r.rec.ID, "err", err)
		}
	}
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
