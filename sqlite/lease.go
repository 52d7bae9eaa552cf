package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

// ClaimRecording implements recsink.LeaseStore: one conditional UPDATE, so
// two nodes racing for an expired lease cannot both win.
func (db *DB) ClaimRecording(ctx context.Context, id, node, nodeURL string, now, until time.Time, force bool) (recsink.Owner, error) {
	_, err := db.write.ExecContext(ctx, `
		UPDATE recordings SET owner_node = ?, owner_url = ?, lease_expires_at = ?
		WHERE id = ? AND (? OR owner_node = '' OR owner_node = ? OR lease_expires_at IS NULL OR lease_expires_at < ?)`,
		node, nodeURL, formatTime(until), id, force, node, formatTime(now))
	if err != nil {
		return recsink.Owner{}, fmt.Errorf("sqlite: claim recording %s: %w", id, err)
	}
	r, err := db.FindRecordingByID(ctx, id)
	if err != nil {
		return recsink.Owner{}, err
	}
	return r.Owner, nil
}

// RenewLeases implements recsink.LeaseStore.
func (db *DB) RenewLeases(ctx context.Context, node string, until time.Time) error {
	_, err := db.write.ExecContext(ctx, `
		UPDATE recordings SET lease_expires_at = ?
		WHERE owner_node = ? AND state IN `+holdingStates, formatTime(until), node)
	if err != nil {
		return fmt.Errorf("sqlite: renew leases of %s: %w", node, err)
	}
	return nil
}

// ListOrphanedRecordings implements recsink.LeaseStore.
func (db *DB) ListOrphanedRecordings(ctx context.Context, now time.Time) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+holdingStates+` AND (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY seq`, formatTime(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list orphaned recordings: %w", err)
	}
	return rs, nil
}
