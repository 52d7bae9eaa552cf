package postgres

import (
	"context"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

var _ recsink.CredentialHealthStore = (*DB)(nil)

// ListWatchedCredentials returns every credential that is current or held
// by an unfinished recording, across organizations.
func (db *DB) ListWatchedCredentials(ctx context.Context) ([]*recsink.Credential, error) {
	cs, err := queryAll(ctx, db.pool, scanCredential, `
		SELECT `+credentialColumns+` FROM credentials
		WHERE `+sqlstore.WatchedCredentials+`
		ORDER BY seq`)
	if err != nil {
		return nil, errorf("postgres: list watched credentials: %w", err)
	}
	return cs, nil
}

// ClaimCredentialCheck implements recsink.CredentialHealthStore.
func (db *DB) ClaimCredentialCheck(ctx context.Context, id string, now, before time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx, `
		UPDATE credentials SET last_checked_at = $1
		WHERE id = $2 AND (last_checked_at IS NULL OR last_checked_at < $3)`, now, id, before)
	if err != nil {
		return false, errorf("postgres: claim check of credential %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SetCredentialHealth implements recsink.CredentialHealthStore.
func (db *DB) SetCredentialHealth(ctx context.Context, id string, now time.Time, h recsink.CredentialHealth) (bool, error) {
	var err error
	var n int64
	if h.State == recsink.CredentialHealthFailing {
		tag, e := db.pool.Exec(ctx, `
			UPDATE credentials SET failing_since = $1, failing_check = $2, failing_code = $3, failing_reason = $4
			WHERE id = $5 AND failing_since IS NULL`, now, h.Check, h.Code, h.Reason, id)
		err, n = e, tag.RowsAffected()
		if err == nil && n == 0 {
			// A spell under way: the latest cause, not the first one.
			_, err = db.pool.Exec(ctx, `
				UPDATE credentials SET failing_check = $1, failing_code = $2, failing_reason = $3
				WHERE id = $4 AND failing_since IS NOT NULL`, h.Check, h.Code, h.Reason, id)
		}
	} else {
		tag, e := db.pool.Exec(ctx, `
			UPDATE credentials SET failing_since = NULL, failing_check = '', failing_code = '', failing_reason = ''
			WHERE id = $1 AND failing_since IS NOT NULL`, id)
		err, n = e, tag.RowsAffected()
	}
	if err != nil {
		return false, errorf("postgres: set health of credential %s: %w", id, err)
	}
	return n == 1, nil
}

// ListCredentialHealth implements recsink.CredentialHealthStore.
func (db *DB) ListCredentialHealth(ctx context.Context, orgID string) (map[string]recsink.CredentialHealth, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT id, last_checked_at, failing_since, failing_check, failing_code, failing_reason
		FROM credentials WHERE org_id = $1`, orgID)
	if err != nil {
		return nil, errorf("postgres: list credential health: %w", err)
	}
	out := map[string]recsink.CredentialHealth{}
	for rows.Next() {
		var id string
		h := recsink.CredentialHealth{State: recsink.CredentialHealthOK}
		if err := rows.Scan(&id, &h.CheckedAt, &h.Since, &h.Check, &h.Code, &h.Reason); err != nil {
			rows.Close()
			return nil, errorf("postgres: list credential health: %w", err)
		}
		for _, t := range []*time.Time{h.CheckedAt, h.Since} {
			if t != nil {
				*t = t.UTC()
			}
		}
		if h.Since != nil {
			h.State = recsink.CredentialHealthFailing
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("postgres: list credential health: %w", err)
	}
	return out, nil
}

// CountFailingCredentials implements recsink.CredentialHealthStore: only
// the credentials still watched count.
func (db *DB) CountFailingCredentials(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `
		SELECT count(*) FROM credentials WHERE failing_since IS NOT NULL AND `+sqlstore.WatchedCredentials).Scan(&n); err != nil {
		return 0, errorf("postgres: count failing credentials: %w", err)
	}
	return n, nil
}
