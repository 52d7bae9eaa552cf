package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

const webhookEndpointColumns = `org_id, url, events, secret_ciphertext, previous_secret_ciphertext,
	previous_secret_expires_at, disabled_at, created_at, updated_at`

const webhookDeliveryColumns = `seq, id, org_id, type, payload, created_at, state, attempts,
	next_attempt_at, last_status, last_error, delivered_at`

// PutWebhookEndpoint inserts the organization's endpoint or replaces every
// field of the one it has. An unknown organization is ENOTFOUND.
func (db *DB) PutWebhookEndpoint(ctx context.Context, e *recsink.WebhookEndpoint) error {
	events := e.Events
	if events == nil {
		events = []string{}
	}
	eventsJSON, err := json.Marshal(events)
	if err != nil {
		return errorf("sqlite: put webhook endpoint of %s: %w", e.OrgID, err)
	}
	var previous any // NULL, not an empty blob, when there is no previous secret
	if e.PreviousSecretCiphertext != nil {
		previous = e.PreviousSecretCiphertext
	}
	_, err = db.write.ExecContext(ctx, `
		INSERT INTO webhook_endpoints (`+webhookEndpointColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id) DO UPDATE SET
			url = excluded.url, events = excluded.events,
			secret_ciphertext = excluded.secret_ciphertext,
			previous_secret_ciphertext = excluded.previous_secret_ciphertext,
			previous_secret_expires_at = excluded.previous_secret_expires_at,
			disabled_at = excluded.disabled_at,
			created_at = excluded.created_at, updated_at = excluded.updated_at`,
		e.OrgID, e.URL, string(eventsJSON), blob(e.SecretCiphertext), previous,
		formatNullTime(e.PreviousSecretExpiresAt), formatNullTime(e.DisabledAt),
		formatTime(e.CreatedAt), formatTime(e.UpdatedAt))
	if isForeignKey(err) {
		return notFound("organization")
	} else if err != nil {
		return errorf("sqlite: put webhook endpoint of %s: %w", e.OrgID, err)
	}
	return nil
}

// FindWebhookEndpoint returns the organization's endpoint.
func (db *DB) FindWebhookEndpoint(ctx context.Context, orgID string) (*recsink.WebhookEndpoint, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE org_id = ?`, orgID)
	e, err := scanWebhookEndpoint(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("webhook endpoint")
	} else if err != nil {
		return nil, errorf("sqlite: find webhook endpoint of %s: %w", orgID, err)
	}
	return e, nil
}

// DeleteWebhookEndpoint deletes the organization's endpoint; its deliveries
// stay as history.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, orgID string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE org_id = ?`, orgID)
	if err != nil {
		return errorf("sqlite: delete webhook endpoint of %s: %w", orgID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: delete webhook endpoint of %s: %w", orgID, err)
	} else if n == 0 {
		return notFound("webhook endpoint")
	}
	return nil
}

// scanWebhookEndpoint scans webhookEndpointColumns; it returns sql.ErrNoRows
// as is.
func scanWebhookEndpoint(row scanner) (*recsink.WebhookEndpoint, error) {
	var e recsink.WebhookEndpoint
	var events, createdAt, updatedAt string
	var previousExpiresAt, disabledAt sql.NullString
	if err := row.Scan(&e.OrgID, &e.URL, &events, &e.SecretCiphertext, &e.PreviousSecretCiphertext,
		&previousExpiresAt, &disabledAt, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return nil, fmt.Errorf("parse stored events %q: %w", events, err)
	}
	var err error
	if e.PreviousSecretExpiresAt, err = parseNullTime(previousExpiresAt); err != nil {
		return nil, err
	}
	if e.DisabledAt, err = parseNullTime(disabledAt); err != nil {
		return nil, err
	}
	if e.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if e.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return nil, err
	}
	return &e, nil
}

// CreateWebhookDelivery adds d to the outbox in state pending and sets
// d.State accordingly. A duplicate ID is ECONFLICT; an unknown organization
// is ENOTFOUND.
func (db *DB) CreateWebhookDelivery(ctx context.Context, d *recsink.WebhookDelivery) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO webhook_deliveries (id, org_id, type, payload, created_at, state, attempts,
			next_attempt_at, last_status, last_error, delivered_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.OrgID, d.Type, blob(d.Payload), formatTime(d.CreatedAt), recsink.DeliveryPending, d.Attempts,
		formatTime(d.NextAttemptAt), d.LastStatus, d.LastError, formatNullTime(d.DeliveredAt))
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "webhook delivery %s already exists", d.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("sqlite: create webhook delivery %s: %w", d.ID, err)
	}
	d.State = recsink.DeliveryPending
	return nil
}

