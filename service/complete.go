package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
)

// complete finishes the multipart upload (or writes an empty object) and
// records the recording as uploaded. It writes to S3 only under a valid
// lease.
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
	sum, err := completeObject(wctx, client, &rec, parts, size)
	done()
	if err != nil {
		return err
	}
	return r.finishUploaded(ctx, client, size, size, r.file.SHA256(), sum)
}

// completeObject completes the multipart upload, or writes an empty object
// when there are no parts: S3 refuses to complete an upload without parts.
// It returns the object's checksum as S3 reports it. When the upload asked
// for a full-object checksum, the completion sends the CRC combined from
// the parts' CRCs (each verified by S3 when it took the part), and S3
// assembles the object only when its bytes match it: a mismatch is
// BadDigest and no object.
func completeObject(ctx context.Context, client recsink.StorageClient, rec *recsink.Recording, parts []recsink.Part, size int64) (recsink.Checksum, error) {
	if len(parts) == 0 {
		if err := client.AbortMultipartUpload(ctx, rec.ObjectKey, rec.UploadID); err != nil && !isNoSuchUpload(err) {
			return recsink.Checksum{}, err
		}
		if err := client.PutObject(ctx, rec.ObjectKey, keyContentType(rec.Destination, rec.ObjectKey), map[string]string{"recording-id": rec.ID}, bytes.NewReader(nil), 0); err != nil {
			return recsink.Checksum{}, err
		}
		return emptyChecksum(rec.ChecksumAlgorithm), nil
	}
	sum, err := client.CompleteMultipartUpload(ctx, rec.ObjectKey, rec.Upload(), parts, "")
	if err != nil && isNoSuchUpload(err) {
		// Completed before a crash: the upload is gone and the object is there.
		if info, herr := client.StatObject(ctx, rec.ObjectKey); herr == nil && info.Size == size {
			return info.Checksum, nil
		}
	}
	return sum, err
}

// emptyChecksum is the checksum of an empty object: the CRC of no bytes
// is 0 in every algorithm.
func emptyChecksum(alg recsink.ChecksumAlgorithm) recsink.Checksum {
	a := crc.ByName(string(alg))
	if a == nil {
		return recsink.Checksum{}
	}
	return recsink.Checksum{Algorithm: alg, Type: "FULL_OBJECT", Value: a.Encode(0)}
}

// finishUploaded records the recording as uploaded, with the bytes
// received, the object's size (more when the recording was finalized), the
// SHA-256 of the bytes the recorder sent and the checksum S3 verified.
// An object that S3 completed against a full-object checksum is known to
// be exactly the bytes recsink sent; without one (an endpoint that takes
// none), its size is checked with HeadObject. The completion (or that
// HEAD) is the key's last use, so it comes before the state that lets go
// of the key: once the row reads uploaded, any node may report the key
// drained.
func (r *recorder) finishUploaded(ctx context.Context, client recsink.StorageClient, received, size int64, sha string, sum recsink.Checksum) error {
	key, _ := r.object()
	if sum.IsZero() {
		if got, _, err := client.HeadObject(ctx, key); err == nil && got != size {
			r.fail(ctx, fmt.Sprintf("the object in the bucket has %d bytes where %d were sent", got, size))
			return nil
		} else if err != nil {
			r.event(recsink.EventUploaded, "could not check the object's size: %s", recsink.ErrorMessage(err))
		}
	}
	rec, err := r.transition(ctx, func(rec *recsink.Recording) error {
		if rec.Finished() {
			return errUnchanged
		}
		rec.State = recsink.RecordingUploaded
		rec.SizeBytes = &size
		rec.SHA256 = sha
		rec.Checksum = sum.String()
		rec.BytesReceived = received
		rec.BytesUploaded = received
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
	// Counted as soon as it is saved: a client that sees the state
	// uploaded sees it counted (the event and the spool's removal follow).
	r.s.cfg.Observer.RecordingFinished(recsink.RecordingUploaded)
	verified := "no checksum verified by S3"
	if !sum.IsZero() {
		verified = "checksum " + sum.String() + " verified by S3"
	}
	r.event(recsink.EventUploaded, "object complete: s3://%s/%s, %d bytes (%d received), sha256 %s, %s", rec.Destination.Bucket, rec.ObjectKey, size, received, sha, verified)
	r.retire()
	r.s.checkDrained(rec.OrgID, rec.CredentialID)
	return nil
}

// retire forgets a finished recording and frees its spool.
func (r *recorder) retire() {
	r.s.forget(r)
	if r.file == nil {
		return // taken over from another node: the spool is there
	}
	r.closeFinalizer()
	r.file.Close()
	if err := r.s.cfg.Spool.Remove(r.rec.ID); err != nil {
		r.s.log.Error("remove spool", "recording", r.rec.ID, "err", err)
	}
}
