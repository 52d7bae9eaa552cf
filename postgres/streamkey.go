package postgres

import (
	"context"
	"time"

	"github.com/recsink/recsink"
)

var _ recsink.StreamKeyStore = (*DB)(nil)

// PutStreamKey implements recsink.StreamKeyStore.
func (db *DB) PutStreamKey(ctx context.Context, k *recsink.StreamKey) error {
	// The meeting must be the organization's: the insert selects it.
	tag, err := db.pool.Exec(ctx, `
		INSERT INTO stream_keys (meeting_id, org_id, key_hash, created_at)
		SELECT id, org_id, $1, $2 FROM meetings WHERE org_id = $3 AND id = $4
		ON CONFLICT (meeting_id) DO UPDATE SET key_hash = excluded.key_hash,
			created_at = excluded.created_at, last_publish_at = NULL`,
		k.Hash, k.CreatedAt, k.OrgID, k.MeetingID)
	if err != nil {
		return errorf("postgres: put stream key of %s: %w", k.MeetingID, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("meeting")
	}
	return nil
}

const streamKeyColumns = `meeting_id, org_id, key_hash, created_at, last_publish_at`

// FindStreamKey implements recsink.StreamKeyStore.
func (db *DB) FindStreamKey(ctx context.Context, orgID, meetingID string) (*recsink.StreamKey, error) {
	return db.findStreamKey(ctx, `SELECT `+streamKeyColumns+` FROM stream_keys WHERE org_id = $1 AND meeting_id = $2`, orgID, meetingID)
}

// FindStreamKeyByHash implements recsink.StreamKeyStore.
func (db *DB) FindStreamKeyByHash(ctx context.Context, hash []byte) (*recsink.StreamKey, error) {
	return db.findStreamKey(ctx, `SELECT `+streamKeyColumns+` FROM stream_keys WHERE key_hash = $1`, hash)
}

func (db *DB) findStreamKey(ctx context.Context, query string, args ...any) (*recsink.StreamKey, error) {
	var k recsink.StreamKey
	err := db.pool.QueryRow(ctx, query, args...).Scan(&k.MeetingID, &k.OrgID, &k.Hash, &k.CreatedAt, &k.LastPublishAt)
	if isNoRows(err) {
		return nil, notFound("stream key")
	} else if err != nil {
		return nil, errorf("postgres: find stream key: %w", err)
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if k.LastPublishAt != nil {
		t := k.LastPublishAt.UTC()
		k.LastPublishAt = &t
	}
	return &k, nil
}

// DeleteStreamKey implements recsink.StreamKeyStore.
func (db *DB) DeleteStreamKey(ctx context.Context, orgID, meetingID string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM stream_keys WHERE org_id = $1 AND meeting_id = $2`, orgID, meetingID)
	if err != nil {
		return errorf("postgres: delete stream key of %s: %w", meetingID, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("stream key")
	}
	return nil
}

// TouchStreamKey implements recsink.StreamKeyStore.
func (db *DB) TouchStreamKey(ctx context.Context, meetingID string, at time.Time) error {
	if _, err := db.pool.Exec(ctx, `UPDATE stream_keys SET last_publish_at = $1 WHERE meeting_id = $2`, at, meetingID); err != nil {
		return errorf("postgres: touch stream key of %s: %w", meetingID, err)
	}
	return nil
}
