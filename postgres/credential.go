package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
)

const credentialColumns = `id, org_id, scope, provider, bucket, prefix, region, endpoint,
	force_path_style, file_format, access_key_id, secret_ciphertext, created_at, replaced_at`

// CreateCredential inserts c as the current generation of its scope and, in
// the same transaction, marks the previous current generation replaced at
// c.CreatedAt. c.ReplacedAt is ignored: a new generation is current. An
// unknown organization is ENOTFOUND; a duplicate ID is ECONFLICT.
func (db *DB) CreateCredential(ctx context.Context, c *recsink.Credential) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return errorf("postgres: create credential %s: %w", c.ID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Two saves of one scope at once would both replace the same old
	// generation and then collide on credentials_current_idx (under read
	// committed the second UPDATE does not see the first's new row).
	// Locking the organization row serializes them, so that the second
	// replaces the first's generation. NO KEY UPDATE does not block the
	// foreign key checks of other inserts.
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, c.OrgID).Scan(&one)
	if isNoRows(err) {
		return notFound("organization")
	} else if err != nil {
		return errorf("postgres: create credential %s: lock organization: %w", c.ID, err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE credentials SET replaced_at = $1
		WHERE org_id = $2 AND scope = $3 AND replaced_at IS NULL`,
		c.CreatedAt, c.OrgID, c.Scope); err != nil {
		return errorf("postgres: create credential %s: replace current: %w", c.ID, err)
	}
	d := c.Destination
	_, err = tx.Exec(ctx, `
		INSERT INTO credentials (`+credentialColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL)`,
		c.ID, c.OrgID, c.Scope, d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint,
		d.ForcePathStyle, d.FileFormat, c.AccessKeyID, blob(c.SecretCiphertext), c.CreatedAt)
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "credential %s already exists", c.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("postgres: create credential %s: %w", c.ID, err)
	}
	// Delivered to every listening node at commit, not before.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, credentialsChannel, c.OrgID); err != nil {
		return errorf("postgres: create credential %s: notify: %w", c.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return errorf("postgres: create credential %s: commit: %w", c.ID, err)
	}
	return nil
}

// FindCredential returns the organization's credential generation id.
func (db *DB) FindCredential(ctx context.Context, orgID, id string) (*recsink.Credential, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+credentialColumns+` FROM credentials WHERE org_id = $1 AND id = $2`, orgID, id)
	c, err := scanCredential(row)
	if isNoRows(err) {
		return nil, notFound("credential")
	} else if err != nil {
		return nil, errorf("postgres: find credential %s: %w", id, err)
	}
	return c, nil
}

// CurrentCredential returns the scope's current generation: the one not
// replaced.
func (db *DB) CurrentCredential(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+credentialColumns+` FROM credentials
		WHERE org_id = $1 AND scope = $2 AND replaced_at IS NULL`, orgID, scope)
	c, err := scanCredential(row)
	if isNoRows(err) {
		return nil, notFound("storage settings")
	} else if err != nil {
		return nil, errorf("postgres: current credential of %s: %w", scope, err)
	}
	return c, nil
}

// ReplaceCurrentCredential marks the scope's current generation replaced at
// at, leaving the scope without one; ENOTFOUND when there is none.
func (db *DB) ReplaceCurrentCredential(ctx context.Context, orgID, scope string, at time.Time) error {
	// One statement, so that the notification goes with the change: it is
	// sent only when a row was replaced, at commit.
	var n int
	err := db.pool.QueryRow(ctx, `
		WITH replaced AS (
			UPDATE credentials SET replaced_at = $1
			WHERE org_id = $2 AND scope = $3 AND replaced_at IS NULL
			RETURNING org_id
		)
		SELECT count(*) FROM (SELECT pg_notify($4, org_id) FROM replaced) AS notified`,
		at, orgID, scope, credentialsChannel).Scan(&n)
	if err != nil {
		return errorf("postgres: replace current credential of %s: %w", scope, err)
	}
	if n == 0 {
		return notFound("storage settings")
	}
	return nil
}

// ListCredentials returns every generation of every scope of the
// organization, oldest first.
func (db *DB) ListCredentials(ctx context.Context, orgID string) ([]*recsink.Credential, error) {
	cs, err := queryAll(ctx, db.pool, scanCredential, `
		SELECT `+credentialColumns+` FROM credentials WHERE org_id = $1 ORDER BY seq`, orgID)
	if err != nil {
		return nil, errorf("postgres: list credentials: %w", err)
	}
	return cs, nil
}

// scanCredential scans credentialColumns; it returns pgx.ErrNoRows as is.
func scanCredential(row pgx.Row) (*recsink.Credential, error) {
	var c recsink.Credential
	d := &c.Destination
	if err := row.Scan(&c.ID, &c.OrgID, &c.Scope, &d.Provider, &d.Bucket, &d.Prefix, &d.Region, &d.Endpoint,
		&d.ForcePathStyle, &d.FileFormat, &c.AccessKeyID, &c.SecretCiphertext, &c.CreatedAt, &c.ReplacedAt); err != nil {
		return nil, err
	}
	return &c, nil
}