// ClaimWebhookDeliveries returns up to limit pending deliveries of every
// organization that are due at now, by next attempt then creation order,
// and in the same write transaction moves their next attempt to leaseUntil.
// The returned deliveries carry NextAttemptAt = leaseUntil, as stored.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*recsink.WebhookDelivery, error) {
	if limit <= 0 {
		return []*recsink.WebhookDelivery{}, nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, errorf("sqlite: claim webhook deliveries: %w", err)
	}
	defer tx.Rollback()

	ds, seqs, err := queryWebhookDeliveries(ctx, tx, `
		SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE state = ? AND next_attempt_at <= ?
		ORDER BY next_attempt_at, seq LIMIT ?`,
		recsink.DeliveryPending, formatTime(now), min(limit, maxListLimit))
	if err != nil {
		return nil, errorf("sqlite: claim webhook deliveries: %w", err)
	}
	if len(ds) == 0 {
		return ds, nil
	}
	args := []any{formatTime(leaseUntil)}
	for _, seq := range seqs {
		args = append(args, seq)
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(seqs)), ", ")
	if _, err := tx.ExecContext(ctx, `
		UPDATE webhook_deliveries SET next_attempt_at = ? WHERE seq IN (`+placeholders+`)`, args...); err != nil {
		return nil, errorf("sqlite: claim webhook deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, errorf("sqlite: claim webhook deliveries: commit: %w", err)
	}
	for _, d := range ds {
		d.NextAttemptAt = leaseUntil.UTC()
	}
	return ds, nil
}

// UpdateWebhookDelivery saves d's state, attempts, next attempt, last status
// and error and delivered time. An unknown delivery is ENOTFOUND.
func (db *DB) UpdateWebhookDelivery(ctx context.Context, d *recsink.WebhookDelivery) error {
	res, err := db.write.ExecContext(ctx, `
		UPDATE webhook_deliveries SET
			state = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?, delivered_at = ?
		WHERE org_id = ? AND id = ?`,
		d.State, d.Attempts, formatTime(d.NextAttemptAt), d.LastStatus, d.LastError, formatNullTime(d.DeliveredAt),
		d.OrgID, d.ID)
	if err != nil {
		return errorf("sqlite: update webhook delivery %s: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: update webhook delivery %s: %w", d.ID, err)
	} else if n == 0 {
		return notFound("webhook delivery")
	}
	return nil
}

// ListWebhookDeliveries returns up to limit (clamped to 1..100) of the
// organization's deliveries after cursor, newest first, and the cursor of
// the next page ("" when there is none). A malformed cursor is EINVALID.
func (db *DB) ListWebhookDeliveries(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.WebhookDelivery, string, error) {
	before, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if before == 0 { // first page
		before = math.MaxInt64
	}
	limit = clampLimit(limit)
	// One row more than the page tells whether there is a next page.
	ds, seqs, err := queryWebhookDeliveries(ctx, db.read, `
		SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE org_id = ? AND seq < ?
		ORDER BY seq DESC LIMIT ?`, orgID, before, limit+1)
	if err != nil {
		return nil, "", errorf("sqlite: list webhook deliveries: %w", err)
	}
	var next string
	if len(ds) > limit {
		ds, next = ds[:limit], encodeCursor(seqs[limit-1])
	}
	return ds, next, nil
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryWebhookDeliveries runs a query selecting webhookDeliveryColumns and
// returns the deliveries with their seqs.
func queryWebhookDeliveries(ctx context.Context, q querier, query string, args ...any) ([]*recsink.WebhookDelivery, []int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()

	ds := []*recsink.WebhookDelivery{}
	var seqs []int64
	for rows.Next() {
		d, seq, err := scanWebhookDelivery(rows)
		if err != nil {
			return nil, nil, err
		}
		ds, seqs = append(ds, d), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return ds, seqs, nil
}

// scanWebhookDelivery scans webhookDeliveryColumns and returns the row's
// seq.
func scanWebhookDelivery(row scanner) (*recsink.WebhookDelivery, int64, error) {
	var d recsink.WebhookDelivery
	var seq int64
	var createdAt, nextAttemptAt string
	var deliveredAt sql.NullString
	if err := row.Scan(&seq, &d.ID, &d.OrgID, &d.Type, &d.Payload, &createdAt, &d.State, &d.Attempts,
		&nextAttemptAt, &d.LastStatus, &d.LastError, &deliveredAt); err != nil {
		return nil, 0, err
	}
	var err error
	if d.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, 0, err
	}
	if d.NextAttemptAt, err = parseTime(nextAttemptAt); err != nil {
		return nil, 0, err
	}
	if d.DeliveredAt, err = parseNullTime(deliveredAt); err != nil {
		return nil, 0, err
	}
	return &d, seq, nil
}
