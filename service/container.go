package service

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media"
)

// The object's name and Content-Type follow the container the recorder
// sends, which recsink learns only from the first bytes: a recording starts
// with a provisional name from the destination's fileFormat (.mkv or .mp4),
// and its multipart upload is created then, so that a start into a bucket
// or key that does not work fails at once. When the first bytes arrive, in
// the ingest request that brings them and before a byte of them is kept:
//
//   - a container the file format does not take (MP4 under mkv, Matroska or
//     WebM under mp4) is refused with EUNSUPPORTED (checkContainer);
//   - WebM under mkv gets its own name and type: a new multipart upload is
//     created as <base>.webm with video/webm, the row is saved with the new
//     key and upload ID, and the upload of the provisional name is aborted.
//     No part has gone up yet (the spool holds nothing), so nothing moves;
//   - then recording.started goes out with the final objectKey.
//
// A crash anywhere in between loses nothing: no byte was acknowledged, the
// row names one upload that exists (the provisional or the new one), and
// the recorder's next request at offset 0 decides again. An upload left
// behind by a crash between its creation and the row's save holds no part.
// When the new name cannot be taken within placeTimeout (S3 or the database
// unreachable), the recording goes on under the provisional .mkv name (WebM
// is a Matroska profile, so the name is not wrong), and an event says why:
// ingest never waits on S3.

// placeTimeout bounds the renaming at the first bytes; it is below
// appendWait, so that a stop waiting for the ingest request is not
// overtaken by it.
const placeTimeout = 4 * time.Second

// objectType returns the extension (without the dot) and Content-Type of an
// object holding kind under destination d: the container's own, or, for
// content recsink does not recognize, the file format's.
func objectType(d recsink.Destination, kind media.Kind) (ext, contentType string) {
	if kind == media.Unknown {
		return d.FileFormat, d.ContentType()
	}
	return kind.Ext(), kind.ContentType()
}

// keyContentType returns the Content-Type of an object named key under d:
// the type of the container its extension names, else the file format's.
func keyContentType(d recsink.Destination, key string) string {
	for _, k := range []media.Kind{media.Matroska, media.WebM, media.MP4} {
		if path.Ext(key) == "."+k.Ext() {
			return k.ContentType()
		}
	}
	return d.ContentType()
}

// object returns the recording's object key and upload, which change once,
// at the first bytes (placeObject).
func (r *recorder) object() (string, recsink.Upload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.ObjectKey, r.rec.Upload()
}

// placeObject names the object after kind, the container of the first
// bytes, before they are kept. It returns an error only when the request
// must end (ctx ended, the lease was lost): any other failure keeps the
// provisional name. The caller holds appendSem, so no byte arrives
// meanwhile.
func (r *recorder) placeObject(ctx context.Context, kind media.Kind) error {
	r.mu.Lock()
	old, oldUp, dest, client, id := r.rec.ObjectKey, r.rec.UploadID, r.rec.Destination, r.client, r.rec.ID
	r.mu.Unlock()
	ext, contentType := objectType(dest, kind)
	if path.Ext(old) == "."+ext {
		return nil
	}
	base := strings.TrimSuffix(old, path.Ext(old))
	// The provisional name had the recording ID added when its plain name
	// was taken: the new one keeps it.
	unique := strings.TrimSuffix(base, "-"+id) + "-" + id + "." + ext
	key := base + "." + ext

	pctx, cancel := context.WithTimeout(ctx, placeTimeout)
	defer cancel()
	wctx, done, err := r.leaseCtx(pctx)
	if err != nil {
		return r.keepName(ctx, kind, old, err)
	}
	defer done()
	if key != unique && !objectFree(wctx, client, key) {
		key = unique
	}
	for {
		up, err := client.CreateMultipartUpload(wctx, key, contentType, map[string]string{"recording-id": id}, recsink.FullObjectChecksums...)
		if err != nil {
			return r.keepName(ctx, kind, old, fmt.Errorf("create the upload of %s: %w", key, err))
		}
		_, err = r.transition(wctx, func(rec *recsink.Recording) error {
			if rec.EndDate != nil || rec.Finished() || r.file.Offset() > 0 {
				return errUnchanged // stopped meanwhile: nothing more comes
			}
			rec.ObjectKey, rec.UploadID, rec.ChecksumAlgorithm = key, up.ID, up.Checksum
			return nil
		})
		if err == nil {
			break
		}
		// The new upload is not the row's: it goes. Bounded, on the
		// service's context: the request may have ended. (Should a driver
		// have reported an error after its commit, the row names the new
		// upload for a moment only: every transition saves the whole
		// recording as it is in memory, so the next one, a progress save
		// soon after the first bytes, names the provisional
		// upload again, which is kept.)
		actx, acancel := context.WithTimeout(context.WithoutCancel(wctx), placeTimeout)
		_ = client.AbortMultipartUpload(actx, key, up.ID)
		acancel()
		if recsink.ErrorCode(err) == recsink.ECONFLICT && recsink.ErrorField(err) == "objectKey" && key != unique {
			key = unique // another recording writes that name
			continue
		}
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return r.keepName(ctx, kind, old, err)
	}
	// The provisional upload holds no part; it goes. A failure leaves an
	// empty upload behind, which no completion will ever name.
	if err := client.AbortMultipartUpload(wctx, old, oldUp); err != nil && !isNoSuchUpload(err) {
		r.s.log.Warn("abort the provisional upload", "recording", id, "key", old, "err", err)
	}
	r.event(recsink.EventStarted, "the media is %s: the object is s3://%s/%s (%s), not %s", kind, dest.Bucket, key, contentType, path.Base(old))
	return nil
}

// keepName records why the object keeps its provisional name, and returns
// err when the ingest request must end instead.
func (r *recorder) keepName(ctx context.Context, kind media.Kind, old string, err error) error {
	if ctx.Err() != nil || errors.Is(err, recsink.ErrLeaseLost) || r.lost() {
		return err
	}
	r.s.log.Warn("the object keeps its provisional name", "recording", r.rec.ID, "container", kind, "err", err)
	r.event(recsink.EventStarted, "the media is %s, but the object could not be renamed for it (%s): it is stored as %s", kind, recsink.ErrorMessage(err), path.Base(old))
	return nil
}

// announce sends recording.started once the object's name is final: at the
// first bytes, or at the stop of a recording that received none. Its ID is
// the recording's, so a repeat is one event.
func (r *recorder) announce() {
	r.notify(recsink.WebhookRecordingStarted, "")
}
