package postgres

import (
	"context"
	"time"

	"github.com/recsink/recsink"
)

var _ recsink.SigningKeyStore = (*DB)(nil)

// ListSigningKeys implements recsink.SigningKeyStore: newest first.
func (db *DB) ListSigningKeys(ctx context.Context) ([]*recsink.SigningKey, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT id, algorithm, private_ciphertext, created_at, retired_at
		FROM oidc_signing_keys ORDER BY seq DESC`)
	if err != nil {
		return nil, errorf("postgres: list signing keys: %w", err)
	}
	defer rows.Close()
	var ks []*recsink.SigningKey
	for rows.Next() {
		var k recsink.SigningKey
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateCiphertext, &k.CreatedAt, &k.RetiredAt); err != nil {
			return nil, errorf("postgres: list signing keys: %w", err)
		}
		k.CreatedAt = k.CreatedAt.UTC()
		if k.RetiredAt != nil {
			t := k.RetiredAt.UTC()
			k.RetiredAt = &t
		}
		ks = append(ks, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("postgres: list signing keys: %w", err)
	}
	return ks, nil
}

// CreateSigningKey implements recsink.SigningKeyStore.
func (db *DB) CreateSigningKey(ctx context.Context, k *recsink.SigningKey) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return errorf("postgres: create signing key: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Two nodes rotating at once: the lock makes the second retire the
	// first's key, so that one key is current.
	if _, err := tx.Exec(ctx, `LOCK TABLE oidc_signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return errorf("postgres: create signing key: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE oidc_signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, k.CreatedAt); err != nil {
		return errorf("postgres: create signing key: retire current: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO oidc_signing_keys (id, algorithm, private_ciphertext, created_at, retired_at)
		VALUES ($1, $2, $3, $4, NULL)`, k.ID, k.Algorithm, blob(k.PrivateCiphertext), k.CreatedAt)
	if isUnique(err) {
		return recsink.Errorf(recsink.ECONFLICT, "signing key %s already exists", k.ID)
	} else if err != nil {
		return errorf("postgres: create signing key: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return errorf("postgres: create signing key: commit: %w", err)
	}
	k.RetiredAt = nil
	return nil
}

// DeleteSigningKeys implements recsink.SigningKeyStore.
func (db *DB) DeleteSigningKeys(ctx context.Context, before time.Time) error {
	if _, err := db.pool.Exec(ctx, `
		DELETE FROM oidc_signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1`, before); err != nil {
		return errorf("postgres: delete signing keys: %w", err)
	}
	return nil
}
