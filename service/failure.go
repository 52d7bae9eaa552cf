package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

// handle reacts to a failed upload of part (0 for the completion) and
// reports whether the recording is over (failed for good).
func (r *recorder) handle(err error, credID string, failures int, part int32) (fatal bool) {
	var se *recsink.StorageError
	if !errors.As(err, &se) {
		r.logRateLimited("upload", err)
		r.setError("internal error while uploading; retrying")
		return false
	}
	switch {
	case se.ChecksumMismatch() && se.Op == "CompleteMultipartUpload":
		// S3 assembled an object whose bytes do not match the CRC combined
		// from the parts it verified one by one, and kept nothing. The
		// parts' bytes have left the spool, so sending them again is not
		// possible: say so rather than write an object we cannot vouch for.
		r.fail(r.ctx, fmt.Sprintf("S3 did not complete the object: %s The parts in the bucket do not add up to the bytes recsink sent, so the recording is not completed.", se.Explain()))
		return true
	case se.ChecksumMismatch() && part > 0:
		// The bytes changed on the way (a bad proxy, NIC or disk; the
		// spool's parts carry the CRC taken as their bytes were received,
		// so a change on recsink's own disk shows here too): the spool's
		// bytes go again, identical, a few times before giving up.
		if r.digestRefusals == nil {
			r.digestRefusals = map[int32]int{}
		}
		r.digestRefusals[part]++
		if n := r.digestRefusals[part]; n >= maxDigestRefusals {
			r.fail(r.ctx, fmt.Sprintf("S3 refused part %d %d times in a row because the bytes it received did not match the checksum of the bytes recsink sent, taken as recsink received them: something between recsink's spool disk and the bucket changes data. No wrong object was written; the recording's bytes stay in recsink's spool.", part, n))
			return true
		}
		r.logRateLimited("upload", err)
		r.setError(se.Explain())
	case se.Code == "NoSuchUpload":
		r.fail(r.ctx, fmt.Sprintf("the multipart upload was removed from the bucket (a lifecycle rule or someone aborted it); %s", se.Explain()))
		return true
	case se.KeyRefused() || se.Code == "NoSuchBucket" || se.StatusCode == 404:
		if se.KeyRefused() && r.switchCredential(credID, se) {
			return false
		}
		r.block(se)
	case se.CertificateRefused():
		// Not an outage: the endpoint's certificate (or its lack of TLS) is
		// refused, and stays so until it or the server's trust changes.
		// Uploads keep retrying.
		r.logRateLimited("upload", err)
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

// maxDigestRefusals is how many times in a row one part may be refused for
// a checksum mismatch before the recording is failed: a part that never
// arrives intact means a path that corrupts data, which retrying does not
// mend.
const maxDigestRefusals = 5

// stuckAfter is how many failed attempts in a row make a recording blocked
// when S3 does not answer (with backoff, about 2 s).
const stuckAfter = 4

func (r *recorder) setError(msg string) {
	_, _ = r.transition(r.ctx, func(rec *recsink.Recording) error {
		if rec.LastError == msg {
			return errUnchanged
		}
		rec.LastError = msg
		return nil
	})
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
	var was string
	rec, err := r.transition(r.ctx, func(rec *recsink.Recording) error {
		was = rec.State
		if rec.Finished() {
			return errUnchanged
		}
		rec.State = recsink.RecordingBlocked
		rec.LastError = se.Explain()
		return nil
	})
	if err != nil || was == recsink.RecordingBlocked {
		return
	}
	keyID := rec.AccessKeyID
	var reason string
	if se.Op == recsink.OpAssumeRole {
		reason = fmt.Sprintf("STS refused to let recsink assume role %s (%s). %s Media keeps arriving into the spool; uploads resume by themselves once the role works again.", keyID, orNone(se.Code, se.StatusCode), se.Explain())
	} else if se.CertificateRefused() {
		reason = fmt.Sprintf("recsink could not open a trusted TLS connection to the storage endpoint (%s). %s Media keeps arriving into the spool; uploads resume by themselves once the endpoint's TLS is accepted.", se.Code, se.Explain())
	} else if se.KeyRefused() || se.Code == "NoSuchBucket" || se.StatusCode == 404 {
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

// fail records that the recording cannot be completed. The spool is kept:
// its bytes may still be recovered by hand.
func (r *recorder) fail(ctx context.Context, msg string) {
	rec, err := r.transition(ctx, func(rec *recsink.Recording) error {
		if rec.Finished() {
			return errUnchanged
		}
		rec.State = recsink.RecordingFailed
		rec.LastError = msg
		if rec.EndDate == nil {
			now := r.s.dbNow(ctx)
			rec.EndDate = &now
		}
		// Into the outbox before the state is saved, as for finished.
		r.notifyAs(rec, recsink.WebhookRecordingFailed, msg)
		return nil
	})
	r.s.forget(r)
	if err != nil {
		// Not saved (the lease is lost, or the store is down): the row stays
		// unfinished, for its owner or the next start to settle.
		return
	}
	r.event(recsink.EventFailed, "%s", msg)
	r.s.cfg.Observer.RecordingFinished(recsink.RecordingFailed)
	r.s.checkDrained(rec.OrgID, rec.CredentialID)
	// The run loop's exit closes the spool's file handle and ends a request
	// still streaming (409); the spool's data is kept, for recovery by hand.
}

var knownCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
	"NoSuchBucket": true, "NoSuchUpload": true, "SlowDown": true, "InternalError": true, "ServiceUnavailable": true,
	"RequestTimeout": true, "EntityTooSmall": true, "InvalidPart": true, "InvalidPartOrder": true,
	recsink.CodeCertificateNotTrusted: true, recsink.CodeCertificateNameMismatch: true, recsink.CodeCertificateExpired: true,
	recsink.CodeEndpointNotTLS: true,
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
