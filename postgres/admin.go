package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// CreateAdminUser inserts u with its email lowercased. A taken email (in any
// organization) is ECONFLICT; an unknown organization is ENOTFOUND.
func (db *DB) CreateAdminUser(ctx context.Context, u *recsink.AdminUser) error {
	u.Email = normalizeEmail(u.Email)
	_, err := db.pool.Exec(ctx, `
		INSERT INTO admin_users (id, org_id, email, password_hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.OrgID, u.Email, blob(u.PasswordHash), u.CreatedAt)
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "an admin user with email %q already exists", u.Email)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("postgres: create admin user %s: %w", u.ID, err)
	}
	return nil
}

// FindAdminUserByEmail returns the admin user with email, compared
// case-insensitively.
func (db *DB) FindAdminUserByEmail(ctx context.Context, email string) (*recsink.AdminUser, error) {
	var u recsink.AdminUser
	err := db.pool.QueryRow(ctx, `
		SELECT id, org_id, email, password_hash, created_at FROM admin_users WHERE email = $1`,
		normalizeEmail(email)).Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &u.CreatedAt)
	if isNoRows(err) {
		return nil, notFound("admin user")
	} else if err != nil {
		return nil, errorf("postgres: find admin user: %w", err)
	}
	return &u, nil
}

// CreateAdminSession inserts s, and deletes sessions that have expired so
// that the table does not grow with abandoned ones.
func (db *DB) CreateAdminSession(ctx context.Context, s *recsink.AdminSession) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return errorf("postgres: create admin session: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM admin_sessions WHERE expires_at <= $1`, recsink.Now()); err != nil {
		return errorf("postgres: delete expired admin sessions: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO admin_sessions (token_hash, user_id, org_id, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		blob(s.TokenHash), s.UserID, s.OrgID, s.CSRFToken, s.CreatedAt, s.ExpiresAt)
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "admin session already exists")
	case isForeignKey(err):
		return notFound("admin user")
	case err != nil:
		return errorf("postgres: create admin session: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return errorf("postgres: create admin session: %w", err)
	}
	return nil
}

// FindAdminSession returns the session whose token hashes to tokenHash and
// that has not expired at now.
func (db *DB) FindAdminSession(ctx context.Context, tokenHash []byte, now time.Time) (*recsink.AdminSession, error) {
	var s recsink.AdminSession
	err := db.pool.QueryRow(ctx, `
		SELECT token_hash, user_id, org_id, csrf_token, created_at, expires_at
		FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2`,
		blob(tokenHash), now).Scan(&s.TokenHash, &s.UserID, &s.OrgID, &s.CSRFToken, &s.CreatedAt, &s.ExpiresAt)
	if isNoRows(err) {
		return nil, notFound("admin session")
	} else if err != nil {
		return nil, errorf("postgres: find admin session: %w", err)
	}
	return &s, nil
}

// DeleteAdminSession deletes the session; deleting a missing one is not an
// error, so that signing out twice is harmless.
func (db *DB) DeleteAdminSession(ctx context.Context, tokenHash []byte) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM admin_sessions WHERE token_hash = $1`, blob(tokenHash)); err != nil {
		return errorf("postgres: delete admin session: %w", err)
	}
	return nil
}

// normalizeEmail returns email as admin users are stored: trimmed and
// lowercased.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}
