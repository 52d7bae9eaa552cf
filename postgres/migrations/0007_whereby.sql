-- Whereby's recording.type (issue 14): "none" now means that recordings are
-- disabled in the room, and a room created without recording options records
-- into the organization's destination ("cloud"). Before this migration
-- "none" was only the default and changed nothing, so every existing room
-- keeps the behaviour it had: it may record.
UPDATE meetings SET recording_type = 'cloud' WHERE recording_type = 'none';

-- The audit trail: who changed storage settings, webhooks, meetings and
-- recordings, when and from where. Never a secret.
CREATE TABLE audit_events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    org_id        text NOT NULL REFERENCES organizations (id),
    time          timestamptz NOT NULL,
    actor         text NOT NULL,
    admin_user_id text NOT NULL,
    address       text NOT NULL,
    action        text NOT NULL,
    target        text NOT NULL,
    details       text NOT NULL
);

CREATE INDEX audit_events_org_id_seq_idx ON audit_events (org_id, seq);
CREATE INDEX audit_events_time_idx ON audit_events (time);
