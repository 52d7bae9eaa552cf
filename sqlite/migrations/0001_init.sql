-- recsink schema, SQLite dialect. The PostgreSQL dialect has the same tables
-- and columns: TEXT times become timestamptz, BLOB bytea, INTEGER flags
-- boolean and "seq INTEGER PRIMARY KEY AUTOINCREMENT" bigint identity.
--
-- Times are UTC text in the fixed-width layout 2006-01-02T15:04:05.000000000Z,
-- so they sort as text and keep nanoseconds. seq columns give creation order
-- for lists and cursors; AUTOINCREMENT never reuses a deleted row's seq, so a
-- cursor cannot skip a row created after a deletion.

CREATE TABLE organizations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    api_key_hash BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
) STRICT;

-- One row per generation of a scope's storage settings. The current
-- generation is the one with replaced_at NULL; the partial unique index makes
-- a second current generation of a scope impossible.
CREATE TABLE credentials (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    scope             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    bucket            TEXT NOT NULL,
    prefix            TEXT NOT NULL,
    region            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    force_path_style  INTEGER NOT NULL CHECK (force_path_style IN (0, 1)),
    file_format       TEXT NOT NULL,
    access_key_id     TEXT NOT NULL,
    secret_ciphertext BLOB NOT NULL,
    created_at        TEXT NOT NULL,
    replaced_at       TEXT
) STRICT;

CREATE UNIQUE INDEX credentials_current_idx ON credentials (org_id, scope) WHERE replaced_at IS NULL;
CREATE INDEX credentials_org_id_seq_idx ON credentials (org_id, seq);

-- Room names are unique across organizations: they name the room's URL.
CREATE TABLE meetings (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    org_id         TEXT NOT NULL REFERENCES organizations (id),
    room_name      TEXT NOT NULL UNIQUE,
    start_date     TEXT NOT NULL,
    end_date       TEXT NOT NULL,
    recording_type TEXT NOT NULL,
    start_trigger  TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;

CREATE INDEX meetings_org_id_seq_idx ON meetings (org_id, seq);

-- A recording outlives its meeting (and the meeting's settings), so
-- meeting_id and credential_id are not foreign keys: the recording keeps the
-- room name and destination it started with.
CREATE TABLE recordings (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    meeting_id        TEXT NOT NULL,
    room_name         TEXT NOT NULL,
    state             TEXT NOT NULL,
    credential_id     TEXT NOT NULL,
    access_key_id     TEXT NOT NULL,
    part_size         INTEGER NOT NULL,
    provider          TEXT NOT NULL,
    bucket            TEXT NOT NULL,
    prefix            TEXT NOT NULL,
    region            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    force_path_style  INTEGER NOT NULL CHECK (force_path_style IN (0, 1)),
    file_format       TEXT NOT NULL,
    object_key        TEXT NOT NULL,
    upload_id         TEXT NOT NULL,
    ingest_token_hash BLOB NOT NULL,
    start_date        TEXT NOT NULL,
    end_date          TEXT,
    stop_reason       TEXT NOT NULL,
    bytes_received    INTEGER NOT NULL,
    bytes_uploaded    INTEGER NOT NULL,
    size_bytes        INTEGER,
    sha256            TEXT NOT NULL,
    last_error        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
) STRICT;

CREATE INDEX recordings_org_id_seq_idx ON recordings (org_id, seq);
CREATE INDEX recordings_org_id_state_idx ON recordings (org_id, state);
CREATE INDEX recordings_org_id_room_name_idx ON recordings (org_id, room_name);
CREATE INDEX recordings_state_idx ON recordings (state);

CREATE TABLE recording_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    time         TEXT NOT NULL,
    type         TEXT NOT NULL,
    message      TEXT NOT NULL
) STRICT;

CREATE INDEX recording_events_recording_id_seq_idx ON recording_events (recording_id, seq);

-- byte_offset, not offset: OFFSET is a reserved word in both dialects.
CREATE TABLE recording_parts (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,
    byte_offset  INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    PRIMARY KEY (recording_id, number)
) STRICT;
