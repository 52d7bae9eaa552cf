package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/recsink/recsink"
)

const credentialColumns = `id, org_id, scope, provider, bucket, prefix, region, endpoint,
	force_path_style, file_format, access_key_id, secret_ciphertext, created_at, replaced_at`

// CreateCredential inserts c as the current generation of its scope and, in
// the same transaction, marks the previous current generation replaced at
// c.CreatedAt. c.ReplacedAt is ignored: a new generation is current. An
// unknown organization is ENOTFOUND; a duplicate ID is ECONFLICT.
func (db *DB) CreateCredential(ctx context.Context, c *recsink.Credential) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return errorf("sqlite: create credential %s: %w", c.ID, err)
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `
		UPDATE credentials SET replaced_at = ?
		WHERE org_id = ? AND scope = ? AND replaced_at IS NULL`,
		formatTime(c.CreatedAt), c.OrgID, c.Scope); err != nil {
		return errorf("sqlite: create credential %s: replace current: %w", c.ID, err)
	}
	d := c.Destination
	_, err = tx.ExecContext(ctx, `
		INSERT INTO credentials (`+credentialColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		c.ID, c.OrgID, c.Scope, d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint,
		d.ForcePathStyle, d.FileFormat, c.AccessKeyID, blob(c.SecretCiphertext), formatTime(c.CreatedAt))
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "credential %s already exists", c.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("sqlite: create credential %s: %w", c.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return errorf("sqlite: create credential %s: commit: %w", c.ID, err)
	}
	db.credentials.Send(c.OrgID)
	return nil
}

// FindCredential returns the organization's credential generation id.
func (db *DB) FindCredential(ctx context.Context, orgID, id string) (*recsink.Credential, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+credentialColumns+` FROM credentials WHERE org_id = ? AND id = ?`, orgID, id)
	c, err := scanCredential(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("credential")
	} else if err != nil {
		return nil, errorf("sqlite: find credential %s: %w", id, err)
	}
	return c, nil
}

// CurrentCredential returns the scope's current generation: the one not
// replaced.
func (db *DB) CurrentCredential(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+credentialColumns+` FROM credentials
		WHERE org_id = ? AND scope = ? AND replaced_at IS NULL`, orgID, scope)
	c, err := scanCredential(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("storage settings")
	} else if err != nil {
		return nil, errorf("sqlite: current credential of %s: %w", scope, err)
	}
	return c, nil
}

// ReplaceCurrentCredential marks the scope's current generation replaced at
// at, leaving the scope without one; ENOTFOUND when there is none.
func (db *DB) ReplaceCurrentCredential(ctx context.Context, orgID, scope string, at time.Time) error {
	res, err := db.write.ExecContext(ctx, `
		UPDATE credentials SET replaced_at = ?
		WHERE org_id = ? AND scope = ? AND replaced_at IS NULL`,
		formatTime(at), orgID, scope)
	if err != nil {
		return errorf("sqlite: replace current credential of %s: %w", scope, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: replace current credential of %s: %w", scope, err)
	} else if n == 0 {
		return notFound("storage settings")
	}
	db.credentials.Send(orgID)
	return nil
}

// ListCredentials returns every generation of every scope of the
// organization, oldest first.
func (db *DB) ListCredentials(ctx context.Context, orgID string) ([]*recsink.Credential, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT `+credentialColumns+` FROM credentials WHERE org_id = ? ORDER BY seq`, orgID)
	if err != nil {
		return nil, errorf("sqlite: list credentials: %w", err)
	}
	defer rows.Close()

	cs := []*recsink.Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, errorf("sqlite: list credentials: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list credentials: %w", err)
	}
	return cs, nil
}

// scanCredential scans credentialColumns; it returns sql.ErrNoRows as is.
func scanCredential(row scanner) (*recsink.Credential, error) {
	var c recsink.Credential
	var createdAt string
	var replacedAt sql.NullString
	d := &c.Destination
	if err := row.Scan(&c.ID, &c.OrgID, &c.Scope, &d.Provider, &d.Bucket, &d.Prefix, &d.Region, &d.Endpoint,
		&d.ForcePathStyle, &d.FileFormat, &c.AccessKeyID, &c.SecretCiphertext, &createdAt, &replacedAt); err != nil {
		return nil, err
	}
	var err error
	if c.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if c.ReplacedAt, err = parseNullTime(replacedAt); err != nil {
		return nil, err
	}
	return &c, nil
}
