package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
)

// CreateOrganization inserts org with the hash of its API key. A duplicate
// ID, name or key hash is ECONFLICT.
func (db *DB) CreateOrganization(ctx context.Context, org *recsink.Organization, apiKeyHash []byte) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO organizations (id, name, api_key_hash, created_at)
		VALUES ($1, $2, $3, $4)`,
		org.ID, org.Name, blob(apiKeyHash), org.CreatedAt)
	if isUnique(err) {
		return recsink.Errorf(recsink.ECONFLICT, "an organization named %q already exists", org.Name)
	} else if err != nil {
		return errorf("postgres: create organization %s: %w", org.ID, err)
	}
	return nil
}

// FindOrganizationByAPIKeyHash returns the organization whose API key hashes
// to hash.
func (db *DB) FindOrganizationByAPIKeyHash(ctx context.Context, hash []byte) (*recsink.Organization, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT id, name, created_at FROM organizations WHERE api_key_hash = $1`, blob(hash))
	org, err := scanOrganization(row)
	if isNoRows(err) {
		return nil, notFound("organization")
	} else if err != nil {
		return nil, errorf("postgres: find organization by API key: %w", err)
	}
	return org, nil
}

// FindOrganizationByName returns the organization named name.
func (db *DB) FindOrganizationByName(ctx context.Context, name string) (*recsink.Organization, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT id, name, created_at FROM organizations WHERE name = $1`, name)
	org, err := scanOrganization(row)
	if isNoRows(err) {
		return nil, notFound("organization")
	} else if err != nil {
		return nil, errorf("postgres: find organization %q: %w", name, err)
	}
	return org, nil
}

// scanOrganization scans id, name and created_at; it returns pgx.ErrNoRows
// as is.
func scanOrganization(row pgx.Row) (*recsink.Organization, error) {
	var org recsink.Organization
	if err := row.Scan(&org.ID, &org.Name, &org.CreatedAt); err != nil {
		return nil, err
	}
	return &org, nil
}
