package service

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media"
)

// A live recorder cannot go back to the start of its output, so a live
// Matroska, WebM or fragmented MP4 stream has no duration and no index:
// players cannot seek in it. recsink completes it at the stop, without
// giving up streaming the parts while it records:
//
//   - part 1, which holds the container's header, stays in the spool until
//     the stop; parts 2..n go up as usual, each once it is indexed;
//   - an Indexer reads each part as it is complete, before it is uploaded,
//     and appends a record per cluster (fragment) to an index file in the
//     recording's spool folder, not in memory; its checkpoint is written
//     durably before the part can be uploaded and released, so that after a
//     crash the indexer resumes from the checkpoint and the parts still in
//     the spool;
//   - at the stop, media.Finalize turns part 1 into the new part 1 (the
//     duration, the seek head) and returns the tail (the Cues, mfra), which
//     goes up with the last part's bytes as the last part (or as a part of
//     its own when the last part is already in the bucket: S3 allows only
//     the last part to be under 5 MiB);
//   - the completion sends the CRC combined from the parts' CRCs, so S3
//     verifies the finished object although part 1 changed.
//
// Anything that goes wrong before the stop (a stream the indexer cannot
// read, a disk error on the index) abandons finalizing: part 1 is then
// uploaded as it is and the object holds exactly the bytes received.

// Files of the finalizer in the recording's spool folder. The spool leaves
// files it does not know alone.
const (
	indexName      = "media-index"      // the Indexer's records, append-only
	checkpointName = "media-checkpoint" // kind, parts fed, index length, Indexer checkpoint
)

// finalizer is the media side of one recording whose first bytes are a
// container recsink finalizes. Only the upload loop uses it.
type finalizer struct {
	kind  media.Kind
	dir   string
	index *os.File
	x     media.Indexer
	fed   int32 // parts 1..fed have been read by the indexer
	// done is set once the stream is finalized: first replaces header,
	// tail follows the stream. Kept for a retried upload.
	done          bool
	header, first []byte
	tail          []byte
}

// decideFinalize looks at the first bytes once part 1 is complete (or the
// recording finished) and starts a finalizer when they are a container
// recsink finalizes and that matches the destination's file format. It
// resumes the finalizer from its checkpoint after a restart. It is called
// by the upload loop until it has decided.
func (r *recorder) decideFinalize() {
	if r.finDecided || r.file == nil {
		return
	}
	parts := r.file.CompleteParts()
	if len(parts) == 0 || parts[0] != 1 {
		if r.file.Offset() > 0 && (len(parts) > 0 || r.file.Finished()) {
			// Part 1 is already in the bucket (sent before this version,
			// or before a restart that found no checkpoint): as it is.
			r.finDecided = true
		}
		return
	}
	r.finDecided = true
	dir := r.file.Dir()
	if fin, err := resumeFinalizer(dir); err == nil && fin != nil {
		r.fin = fin
		return
	} else if err != nil {
		r.s.log.Warn("media index checkpoint unreadable; storing the recording as it is", "recording", r.rec.ID, "err", err)
		return
	}
	pr, err := r.file.Part(1)
	if err != nil {
		return
	}
	head := make([]byte, media.SniffLen)
	n, _ := io.ReadFull(pr, head)
	pr.Close()
	kind := media.Sniff(head[:n])
	if kind == media.Unknown {
		return
	}
	if !formatMatches(r.rec.Destination.FileFormat, kind) {
		r.event(recsink.EventStarted, "the recording is %s, not %s as the destination's file format says: it is stored as it is, without finalizing", kind, r.rec.Destination.FileFormat)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, indexName), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		r.s.log.Warn("create media index; storing the recording as it is", "recording", r.rec.ID, "err", err)
		return
	}
	x, err := media.NewIndexer(kind, f)
	if err != nil {
		f.Close()
		return
	}
	r.fin = &finalizer{kind: kind, dir: dir, index: f, x: x}
	r.s.log.Debug("finalizing the recording at the stop", "recording", r.rec.ID, "container", kind)
}

// formatMatches reports whether a container of kind may be stored under the
// destination's file format: WebM is Matroska (a subset of it), so it goes
// under mkv; fragmented MP4 under mp4.
func formatMatches(format string, kind media.Kind) bool {
	switch format {
	case recsink.FormatMKV:
		return kind == media.Matroska || kind == media.WebM
	case recsink.FormatMP4:
		return kind == media.MP4
	}
	return false
}

