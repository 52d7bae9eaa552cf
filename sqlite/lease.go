package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

// Now implements recsink.LeaseStore: SQLite's clock, which is this host's.
// SQLite serves one node, but leases are still computed in SQL, as in the
// PostgreSQL store, so that no caller's clock is ever used for them.
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	var s string
	if err := db.read.QueryRowContext(ctx, `SELECT `+sqlNow).Scan(&s); err != nil {
		return time.Time{}, errorf("sqlite: now: %w", err)
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, errorf("sqlite: now: %w", err)
	}
	return t, nil
}

// ClaimRecording implements recsink.LeaseStore: one conditional UPDATE on
// the database's clock, so two nodes racing for an expired lease cannot both
// win. The epoch goes up when the owner changes or the claim is forced.
func (db *DB) ClaimRecording(ctx context.Context, id, node, nodeURL string, ttl time.Duration, force bool) (recsink.Owner, error) {
	_, err := db.write.ExecContext(ctx, `
		UPDATE recordings SET owner_node = ?1, owner_url = ?2,
			lease_expires_at = (strftime('%Y-%m-%dT%H:%M:%f', 'now', ?3) || '000000Z'),
			lease_epoch = CASE WHEN ?4 OR owner_node <> ?1 THEN lease_epoch + 1 ELSE lease_epoch END
		WHERE id = ?5 AND (?4 OR owner_node = '' OR owner_node = ?1 OR lease_expires_at IS NULL
			OR lease_expires_at < `+sqlNow+`)`,
		node, nodeURL, modifier(ttl), force, id)
	if err != nil {
		return recsink.Owner{}, errorf("sqlite: claim recording %s: %w", id, err)
	}
	var o recsink.Owner
	var expires sql.NullString
	err = db.write.QueryRowContext(ctx, `
		SELECT owner_node, owner_url, lease_epoch, lease_expires_at FROM recordings WHERE id = ?`, id).
		Scan(&o.Node, &o.URL, &o.Epoch, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return recsink.Owner{}, notFound("recording")
	} else if err != nil {
		return recsink.Owner{}, errorf("sqlite: claim recording %s: %w", id, err)
	}
	if o.LeaseExpiresAt, err = parseNullTime(expires); err != nil {
		return recsink.Owner{}, errorf("sqlite: claim recording %s: %w", id, err)
	}
	return o, nil
}

// RenewLeases implements recsink.LeaseStore.
func (db *DB) RenewLeases(ctx context.Context, node string, ttl time.Duration) (map[string]int64, error) {
	rows, err := db.write.QueryContext(ctx, `
		UPDATE recordings SET lease_expires_at = `+sqlNowPlus+`
		WHERE owner_node = ? AND state IN `+sqlstore.HoldingStates+`
		RETURNING id, lease_epoch`, modifier(ttl), node)
	if err != nil {
		return nil, errorf("sqlite: renew leases of %s: %w", node, err)
	}
	defer rows.Close()
	held := map[string]int64{}
	for rows.Next() {
		var id string
		var epoch int64
		if err := rows.Scan(&id, &epoch); err != nil {
			return nil, errorf("sqlite: renew leases of %s: %w", node, err)
		}
		held[id] = epoch
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: renew leases of %s: %w", node, err)
	}
	return held, nil
}

// ListOrphanedRecordings implements recsink.LeaseStore: unfinished
// recordings with no owner, no lease, or a lease expired on the database's
// clock.
func (db *DB) ListOrphanedRecordings(ctx context.Context) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+sqlstore.HoldingStates+`
			AND (owner_node = '' OR lease_expires_at IS NULL OR lease_expires_at < `+sqlNow+`)
		ORDER BY seq`)
	if err != nil {
		return nil, errorf("sqlite: list orphaned recordings: %w", err)
	}
	return rs, nil
}
