-- Admin page: the people who sign in to an organization's admin page, and
-- their sessions. The same tables as sqlite/migrations/0003_admin.sql.

-- email is stored lowercased and is unique across organizations, so that a
-- sign-in names one user without asking for the organization.
CREATE TABLE admin_users (
    id            text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES organizations (id),
    email         text NOT NULL UNIQUE,
    password_hash bytea NOT NULL,
    created_at    timestamptz NOT NULL
);

-- Only the SHA-256 of a session's cookie token is stored: a copy of the
-- database signs nobody in.
CREATE TABLE admin_sessions (
    token_hash bytea PRIMARY KEY,
    user_id    text NOT NULL REFERENCES admin_users (id),
    org_id     text NOT NULL REFERENCES organizations (id),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX admin_sessions_expires_at_idx ON admin_sessions (expires_at);
