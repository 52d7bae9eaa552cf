-- Webhooks: one endpoint per organization and the durable outbox of events.
-- The same tables as sqlite/migrations/0002_webhooks.sql.

-- events is a JSON array of event types; an empty array means every type,
-- including types added later. The secrets are sealed by the secret box with
-- the endpoint's associated data, like access secrets.
CREATE TABLE webhook_endpoints (
    org_id                     text PRIMARY KEY REFERENCES organizations (id),
    url                        text NOT NULL,
    events                     jsonb NOT NULL CHECK (jsonb_typeof(events) = 'array'),
    secret_ciphertext          bytea NOT NULL,
    previous_secret_ciphertext bytea,
    previous_secret_expires_at timestamptz,
    disabled_at                timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);

-- Deliveries outlive their endpoint: they are the history the API lists.
-- While a delivery is pending, next_attempt_at is when it is due or, while a
-- worker holds it, when that worker's lease ends.
CREATE TABLE webhook_deliveries (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    org_id          text NOT NULL REFERENCES organizations (id),
    type            text NOT NULL,
    payload         bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    state           text NOT NULL,
    attempts        integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_status     integer NOT NULL,
    last_error      text NOT NULL,
    delivered_at    timestamptz
);

-- Only pending rows are ever claimed: a partial index stays small while
-- delivered history grows.
CREATE INDEX webhook_deliveries_pending_next_attempt_at_idx ON webhook_deliveries (next_attempt_at, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_org_id_seq_idx ON webhook_deliveries (org_id, seq);
