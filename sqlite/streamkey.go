package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/recsink/recsink"
)

var _ recsink.StreamKeyStore = (*DB)(nil)

// PutStreamKey implements recsink.StreamKeyStore.
func (db *DB) PutStreamKey(ctx context.Context, k *recsink.StreamKey) error {
	// The meeting must be the organization's: the insert selects it.
	res, err := db.write.ExecContext(ctx, `
		INSERT INTO stream_keys (meeting_id, org_id, key_hash, created_at)
		SELECT id, org_id, ?, ? FROM meetings WHERE org_id = ? AND id = ?
		ON CONFLICT (meeting_id) DO UPDATE SET key_hash = excluded.key_hash,
			created_at = excluded.created_at, last_publish_at = NULL`,
		k.Hash, formatTime(k.CreatedAt), k.OrgID, k.MeetingID)
	if err != nil {
		return errorf("sqlite: put stream key of %s: %w", k.MeetingID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: put stream key of %s: %w", k.MeetingID, err)
	} else if n == 0 {
		return notFound("meeting")
	}
	return nil
}

const streamKeyColumns = `meeting_id, org_id, key_hash, created_at, last_publish_at`

// FindStreamKey implements recsink.StreamKeyStore.
func (db *DB) FindStreamKey(ctx context.Context, orgID, meetingID string) (*recsink.StreamKey, error) {
	return db.findStreamKey(ctx, `SELECT `+streamKeyColumns+` FROM stream_keys WHERE org_id = ? AND meeting_id = ?`, orgID, meetingID)
}

// FindStreamKeyByHash implements recsink.StreamKeyStore.
func (db *DB) FindStreamKeyByHash(ctx context.Context, hash []byte) (*recsink.StreamKey, error) {
	return db.findStreamKey(ctx, `SELECT `+streamKeyColumns+` FROM stream_keys WHERE key_hash = ?`, hash)
}

func (db *DB) findStreamKey(ctx context.Context, query string, args ...any) (*recsink.StreamKey, error) {
	var k recsink.StreamKey
	var created string
	var last sql.NullString
	err := db.read.QueryRowContext(ctx, query, args...).Scan(&k.MeetingID, &k.OrgID, &k.Hash, &created, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("stream key")
	} else if err != nil {
		return nil, errorf("sqlite: find stream key: %w", err)
	}
	if k.CreatedAt, err = parseTime(created); err != nil {
		return nil, errorf("sqlite: find stream key: %w", err)
	}
	if last.Valid {
		t, err := parseTime(last.String)
		if err != nil {
			return nil, errorf("sqlite: find stream key: %w", err)
		}
		k.LastPublishAt = &t
	}
	return &k, nil
}

// DeleteStreamKey implements recsink.StreamKeyStore.
func (db *DB) DeleteStreamKey(ctx context.Context, orgID, meetingID string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM stream_keys WHERE org_id = ? AND meeting_id = ?`, orgID, meetingID)
	if err != nil {
		return errorf("sqlite: delete stream key of %s: %w", meetingID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: delete stream key of %s: %w", meetingID, err)
	} else if n == 0 {
		return notFound("stream key")
	}
	return nil
}

// TouchStreamKey implements recsink.StreamKeyStore.
func (db *DB) TouchStreamKey(ctx context.Context, meetingID string, at time.Time) error {
	if _, err := db.write.ExecContext(ctx, `UPDATE stream_keys SET last_publish_at = ? WHERE meeting_id = ?`, formatTime(at), meetingID); err != nil {
		return errorf("sqlite: touch stream key of %s: %w", meetingID, err)
	}
	return nil
}
