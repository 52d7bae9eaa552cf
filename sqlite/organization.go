package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/recsink/recsink"
)

// CreateOrganization inserts org with the hash of its API key. A duplicate
// ID, name or key hash is ECONFLICT.
func (db *DB) CreateOrganization(ctx context.Context, org *recsink.Organization, apiKeyHash []byte) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO organizations (id, name, api_key_hash, created_at)
		VALUES (?, ?, ?, ?)`,
		org.ID, org.Name, blob(apiKeyHash), formatTime(org.CreatedAt))
	if isUnique(err) {
		return recsink.Errorf(recsink.ECONFLICT, "an organization named %q already exists", org.Name)
	} else if err != nil {
		return errorf("sqlite: create organization %s: %w", org.ID, err)
	}
	return nil
}

// FindOrganizationByAPIKeyHash returns the organization whose API key hashes
// to hash.
func (db *DB) FindOrganizationByAPIKeyHash(ctx context.Context, hash []byte) (*recsink.Organization, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT id, name, created_at FROM organizations WHERE api_key_hash = ?`, blob(hash))
	org, err := scanOrganization(row)
	if err != nil {
		return nil, errorf("sqlite: find organization by API key: %w", err)
	}
	return org, nil
}

// FindOrganizationByName returns the organization named name.
func (db *DB) FindOrganizationByName(ctx context.Context, name string) (*recsink.Organization, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT id, name, created_at FROM organizations WHERE name = ?`, name)
	org, err := scanOrganization(row)
	if err != nil {
		return nil, errorf("sqlite: find organization %q: %w", name, err)
	}
	return org, nil
}

func scanOrganization(row scanner) (*recsink.Organization, error) {
	var org recsink.Organization
	var createdAt string
	if err := row.Scan(&org.ID, &org.Name, &createdAt); errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("organization")
	} else if err != nil {
		return nil, err
	}
	var err error
	if org.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	return &org, nil
}
