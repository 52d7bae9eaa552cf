package service

import (
	"context"

	"github.com/recsink/recsink"
)

// CreateStreamKey implements recsink.StreamKeyService. A replaced key is
// refused from then on; a publish live on it goes on to its end.
func (l *Live) CreateStreamKey(ctx context.Context, orgID, meetingID string) (*recsink.StreamKey, string, error) {
	key := recsink.NewStreamKey()
	k := &recsink.StreamKey{MeetingID: meetingID, OrgID: orgID, Hash: recsink.HashToken(key), CreatedAt: recsink.Now()}
	if err := l.cfg.Keys.PutStreamKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, key, nil
}

// FindStreamKey implements recsink.StreamKeyService.
func (l *Live) FindStreamKey(ctx context.Context, orgID, meetingID string) (*recsink.StreamKey, error) {
	return l.cfg.Keys.FindStreamKey(ctx, orgID, meetingID)
}

// DeleteStreamKey implements recsink.StreamKeyService.
func (l *Live) DeleteStreamKey(ctx context.Context, orgID, meetingID string) error {
	return l.cfg.Keys.DeleteStreamKey(ctx, orgID, meetingID)
}
