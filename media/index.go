package media

import (
	"errors"
	"fmt"
	"io"

	"github.com/recsink/recsink/media/mkv"
	"github.com/recsink/recsink/media/mp4"
)

// ErrUnsupported reports a Kind that recsink stores as it is, without an
// index or finalizing.
var ErrUnsupported = errors.New("media: container not finalized")

// Indexer reads a recording as it arrives and appends fixed-size records to
// an index writer, normally an append-only file in the spool; its heap is a
// few kilobytes for a recording of any length. mkv.Indexer and mp4.Indexer
// implement it.
//
// The integration, for a recording whose first bytes Sniff recognized:
//
//  1. NewIndexer(kind, indexFile); Write every byte the recorder sends, in
//     order, as it is acknowledged. An error means the stream is not one
//     this package finalizes: keep storing it byte-identical and skip 4.
//  2. Hold back the first part until the stop; it must be at least
//     HeaderEnd() bytes long (and S3's 5 MiB, except for a one-part
//     upload); HeaderEnd() is 0 until the header has been read.
//  3. For crash recovery, persist MarshalBinary() with the spool state it
//     belongs to (Offset(), IndexLen()); after a restart truncate the index
//     file to IndexLen(), Resume, and Write the stream again from Offset().
//  4. At the stop, Close(); if it returns nil, Finalize(kind, firstPart,
//     indexFile, total) and upload first in place of the first part and
//     tail as the last part. Any error: upload the stream as it is.
type Indexer interface {
	io.Writer
	// Close tells the Indexer the stream has ended and writes its last
	// record; it fails when a tail cannot be appended.
	Close() error
	// HeaderEnd is the length of the header region Finalize needs, or 0
	// before the Indexer has read it.
	HeaderEnd() int64
	// Offset is how many bytes of the stream the Indexer has read.
	Offset() int64
	// IndexLen is how many bytes it has written to its index.
	IndexLen() int64
	// MarshalBinary returns a checkpoint for Resume.
	MarshalBinary() ([]byte, error)
}

var (
	_ Indexer = (*mkv.Indexer)(nil)
	_ Indexer = (*mp4.Indexer)(nil)
)

// NewIndexer returns the Indexer for a stream of kind k, writing its records
// to index.
func NewIndexer(k Kind, index io.Writer) (Indexer, error) {
	switch k {
	case Matroska, WebM:
		return mkv.NewIndexer(index), nil
	case MP4:
		return mp4.NewIndexer(index), nil
	}
	return nil, fmt.Errorf("media: index %v: %w", k, ErrUnsupported)
}

// Resume returns the Indexer of kind k saved in checkpoint, writing further
// records to index, which must hold exactly the checkpoint's IndexLen() bytes.
func Resume(k Kind, checkpoint []byte, index io.Writer) (Indexer, error) {
	switch k {
	case Matroska, WebM:
		return mkv.Resume(checkpoint, index)
	case MP4:
		return mp4.Resume(checkpoint, index)
	}
	return nil, fmt.Errorf("media: resume %v: %w", k, ErrUnsupported)
}

// Finalize completes a stream of kind k: header is its first part (at least
// HeaderEnd() bytes), index what its Indexer wrote, total its length. The
// finished file is first, then the stream's bytes from len(header) to total
// unchanged, then tail. See mkv.Finalize and mp4.Finalize.
func Finalize(k Kind, header []byte, index io.ReaderAt, total int64) (first, tail []byte, err error) {
	switch k {
	case Matroska, WebM:
		return mkv.Finalize(header, index, total)
	case MP4:
		return mp4.Finalize(header, index, total)
	}
	return nil, nil, fmt.Errorf("media: finalize %v: %w", k, ErrUnsupported)
}