// resumeFinalizer loads the checkpoint of a finalizer after a restart; nil
// when there is none.
func resumeFinalizer(dir string) (*finalizer, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if len(data) < 1+4+8 {
		return nil, fmt.Errorf("media checkpoint of %d bytes", len(data))
	}
	kind := media.Kind(data[0])
	fed := int32(binary.BigEndian.Uint32(data[1:]))
	indexLen := int64(binary.BigEndian.Uint64(data[5:]))
	f, err := os.OpenFile(filepath.Join(dir, indexName), os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	// Records written after the checkpoint belong to parts that will be
	// read again.
	if err := f.Truncate(indexLen); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(indexLen, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	x, err := media.Resume(kind, data[13:], f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &finalizer{kind: kind, dir: dir, index: f, x: x, fed: fed}, nil
}

// checkpoint makes the indexer's state durable: the index's records and
// then the checkpoint that names their length. Parts up to fed may be
// released only after it.
func (f *finalizer) checkpoint() error {
	if err := f.index.Sync(); err != nil {
		return err
	}
	state, err := f.x.MarshalBinary()
	if err != nil {
		return err
	}
	data := make([]byte, 13, 13+len(state))
	data[0] = byte(f.kind)
	binary.BigEndian.PutUint32(data[1:], uint32(f.fed))
	binary.BigEndian.PutUint64(data[5:], uint64(f.x.IndexLen()))
	data = append(data, state...)
	return writeFileDurably(f.dir, checkpointName, data)
}

// writeFileDurably writes name in dir through a temporary file, fsyncs it,
// renames it into place and fsyncs the folder.
func writeFileDurably(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// abandonFinalize gives up finalizing: the recording is stored as it is.
func (r *recorder) abandonFinalize(err error) {
	if r.fin == nil {
		return
	}
	r.s.log.Warn("cannot finalize the recording; storing it as received", "recording", r.rec.ID, "err", err)
	r.event(recsink.EventUploaded, "the %s stream cannot be completed with a duration and an index (%s): it is stored exactly as received", r.fin.kind, err)
	r.fin.index.Close()
	_ = os.Remove(filepath.Join(r.fin.dir, checkpointName))
	r.fin = nil
}

// holdsFirstPart reports whether part 1 is held back for finalizing: a
// finalizer runs, or its checkpoint is in the spool (before the upload loop
// resumed it).
func (r *recorder) holdsFirstPart() bool {
	if r.fin != nil {
		return true
	}
	_, err := os.Stat(filepath.Join(r.file.Dir(), checkpointName))
	return err == nil
}

// closeFinalizer closes the index file.
func (r *recorder) closeFinalizer() {
	if r.fin != nil {
		r.fin.index.Close()
	}
}

// feedIndex reads the complete parts not yet indexed, in order, and makes
// the checkpoint durable after them.
func (r *recorder) feedIndex() {
	f := r.fin
	if f == nil {
		return
	}
	fed := f.fed
	for _, n := range r.file.CompleteParts() {
		if n <= f.fed {
			continue
		}
		if n != f.fed+1 {
			r.abandonFinalize(fmt.Errorf("part %d is gone before it was indexed", f.fed+1))
			return
		}
		pr, err := r.file.Part(n)
		if err != nil {
			r.abandonFinalize(err)
			return
		}
		_, err = io.Copy(f.x, pr)
		pr.Close()
		if err != nil {
			r.abandonFinalize(err)
			return
		}
		f.fed = n
	}
	if f.fed == fed {
		return
	}
	if err := f.checkpoint(); err != nil {
		r.abandonFinalize(err)
	}
}

// uploadable returns the complete parts that may go up now: with a
// finalizer, only parts already indexed, and neither part 1 nor, after the
// stop, the last part, which the finalization sends.
func (r *recorder) uploadable() []int32 {
	parts := r.file.CompleteParts()
	f := r.fin
	if f == nil {
		return parts
	}
	last := int32(-1)
	if r.file.Finished() {
		last = r.file.PartCount()
	}
	out := parts[:0:0]
	for _, n := range parts {
		if n == 1 || n > f.fed || n == last {
			continue
		}
		out = append(out, n)
	}
	return out
}

// finalized is the parts the finalization sent: the new part 1 and the last
// part with the tail (or the tail alone), and the object's size.
type finalized struct {
	parts []recsink.Part
	size  int64
}

// finalize completes the stream: the index is closed, part 1 and the tail
// are computed and uploaded. The parts are kept in memory, not in the store:
// after a crash, the spool still holds part 1 and the last part, and the
// finalization is done again.
func (r *recorder) finalize(ctx context.Context, client recsink.StorageClient) (*finalized, error) {
	f := r.fin
	total := r.file.Offset()
	if !f.done {
		r.feedIndex()
		if r.fin == nil {
			return nil, nil
		}
		if err := f.x.Close(); err != nil {
			r.abandonFinalize(err)
			return nil, nil
		}
		pr, err := r.file.Part(1)
		if err != nil {
			return nil, err
		}
		header, err := io.ReadAll(pr)
		pr.Close()
		if err != nil {
			return nil, err
		}
		first, tail, err := media.Finalize(f.kind, header, f.index, total)
		if err != nil {
			r.abandonFinalize(err)
			return nil, nil
		}
		f.done, f.header, f.first, f.tail = true, header, first, tail
	}
	header, first, tail := f.header, f.first, f.tail
	last := r.file.PartCount()
	out := &finalized{size: total - int64(len(header)) + int64(len(first)) + int64(len(tail))}
	type upload struct {
		n      int32
		offset int64
		body   io.ReadSeeker
		size   int64
	}
	var ups []upload
	if last == 1 {
		// One part: the whole file.
		whole := append(append([]byte(nil), first...), tail...)
		ups = append(ups, upload{1, 0, bytes.NewReader(whole), int64(len(whole))})
	} else if lp, err := r.file.Part(last); err == nil {
		defer lp.Close()
		off, _ := r.layout.Part(last)
		body := io.NewSectionReader(concatReaderAt{lp.SectionReader, lp.Size(), bytes.NewReader(tail)}, 0, lp.Size()+int64(len(tail)))
		ups = append(ups, upload{1, 0, bytes.NewReader(first), int64(len(first))}, upload{last, off, body, body.Size()})
	} else {
		// The last part went up before the stop (the stream ended on a
		// part boundary), so it is full size: the tail is a part of its own.
		ups = append(ups, upload{1, 0, bytes.NewReader(first), int64(len(first))}, upload{last + 1, total, bytes.NewReader(tail), int64(len(tail))})
	}
	// The parts go up side by side: the stop waits for the slower only.
	parts := make([]recsink.Part, len(ups))
	errs := make([]error, len(ups))
	var wg sync.WaitGroup
	for i, u := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := r.uploadBody(ctx, client, u.n, u.body, u.size)
			p.Offset = u.offset
			parts[i], errs[i] = p, err
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	out.parts = parts
	return out, nil
}

// firstError returns the first non-nil error: the one handle() looks at.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// concatReaderAt reads a followed by b: the last part's bytes from the spool
// then the tail, as one seekable body so that a retry resends the same bytes.
type concatReaderAt struct {
	a     io.ReaderAt
	aSize int64
	b     io.ReaderAt
}

func (c concatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	var n int
	if off < c.aSize {
		k, err := c.a.ReadAt(p[:min(int64(len(p)), c.aSize-off)], off)
		n += k
		if err != nil && !(errors.Is(err, io.EOF) && k > 0 && off+int64(k) == c.aSize) {
			return n, err
		}
		if n == len(p) {
			return n, nil
		}
		off += int64(k)
	}
	k, err := c.b.ReadAt(p[n:], off-c.aSize)
	return n + k, err
}

// uploadBody sends body as part n under the lease, with an upload slot.
func (r *recorder) uploadBody(ctx context.Context, client recsink.StorageClient, n int32, body io.ReadSeeker, size int64) (recsink.Part, error) {
	release, err := r.s.slots.Acquire(ctx, r.rec.OrgID)
	if err != nil {
		return recsink.Part{}, err
	}
	defer release()
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return recsink.Part{}, err
	}
	defer done()
	key, up := r.object()
	p, err := client.UploadPart(wctx, key, up, n, body, size)
	if err != nil {
		r.s.cfg.Observer.UploadFailed(errorLabel(err))
		return recsink.Part{}, err
	}
	return p, nil
}

// completeFinalized completes the object from the parts in the store (2..n,
// less the last when it was sent again with the tail) and the finalized
// parts.
func (r *recorder) completeFinalized(ctx context.Context, fz *finalized) error {
	r.mu.Lock()
	client, rec := r.client, r.rec
	r.mu.Unlock()
	stored, err := r.s.store.ListParts(ctx, rec.ID)
	if err != nil {
		return err
	}
	replaced := map[int32]bool{}
	for _, p := range fz.parts {
		replaced[p.Number] = true
	}
	parts := append([]recsink.Part(nil), fz.parts...)
	for _, p := range stored {
		if !replaced[p.Number] {
			parts = append(parts, p)
		}
	}
	var size int64
	for _, p := range parts {
		size += p.Size
	}
	if size != fz.size {
		return fmt.Errorf("complete %s: the parts hold %d bytes, the finished file %d", rec.ID, size, fz.size)
	}
	wctx, done, err := r.leaseCtx(ctx)
	if err != nil {
		return err
	}
	sum, err := completeObject(wctx, client, &rec, parts, fz.size)
	done()
	if err != nil {
		return err
	}
	return r.finishUploaded(ctx, client, r.file.Offset(), fz.size, r.file.SHA256(), sum)
}
