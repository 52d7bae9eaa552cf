-- Stream keys (issue 15): a room's key for live publishing (RTMP, SRT), one
-- per meeting, stored as its SHA-256 like API keys. It goes with its meeting.
CREATE TABLE stream_keys (
    meeting_id      TEXT NOT NULL PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    key_hash        BLOB NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    last_publish_at TEXT
) STRICT;
