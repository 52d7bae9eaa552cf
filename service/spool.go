package service

import (
	"context"
	"io"

	"github.com/recsink/recsink/spool"
)

// spoolFile is what a recorder uses of its recording's spool: the
// acknowledged bytes, cut into parts by the layout fixed at start.
// Implemented by *spool.File.
type spoolFile interface {
	Layout() spool.Layout
	// Dir is the recording's folder in the spool, where the media index
	// lives beside the parts.
	Dir() string
	// Offset is the durable offset: every byte before it is acknowledged.
	Offset() int64
	Append(ctx context.Context, r io.Reader, expect int64) (int64, error)
	// Ready signals that a part may have become complete.
	Ready() <-chan struct{}
	CompleteParts() []int32
	Part(n int32) (*spool.PartReader, error)
	// Release frees part n once S3 confirmed it.
	Release(n int32) error
	Finish() error
	Finished() bool
	PartCount() int32
	SHA256() string
	Close() error
}

var _ spoolFile = (*spool.File)(nil)
