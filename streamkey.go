package recsink

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// StreamKey is a room's key for live publishing (RTMP, SRT): a publish with
// it starts a recording in the room, as POST .../recordings does, and the
// end of the stream stops it. Like an API key it is shown once and stored
// only as its SHA-256.
type StreamKey struct {
	MeetingID     string
	OrgID         string
	Hash          []byte
	CreatedAt     time.Time
	LastPublishAt *time.Time
}

// StreamKeyPrefix starts every stream key, so that a key is recognizable in
// a URL or a leaked log.
const StreamKeyPrefix = "rsl_"

// NewStreamKey returns a new random stream key: URL-safe, so that it fits
// an RTMP path and an SRT stream ID as it is.
func NewStreamKey() string {
	return StreamKeyPrefix + RandomToken(24)
}

var streamKeyRE = regexp.MustCompile(StreamKeyPrefix + `[A-Za-z0-9_-]+`)

// RedactStreamKeys masks every stream key in s: protocol libraries quote a
// publish URL, key included, in their errors.
func RedactStreamKeys(s string) string {
	return streamKeyRE.ReplaceAllString(s, StreamKeyPrefix+"***")
}

// ValidStreamKeyShape reports whether key looks like a stream key; a key
// that does not is refused without a database lookup.
func ValidStreamKeyShape(key string) bool {
	rest, ok := strings.CutPrefix(key, StreamKeyPrefix)
	if !ok || len(rest) != 32 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// StreamKeyStore keeps the rooms' stream keys. Both stores implement it
// (migration 0009); a meeting's key goes with the meeting.
type StreamKeyStore interface {
	// PutStreamKey sets the meeting's key, replacing any earlier one;
	// ENOTFOUND when the organization has no such meeting.
	PutStreamKey(ctx context.Context, k *StreamKey) error
	// FindStreamKey returns the meeting's key, or ENOTFOUND.
	FindStreamKey(ctx context.Context, orgID, meetingID string) (*StreamKey, error)
	// FindStreamKeyByHash returns the key whose hash is hash, in any
	// organization, or ENOTFOUND: how a publish is authenticated.
	FindStreamKeyByHash(ctx context.Context, hash []byte) (*StreamKey, error)
	// DeleteStreamKey revokes the meeting's key; ENOTFOUND when it has none.
	DeleteStreamKey(ctx context.Context, orgID, meetingID string) error
	// TouchStreamKey records a publish on the meeting's key at at.
	TouchStreamKey(ctx context.Context, meetingID string, at time.Time) error
}

// StreamKeyService manages the rooms' stream keys.
type StreamKeyService interface {
	// CreateStreamKey creates or replaces the meeting's stream key and
	// returns it with the key itself, which cannot be shown again.
	CreateStreamKey(ctx context.Context, orgID, meetingID string) (*StreamKey, string, error)
	// FindStreamKey returns the meeting's stream key (without the key), or
	// ENOTFOUND when none is set.
	FindStreamKey(ctx context.Context, orgID, meetingID string) (*StreamKey, error)
	// DeleteStreamKey revokes the meeting's stream key: a publish with it is
	// refused from then on; a live publish goes on to its end.
	DeleteStreamKey(ctx context.Context, orgID, meetingID string) error
	// LiveStatus reports whether a publish is live on the meeting's key on
	// this node, and with which protocol.
	LiveStatus(meetingID string) (live bool, protocol string)
}
