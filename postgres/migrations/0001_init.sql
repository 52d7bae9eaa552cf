-- recsink schema, PostgreSQL dialect: the same tables and columns as the
-- SQLite dialect (sqlite/migrations), with timestamptz for times (UTC,
-- microseconds), bytea for blobs, boolean for flags and bigint identity
-- columns for seq.
--
-- seq columns give creation order for lists and cursors; a sequence never
-- hands out a value twice, so a cursor cannot skip a row created after a
-- deletion.

CREATE TABLE organizations (
    id           text PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    api_key_hash bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL
);

-- One row per generation of a scope's storage settings. The current
-- generation is the one with replaced_at NULL; the partial unique index makes
-- a second current generation of a scope impossible.
CREATE TABLE credentials (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    org_id            text NOT NULL REFERENCES organizations (id),
    scope             text NOT NULL,
    provider          text NOT NULL,
    bucket            text NOT NULL,
    prefix            text NOT NULL,
    region            text NOT NULL,
    endpoint          text NOT NULL,
    force_path_style  boolean NOT NULL,
    file_format       text NOT NULL,
    access_key_id     text NOT NULL,
    secret_ciphertext bytea NOT NULL,
    created_at        timestamptz NOT NULL,
    replaced_at       timestamptz
);

CREATE UNIQUE INDEX credentials_current_idx ON credentials (org_id, scope) WHERE replaced_at IS NULL;
CREATE INDEX credentials_org_id_seq_idx ON credentials (org_id, seq);

-- Room names are unique across organizations: they name the room's URL.
CREATE TABLE meetings (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             text NOT NULL UNIQUE,
    org_id         text NOT NULL REFERENCES organizations (id),
    room_name      text NOT NULL UNIQUE,
    start_date     timestamptz NOT NULL,
    end_date       timestamptz NOT NULL,
    recording_type text NOT NULL,
    start_trigger  text NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE INDEX meetings_org_id_seq_idx ON meetings (org_id, seq);

-- A recording outlives its meeting (and the meeting's settings), so
-- meeting_id and credential_id are not foreign keys: the recording keeps the
-- room name and destination it started with.
CREATE TABLE recordings (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                text NOT NULL UNIQUE,
    org_id            text NOT NULL REFERENCES organizations (id),
    meeting_id        text NOT NULL,
    room_name         text NOT NULL,
    state             text NOT NULL,
    credential_id     text NOT NULL,
    access_key_id     text NOT NULL,
    part_size         bigint NOT NULL,
    provider          text NOT NULL,
    bucket            text NOT NULL,
    prefix            text NOT NULL,
    region            text NOT NULL,
    endpoint          text NOT NULL,
    force_path_style  boolean NOT NULL,
    file_format       text NOT NULL,
    object_key        text NOT NULL,
    upload_id         text NOT NULL,
    ingest_token_hash bytea NOT NULL,
    start_date        timestamptz NOT NULL,
    end_date          timestamptz,
    stop_reason       text NOT NULL,
    bytes_received    bigint NOT NULL,
    bytes_uploaded    bigint NOT NULL,
    size_bytes        bigint,
    sha256            text NOT NULL,
    last_error        text NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE INDEX recordings_org_id_seq_idx ON recordings (org_id, seq);
CREATE INDEX recordings_org_id_state_idx ON recordings (org_id, state);
CREATE INDEX recordings_org_id_room_name_idx ON recordings (org_id, room_name);
CREATE INDEX recordings_state_idx ON recordings (state);

CREATE TABLE recording_events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id text NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    time         timestamptz NOT NULL,
    type         text NOT NULL,
    message      text NOT NULL
);

CREATE INDEX recording_events_recording_id_seq_idx ON recording_events (recording_id, seq);

-- byte_offset, not offset: OFFSET is a reserved word in both dialects.
CREATE TABLE recording_parts (
    recording_id text NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    number       integer NOT NULL,
    byte_offset  bigint NOT NULL,
    size         bigint NOT NULL,
    etag         text NOT NULL,
    PRIMARY KEY (recording_id, number)
);
