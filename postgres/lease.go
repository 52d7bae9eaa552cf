package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

// Leases are computed in SQL on the server's clock, now() (the start of the
// statement's transaction; every statement here is its own transaction): no
// node's clock, which may be off, ever decides who owns a recording.

// Now implements recsink.LeaseStore: the server's clock.
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := db.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, errorf("postgres: now: %w", err)
	}
	return t.UTC(), nil
}

// ClaimRecording implements recsink.LeaseStore: one conditional UPDATE, so
// two nodes racing for an expired lease cannot both win. The epoch goes up
// when the owner changes or the claim is forced. A refused claim returns the
// current owner.
func (db *DB) ClaimRecording(ctx context.Context, id, node, nodeURL string, ttl time.Duration, force bool) (recsink.Owner, error) {
	var o recsink.Owner
	// The CTE's UPDATE and the outer SELECT see the same snapshot: the
	// owner is the claimed one when the UPDATE returned a row, else the
	// row as it was.
	err := db.pool.QueryRow(ctx, `
		WITH claimed AS (
			UPDATE recordings SET owner_node = $2, owner_url = $3,
				lease_expires_at = now() + $4::float8 * interval '1 second',
				lease_epoch = CASE WHEN $5 OR owner_node <> $2 THEN lease_epoch + 1 ELSE lease_epoch END
			WHERE id = $1 AND ($5 OR owner_node = '' OR owner_node = $2 OR lease_expires_at IS NULL OR lease_expires_at < now())
			RETURNING owner_node, owner_url, lease_epoch, lease_expires_at
		)
		SELECT owner_node, owner_url, lease_epoch, lease_expires_at FROM claimed
		UNION ALL
		SELECT owner_node, owner_url, lease_epoch, lease_expires_at FROM recordings
		WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM claimed)`,
		id, node, nodeURL, ttl.Seconds(), force).Scan(&o.Node, &o.URL, &o.Epoch, &o.LeaseExpiresAt)
	if isNoRows(err) {
		return recsink.Owner{}, notFound("recording")
	} else if err != nil {
		return recsink.Owner{}, errorf("postgres: claim recording %s: %w", id, err)
	}
	return o, nil
}

// RenewLeases implements recsink.LeaseStore.
func (db *DB) RenewLeases(ctx context.Context, node string, ttl time.Duration) (map[string]int64, error) {
	rows, err := db.pool.Query(ctx, `
		UPDATE recordings SET lease_expires_at = now() + $2::float8 * interval '1 second'
		WHERE owner_node = $1 AND state IN `+sqlstore.HoldingStates+`
		RETURNING id, lease_epoch`, node, ttl.Seconds())
	if err != nil {
		return nil, errorf("postgres: renew leases of %s: %w", node, err)
	}
	held := map[string]int64{}
	var id string
	var epoch int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &epoch}, func() error {
		held[id] = epoch
		return nil
	}); err != nil {
		return nil, errorf("postgres: renew leases of %s: %w", node, err)
	}
	return held, nil
}

// ListOrphanedRecordings implements recsink.LeaseStore: unfinished
// recordings with no owner, no lease, or a lease expired on the server's
// clock.
func (db *DB) ListOrphanedRecordings(ctx context.Context) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+sqlstore.HoldingStates+`
			AND (owner_node = '' OR lease_expires_at IS NULL OR lease_expires_at < now())
		ORDER BY seq`)
	if err != nil {
		return nil, errorf("postgres: list orphaned recordings: %w", err)
	}
	return rs, nil
}
