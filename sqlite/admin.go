package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// CreateAdminUser inserts u with its email lowercased. A taken email (in any
// organization) is ECONFLICT; an unknown organization is ENOTFOUND.
func (db *DB) CreateAdminUser(ctx context.Context, u *recsink.AdminUser) error {
	u.Email = normalizeEmail(u.Email)
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO admin_users (id, org_id, email, password_hash, created_at)
		VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.OrgID, u.Email, blob(u.PasswordHash), formatTime(u.CreatedAt))
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "an admin user with email %q already exists", u.Email)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("sqlite: create admin user %s: %w", u.ID, err)
	}
	return nil
}

// FindAdminUserByEmail returns the admin user with email, compared
// case-insensitively.
func (db *DB) FindAdminUserByEmail(ctx context.Context, email string) (*recsink.AdminUser, error) {
	var u recsink.AdminUser
	var createdAt string
	err := db.read.QueryRowContext(ctx, `
		SELECT id, org_id, email, password_hash, created_at FROM admin_users WHERE email = ?`,
		normalizeEmail(email)).Scan(&u.ID, &u.OrgID, &u.Email, &u.PasswordHash, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("admin user")
	} else if err != nil {
		return nil, errorf("sqlite: find admin user: %w", err)
	}
	if u.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateAdminSession inserts s, and deletes sessions that have expired so
// that the table does not grow with abandoned ones.
func (db *DB) CreateAdminSession(ctx context.Context, s *recsink.AdminSession) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return errorf("sqlite: create admin session: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE expires_at <= ?`, formatTime(recsink.Now())); err != nil {
		return errorf("sqlite: delete expired admin sessions: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO admin_sessions (token_hash, user_id, org_id, csrf_token, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		blob(s.TokenHash), s.UserID, s.OrgID, s.CSRFToken, formatTime(s.CreatedAt), formatTime(s.ExpiresAt))
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "admin session already exists")
	case isForeignKey(err):
		return notFound("admin user")
	case err != nil:
		return errorf("sqlite: create admin session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return errorf("sqlite: create admin session: %w", err)
	}
	return nil
}

// FindAdminSession returns the session whose token hashes to tokenHash and
// that has not expired at now.
func (db *DB) FindAdminSession(ctx context.Context, tokenHash []byte, now time.Time) (*recsink.AdminSession, error) {
	var s recsink.AdminSession
	var createdAt, expiresAt string
	err := db.read.QueryRowContext(ctx, `
		SELECT token_hash, user_id, org_id, csrf_token, created_at, expires_at
		FROM admin_sessions WHERE token_hash = ? AND expires_at > ?`,
		blob(tokenHash), formatTime(now)).Scan(&s.TokenHash, &s.UserID, &s.OrgID, &s.CSRFToken, &createdAt, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("admin session")
	} else if err != nil {
		return nil, errorf("sqlite: find admin session: %w", err)
	}
	if s.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if s.ExpiresAt, err = parseTime(expiresAt); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteAdminSession deletes the session; deleting a missing one is not an
// error, so that signing out twice is harmless.
func (db *DB) DeleteAdminSession(ctx context.Context, tokenHash []byte) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM admin_sessions WHERE token_hash = ?`, blob(tokenHash)); err != nil {
		return errorf("sqlite: delete admin session: %w", err)
	}
	return nil
}

// normalizeEmail returns email as admin users are stored: trimmed and
// lowercased.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}
