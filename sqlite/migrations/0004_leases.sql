-- The node that runs each unfinished recording, through a lease it renews.
ALTER TABLE recordings ADD COLUMN owner_node TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN owner_url TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN lease_expires_at TEXT;

CREATE INDEX recordings_owner_node_idx ON recordings (owner_node, state);
