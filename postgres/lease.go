package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

// ClaimRecording implements recsink.LeaseStore: one conditional UPDATE, so
// two nodes racing for an expired lease cannot both win.
func (db *DB) ClaimRecording(ctx context.Context, id, node, nodeURL string, now, until time.Time, force bool) (recsink.Owner, error) {
	_, err := db.pool.Exec(ctx, `
		UPDATE recordings SET owner_node = $1, owner_url = $2, lease_expires_at = $3
		WHERE id = $4 AND ($5 OR owner_node = '' OR owner_node = $1 OR lease_expires_at IS NULL OR lease_expires_at < $6)`,
		node, nodeURL, until, id, force, now)
	if err != nil {
		return recsink.Owner{}, fmt.Errorf("postgres: claim recording %s: %w", id, err)
	}
	r, err := db.FindRecordingByID(ctx, id)
	if err != nil {
		return recsink.Owner{}, err
	}
	return r.Owner, nil
}

// RenewLeases implements recsink.LeaseStore.
func (db *DB) RenewLeases(ctx context.Context, node string, until time.Time) error {
	_, err := db.pool.Exec(ctx, `
		UPDATE recordings SET lease_expires_at = $1
		WHERE owner_node = $2 AND state IN `+holdingStates, until, node)
	if err != nil {
		return fmt.Errorf("postgres: renew leases of %s: %w", node, err)
	}
	return nil
}

// ListOrphanedRecordings implements recsink.LeaseStore.
func (db *DB) ListOrphanedRecordings(ctx context.Context, now time.Time) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+holdingStates+` AND (lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY seq`, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: list orphaned recordings: %w", err)
	}
	return rs, nil
}
