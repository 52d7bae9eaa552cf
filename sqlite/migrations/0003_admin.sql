-- Admin page: the people who sign in to an organization's admin page, and
-- their sessions. PostgreSQL dialect: TEXT times become timestamptz, BLOB bytea.

-- email is stored lowercased and is unique across organizations, so that a
-- sign-in names one user without asking for the organization.
CREATE TABLE admin_users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    email         TEXT NOT NULL UNIQUE,
    password_hash BLOB NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

-- Only the SHA-256 of a session's cookie token is stored: a copy of the
-- database signs nobody in.
CREATE TABLE admin_sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES admin_users (id),
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;

CREATE INDEX admin_sessions_expires_at_idx ON admin_sessions (expires_at);
