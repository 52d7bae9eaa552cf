// Package live holds what the live ingest listeners (packages rtmp, srt and
// whip) share: the publisher they hand an authenticated publish to, and the
// publication they write its media into. service.Live implements them.
package live

import (
	"context"
	"time"

	"github.com/recsink/recsink/media/mkvmux"
)

// Publication takes one publisher's media, as the listener received it,
// never decoded.
type Publication interface {
	WriteVideo(pts, dts time.Duration, au [][]byte, keyframe bool) error
	WriteAudio(pts time.Duration, frame []byte) error
	// End ends the publication. clean means the publisher ended the
	// stream; otherwise its connection dropped, and the recording waits
	// out the grace period for it to come back.
	End(clean bool, why string)
}

// Publisher authenticates publishes and starts their recordings.
type Publisher interface {
	// Authorize refuses a wrong or revoked key (EUNAUTHORIZED) or a key
	// already live (ECONFLICT) before any media is read.
	Authorize(ctx context.Context, key string) error
	// Publish starts or resumes the key's recording; since is when the
	// publisher's media began to arrive.
	Publish(ctx context.Context, protocol, key string, tracks mkvmux.Tracks, since time.Time) (Publication, error)
}
