package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

var _ recsink.CredentialHealthStore = (*DB)(nil)

// ListWatchedCredentials returns every credential that is current or held
// by an unfinished recording, across organizations.
func (db *DB) ListWatchedCredentials(ctx context.Context) ([]*recsink.Credential, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT `+credentialColumns+` FROM credentials
		WHERE `+sqlstore.WatchedCredentials+`
		ORDER BY seq`)
	if err != nil {
		return nil, errorf("sqlite: list watched credentials: %w", err)
	}
	defer rows.Close()
	cs := []*recsink.Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, errorf("sqlite: list watched credentials: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list watched credentials: %w", err)
	}
	return cs, nil
}

// ClaimCredentialCheck implements recsink.CredentialHealthStore.
func (db *DB) ClaimCredentialCheck(ctx context.Context, id string, now, before time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx, `
		UPDATE credentials SET last_checked_at = ?
		WHERE id = ? AND (last_checked_at IS NULL OR last_checked_at < ?)`,
		formatTime(now), id, formatTime(before))
	if err != nil {
		return false, errorf("sqlite: claim check of credential %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, errorf("sqlite: claim check of credential %s: %w", id, err)
	}
	return n == 1, nil
}

// SetCredentialHealth implements recsink.CredentialHealthStore.
func (db *DB) SetCredentialHealth(ctx context.Context, id string, now time.Time, h recsink.CredentialHealth) (bool, error) {
	var res sql.Result
	var err error
	if h.State == recsink.CredentialHealthFailing {
		res, err = db.write.ExecContext(ctx, `
			UPDATE credentials SET failing_since = ?, failing_check = ?, failing_code = ?, failing_reason = ?
			WHERE id = ? AND failing_since IS NULL`,
			formatTime(now), h.Check, h.Code, h.Reason, id)
		if err == nil {
			if n, e := res.RowsAffected(); e == nil && n == 0 {
				// A spell under way: the latest cause, not the first one.
				if _, err = db.write.ExecContext(ctx, `
					UPDATE credentials SET failing_check = ?, failing_code = ?, failing_reason = ?
					WHERE id = ? AND failing_since IS NOT NULL`,
					h.Check, h.Code, h.Reason, id); err == nil {
					return false, nil
				}
			}
		}
	} else {
		res, err = db.write.ExecContext(ctx, `
			UPDATE credentials SET failing_since = NULL, failing_check = '', failing_code = '', failing_reason = ''
			WHERE id = ? AND failing_since IS NOT NULL`, id)
	}
	if err != nil {
		return false, errorf("sqlite: set health of credential %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, errorf("sqlite: set health of credential %s: %w", id, err)
	}
	return n == 1, nil
}

// ListCredentialHealth implements recsink.CredentialHealthStore.
func (db *DB) ListCredentialHealth(ctx context.Context, orgID string) (map[string]recsink.CredentialHealth, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT id, last_checked_at, failing_since, failing_check, failing_code, failing_reason
		FROM credentials WHERE org_id = ?`, orgID)
	if err != nil {
		return nil, errorf("sqlite: list credential health: %w", err)
	}
	defer rows.Close()
	out := map[string]recsink.CredentialHealth{}
	for rows.Next() {
		var id string
		var checked, since sql.NullString
		h := recsink.CredentialHealth{State: recsink.CredentialHealthOK}
		if err := rows.Scan(&id, &checked, &since, &h.Check, &h.Code, &h.Reason); err != nil {
			return nil, errorf("sqlite: list credential health: %w", err)
		}
		if h.CheckedAt, err = parseNullTime(checked); err != nil {
			return nil, errorf("sqlite: list credential health: %w", err)
		}
		if h.Since, err = parseNullTime(since); err != nil {
			return nil, errorf("sqlite: list credential health: %w", err)
		}
		if h.Since != nil {
			h.State = recsink.CredentialHealthFailing
		}
		out[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list credential health: %w", err)
	}
	return out, nil
}

// CountFailingCredentials implements recsink.CredentialHealthStore: only
// the credentials still watched count.
func (db *DB) CountFailingCredentials(ctx context.Context) (int, error) {
	var n int
	if err := db.read.QueryRowContext(ctx, `
		SELECT count(*) FROM credentials WHERE failing_since IS NOT NULL AND `+sqlstore.WatchedCredentials).Scan(&n); err != nil {
		return 0, errorf("sqlite: count failing credentials: %w", err)
	}
	return n, nil
}
