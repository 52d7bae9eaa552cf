package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
)

// AddAuditEvent appends e to the organization's audit trail.
func (db *DB) AddAuditEvent(ctx context.Context, e *recsink.AuditEvent) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO audit_events (id, org_id, time, actor, admin_user_id, address, action, target, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, e.OrgID, e.Time, e.Actor, e.AdminUserID, e.Address, e.Action, e.Target, e.Details)
	if err != nil {
		return errorf("postgres: add audit event %s: %w", e.Action, err)
	}
	return nil
}

// ListAuditEvents returns the organization's audit events, newest first;
// an admin's events name the admin by email.
func (db *DB) ListAuditEvents(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.AuditEvent, string, error) {
	before, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	var seqs []int64
	es, err := queryAll(ctx, db.pool, func(row pgx.Row) (*recsink.AuditEvent, error) {
		var e recsink.AuditEvent
		var seq int64
		if err := row.Scan(&seq, &e.ID, &e.OrgID, &e.Time, &e.Actor, &e.AdminUserID, &e.Address, &e.Action, &e.Target, &e.Details); err != nil {
			return nil, err
		}
		e.Time = e.Time.UTC()
		seqs = append(seqs, seq)
		return &e, nil
	}, `
		SELECT a.seq, a.id, a.org_id, a.time, COALESCE(u.email, a.actor), a.admin_user_id, a.address, a.action, a.target, a.details
		FROM audit_events a LEFT JOIN admin_users u ON u.id = a.admin_user_id AND a.admin_user_id <> ''
		WHERE a.org_id = $1 AND ($2::bigint = 0 OR a.seq < $2::bigint)
		ORDER BY a.seq DESC LIMIT $3`, orgID, before, limit+1)
	if err != nil {
		return nil, "", errorf("postgres: list audit events: %w", err)
	}
	es, next := page(es, seqs, limit)
	return es, next, nil
}
