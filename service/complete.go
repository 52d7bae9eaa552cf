package service

import (
	"bytes"
	"context"
	"fmt"

	"github.com/recsink/recsink"
)

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
	_, err := client.CompleteMultipartUpload(ctx, rec.ObjectKey, recsink.Upload{ID: rec.UploadID}, parts, "")
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
