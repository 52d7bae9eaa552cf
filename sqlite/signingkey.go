package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/recsink/recsink"
)

var _ recsink.SigningKeyStore = (*DB)(nil)

// ListSigningKeys implements recsink.SigningKeyStore: newest first.
func (db *DB) ListSigningKeys(ctx context.Context) ([]*recsink.SigningKey, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT id, algorithm, private_ciphertext, created_at, retired_at
		FROM oidc_signing_keys ORDER BY seq DESC`)
	if err != nil {
		return nil, errorf("sqlite: list signing keys: %w", err)
	}
	defer rows.Close()
	var ks []*recsink.SigningKey
	for rows.Next() {
		var k recsink.SigningKey
		var created string
		var retired sql.NullString
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateCiphertext, &created, &retired); err != nil {
			return nil, errorf("sqlite: list signing keys: %w", err)
		}
		if k.CreatedAt, err = parseTime(created); err != nil {
			return nil, errorf("sqlite: list signing keys: %w", err)
		}
		if k.RetiredAt, err = parseNullTime(retired); err != nil {
			return nil, errorf("sqlite: list signing keys: %w", err)
		}
		ks = append(ks, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list signing keys: %w", err)
	}
	return ks, nil
}

// CreateSigningKey implements recsink.SigningKeyStore.
func (db *DB) CreateSigningKey(ctx context.Context, k *recsink.SigningKey) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return errorf("sqlite: create signing key: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE oidc_signing_keys SET retired_at = ? WHERE retired_at IS NULL`,
		formatTime(k.CreatedAt)); err != nil {
		return errorf("sqlite: create signing key: retire current: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO oidc_signing_keys (id, algorithm, private_ciphertext, created_at, retired_at)
		VALUES (?, ?, ?, ?, NULL)`, k.ID, k.Algorithm, blob(k.PrivateCiphertext), formatTime(k.CreatedAt))
	if isUnique(err) {
		return recsink.Errorf(recsink.ECONFLICT, "signing key %s already exists", k.ID)
	} else if err != nil {
		return errorf("sqlite: create signing key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return errorf("sqlite: create signing key: commit: %w", err)
	}
	k.RetiredAt = nil
	return nil
}

// DeleteSigningKeys implements recsink.SigningKeyStore.
func (db *DB) DeleteSigningKeys(ctx context.Context, before time.Time) error {
	if _, err := db.write.ExecContext(ctx, `
		DELETE FROM oidc_signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?`, formatTime(before)); err != nil {
		return errorf("sqlite: delete signing keys: %w", err)
	}
	return nil
}
