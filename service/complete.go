package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

// complete finishes the multipart upload (or writes an empty object), checks
// the object's size and records the recording as uploaded. It writes to S3
// only under a valid lease.
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
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return err
	}
	err = completeObject(wctx, client, &rec, parts, size)
	done()
	if err != nil {
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

// finishUploaded checks the object's size, adds its checksum to its
// metadata and records the recording as uploaded, with its size and SHA-256.
// The metadata copy is the key's last use, so it comes before the state
// that lets go of the key: once the row reads uploaded, any node may report
// the key drained.
func (r *recorder) finishUploaded(ctx context.Context, client recsink.StorageClient, size int64, sum string) error {
	key := r.rec.ObjectKey
	if got, _, err := client.HeadObject(ctx, key); err == nil && got != size {
		r.fail(ctx, fmt.Sprintf("the object in the bucket has %d bytes where %d were received", got, size))
		return nil
	} else if err != nil {
		r.event(recsink.EventUploaded, "could not check the object's size: %s", recsink.ErrorMessage(err))
	}
	if !r.copied {
		wctx, done, err := r.leaseCtx(ctx)
		if err != nil {
			return err
		}
		err = r.addChecksumMetadata(wctx, client, r.snapshot(), size, sum)
		done()
		if err != nil {
			return err // canceled: the lease lapsed, or the service closes
		}
		r.copied = true // not again when only the save below is retried
	}
	rec, err := r.transition(ctx, func(rec *recsink.Recording) error {
		if rec.Finished() {
			return errUnchanged
		}
		rec.State = recsink.RecordingUploaded
		rec.SizeBytes = &size
		rec.SHA256 = sum
		rec.BytesReceived = size
		rec.BytesUploaded = size
		rec.LastError = ""
		// The event goes into the outbox before the state is saved: after a
		// crash in between, the completion is done again and the event, with
		// the same ID, is not added twice. Never the other way round, which
		// could lose it.
		r.notifyAs(rec, recsink.WebhookRecordingFinished, "")
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	} else if err != nil {
		return err
	}
	r.event(recsink.EventUploaded, "object complete: s3://%s/%s, %d bytes, sha256 %s", rec.Destination.Bucket, rec.ObjectKey, size, sum)
	r.retire()
	r.s.cfg.Observer.RecordingFinished(recsink.RecordingUploaded)
	r.s.checkDrained(rec.OrgID, rec.CredentialID)
	return nil
}

// maxCopySize is the largest object S3 copies in one request; copyTimeout
// bounds the copy (S3 copies inside the bucket at hundreds of MB/s).
const (
	maxCopySize = 5 << 30
	copyTimeout = 2 * time.Minute
)

// addChecksumMetadata adds the SHA-256 to the object's metadata. A multipart
// upload fixes metadata at its start, before the checksum is known, so the
// object is copied onto itself inside the bucket. Best effort: a refusal
// (the key lacks s3:GetObject, the copy timed out) is an event, not a
// failure of the recording. Only a cancellation is returned.
func (r *recorder) addChecksumMetadata(ctx context.Context, client recsink.StorageClient, rec *recsink.Recording, size int64, sum string) error {
	if size > maxCopySize {
		r.event(recsink.EventUploaded, "the object is over 5 GiB: its SHA-256 is in the recording and the webhook, not in the object's metadata")
		return nil
	}
	meta := map[string]string{"recording-id": rec.ID, "sha256": sum}
	cctx, cancel := context.WithTimeout(ctx, copyTimeout)
	defer cancel()
	err := client.ReplaceMetadata(cctx, rec.ObjectKey, rec.Destination.ContentType(), meta)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		r.event(recsink.EventUploaded, "could not add the SHA-256 to the object's metadata: %s", recsink.ErrorMessage(err))
	}
	return nil
}

// retire forgets a finished recording and frees its spool.
func (r *recorder) retire() {
	r.s.forget(r)
	if r.file == nil {
		return // taken over from another node: the spool is there
	}
	r.file.Close()
	if err := r.s.cfg.Spool.Remove(r.rec.ID); err != nil {
		r.s.log.Error("remove spool", "recording", r.rec.ID, "err", err)
	}
}
