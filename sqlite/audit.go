package sqlite

import (
	"context"

	"github.com/recsink/recsink"
)

// AddAuditEvent appends e to the organization's audit trail.
func (db *DB) AddAuditEvent(ctx context.Context, e *recsink.AuditEvent) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO audit_events (id, org_id, time, actor, admin_user_id, address, action, target, details)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.OrgID, formatTime(e.Time), e.Actor, e.AdminUserID, e.Address, e.Action, e.Target, e.Details)
	if err != nil {
		return errorf("sqlite: add audit event %s: %w", e.Action, err)
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
	rows, err := db.read.QueryContext(ctx, `
		SELECT a.seq, a.id, a.org_id, a.time, COALESCE(u.email, a.actor), a.admin_user_id, a.address, a.action, a.target, a.details
		FROM audit_events a LEFT JOIN admin_users u ON u.id = a.admin_user_id AND a.admin_user_id <> ''
		WHERE a.org_id = ? AND (? = 0 OR a.seq < ?)
		ORDER BY a.seq DESC LIMIT ?`, orgID, before, before, limit+1)
	if err != nil {
		return nil, "", errorf("sqlite: list audit events: %w", err)
	}
	defer rows.Close()
	es := []*recsink.AuditEvent{}
	var seqs []int64
	for rows.Next() {
		var e recsink.AuditEvent
		var seq int64
		var t string
		if err := rows.Scan(&seq, &e.ID, &e.OrgID, &t, &e.Actor, &e.AdminUserID, &e.Address, &e.Action, &e.Target, &e.Details); err != nil {
			return nil, "", errorf("sqlite: list audit events: %w", err)
		}
		if e.Time, err = parseTime(t); err != nil {
			return nil, "", errorf("sqlite: list audit events: %w", err)
		}
		es, seqs = append(es, &e), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", errorf("sqlite: list audit events: %w", err)
	}
	var next string
	if len(es) > limit {
		es, next = es[:limit], encodeCursor(seqs[limit-1])
	}
	return es, next, nil
}
