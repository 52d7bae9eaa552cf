-- Whereby's recording.type (issue 14): "none" now means that recordings are
-- disabled in the room, and a room created without recording options records
-- into the organization's destination ("cloud"). Before this migration
-- "none" was only the default and changed nothing, so every existing room
-- keeps the behaviour it had: it may record.
UPDATE meetings SET recording_type = 'cloud' WHERE recording_type = 'none';

-- The audit trail: who changed storage settings, webhooks, meetings and
-- recordings, when and from where. Never a secret.
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    time          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    admin_user_id TEXT NOT NULL,
    address       TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    details       TEXT NOT NULL
) STRICT;

CREATE INDEX audit_events_org_id_seq_idx ON audit_events (org_id, seq);
CREATE INDEX audit_events_time_idx ON audit_events (time);
