package postgres

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

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
		events = []string{} // a JSON array, never null
	}
	// A nil previous secret stays nil (NULL), unlike the NOT NULL blobs.
	_, err := db.pool.Exec(ctx, `
		INSERT INTO webhook_endpoints (`+webhookEndpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (org_id) DO UPDATE SET
			url = excluded.url, events = excluded.events,
			secret_ciphertext = excluded.secret_ciphertext,
			previous_secret_ciphertext = excluded.previous_secret_ciphertext,
			previous_secret_expires_at = excluded.previous_secret_expires_at,
			disabled_at = excluded.disabled_at,
			created_at = excluded.created_at, updated_at = excluded.updated_at`,
		e.OrgID, e.URL, events, blob(e.SecretCiphertext), e.PreviousSecretCiphertext,
		e.PreviousSecretExpiresAt, e.DisabledAt, e.CreatedAt, e.UpdatedAt)
	if isForeignKey(err) {
		return notFound("organization")
	} else if err != nil {
		return errorf("postgres: put webhook endpoint of %s: %w", e.OrgID, err)
	}
	return nil
}

// FindWebhookEndpoint returns the organization's endpoint.
func (db *DB) FindWebhookEndpoint(ctx context.Context, orgID string) (*recsink.WebhookEndpoint, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE org_id = $1`, orgID)
	e, err := scanWebhookEndpoint(row)
	if isNoRows(err) {
		return nil, notFound("webhook endpoint")
	} else if err != nil {
		return nil, errorf("postgres: find webhook endpoint of %s: %w", orgID, err)
	}
	return e, nil
}

// DeleteWebhookEndpoint deletes the organization's endpoint; its deliveries
// stay as history.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, orgID string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE org_id = $1`, orgID)
	if err != nil {
		return errorf("postgres: delete webhook endpoint of %s: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("webhook endpoint")
	}
	return nil
}

// scanWebhookEndpoint scans webhookEndpointColumns; it returns
// pgx.ErrNoRows as is.
func scanWebhookEndpoint(row pgx.Row) (*recsink.WebhookEndpoint, error) {
	var e recsink.WebhookEndpoint
	if err := row.Scan(&e.OrgID, &e.URL, &e.Events, &e.SecretCiphertext, &e.PreviousSecretCiphertext,
		&e.PreviousSecretExpiresAt, &e.DisabledAt, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return nil, err
	}
	if e.Events == nil { // the column's CHECK makes this unreachable; be safe
		e.Events = []string{}
	}
	return &e, nil
}

// CreateWebhookDelivery adds d to the outbox in state pending and sets
// d.State accordingly. A duplicate ID is ECONFLICT; an unknown organization
// is ENOTFOUND.
func (db *DB) CreateWebhookDelivery(ctx context.Context, d *recsink.WebhookDelivery) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (id, org_id, type, payload, created_at, state, attempts,
			next_attempt_at, last_status, last_error, delivered_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		d.ID, d.OrgID, d.Type, blob(d.Payload), d.CreatedAt, recsink.DeliveryPending, d.Attempts,
		d.NextAttemptAt, d.LastStatus, d.LastError, d.DeliveredAt)
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "webhook delivery %s already exists", d.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("postgres: create webhook delivery %s: %w", d.ID, err)
	}
	d.State = recsink.DeliveryPending
	return nil
}

// ClaimWebhookDeliveries returns up to limit (at most 100) pending
// deliveries of every organization that are due at now, by next attempt
// then creation order, and in the same statement moves their next attempt
// to leaseUntil. The returned deliveries carry NextAttemptAt = leaseUntil,
// as stored. SKIP LOCKED lets nodes claim at once without waiting for each
// other or taking the same row: a row another claim has locked is skipped,
// and once that claim commits the row is no longer due.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*recsink.WebhookDelivery, error) {
	if limit <= 0 {
		return []*recsink.WebhookDelivery{}, nil
	}
	// state is a literal, not a parameter, so that the planner can use the
	// partial index of pending rows.
	ds, err := queryAll(ctx, db.pool, func(row pgx.Row) (*recsink.WebhookDelivery, error) {
		d, _, err := scanWebhookDelivery(row)
		return d, err
	}, `
		WITH due AS (
			SELECT seq, next_attempt_at FROM webhook_deliveries
			WHERE state = '`+recsink.DeliveryPending+`' AND next_attempt_at <= $1
			ORDER BY next_attempt_at, seq LIMIT $3
			FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE webhook_deliveries w SET next_attempt_at = $2
			FROM due WHERE w.seq = due.seq
			RETURNING due.next_attempt_at AS due_at, w.*
		)
		SELECT `+webhookDeliveryColumns+` FROM claimed ORDER BY due_at, seq`,
		now, leaseUntil, min(limit, maxListLimit))
	if err != nil {
		return nil, errorf("postgres: claim webhook deliveries: %w", err)
	}
	return ds, nil
}

// UpdateWebhookDelivery saves d's state, attempts, next attempt, last status
// and error and delivered time. An unknown delivery is ENOTFOUND.
func (db *DB) UpdateWebhookDelivery(ctx context.Context, d *recsink.WebhookDelivery) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE webhook_deliveries SET
			state = $1, attempts = $2, next_attempt_at = $3, last_status = $4, last_error = $5, delivered_at = $6
		WHERE org_id = $7 AND id = $8`,
		d.State, d.Attempts, d.NextAttemptAt, d.LastStatus, d.LastError, d.DeliveredAt,
		d.OrgID, d.ID)
	if err != nil {
		return errorf("postgres: update webhook delivery %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
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
	var seqs []int64
	// One row more than the page tells whether there is a next page.
	ds, err := queryAll(ctx, db.pool, func(row pgx.Row) (*recsink.WebhookDelivery, error) {
		d, seq, err := scanWebhookDelivery(row)
		seqs = append(seqs, seq)
		return d, err
	}, `
		SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE org_id = $1 AND seq < $2
		ORDER BY seq DESC LIMIT $3`, orgID, before, limit+1)
	if err != nil {
		return nil, "", errorf("postgres: list webhook deliveries: %w", err)
	}
	ds, next := page(ds, seqs, limit)
	return ds, next, nil
}

// scanWebhookDelivery scans webhookDeliveryColumns and returns the row's
// seq; it returns pgx.ErrNoRows as is.
func scanWebhookDelivery(row pgx.Row) (*recsink.WebhookDelivery, int64, error) {
	var d recsink.WebhookDelivery
	var seq int64
	if err := row.Scan(&seq, &d.ID, &d.OrgID, &d.Type, &d.Payload, &d.CreatedAt, &d.State, &d.Attempts,
		&d.NextAttemptAt, &d.LastStatus, &d.LastError, &d.DeliveredAt); err != nil {
		return nil, 0, err
	}
	return &d, seq, nil
}
