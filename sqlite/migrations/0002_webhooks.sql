-- Webhooks: one endpoint per organization and the durable outbox of events.
-- PostgreSQL dialect: TEXT times become timestamptz, BLOB bytea, events jsonb
-- (or text), seq bigint identity.

-- events is a JSON array of event types; an empty array means every type,
-- including types added later. The secrets are sealed by the secret box with
-- the endpoint's associated data, like access secrets.
CREATE TABLE webhook_endpoints (
    org_id                     TEXT PRIMARY KEY REFERENCES organizations (id),
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL,
    secret_ciphertext          BLOB NOT NULL,
    previous_secret_ciphertext BLOB,
    previous_secret_expires_at TEXT,
    disabled_at                TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
) STRICT;

-- Deliveries outlive their endpoint: they are the history the API lists.
-- While a delivery is pending, next_attempt_at is when it is due or, while a
-- worker holds it, when that worker's lease ends.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    type            TEXT NOT NULL,
    payload         BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER NOT NULL,
    last_error      TEXT NOT NULL,
    delivered_at    TEXT
) STRICT;

CREATE INDEX webhook_deliveries_state_next_attempt_at_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_org_id_seq_idx ON webhook_deliveries (org_id, seq);
