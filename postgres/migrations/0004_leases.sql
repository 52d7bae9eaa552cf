-- The node that runs each unfinished recording, through a lease it renews.
ALTER TABLE recordings ADD COLUMN owner_node text NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN owner_url text NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN lease_expires_at timestamptz;

CREATE INDEX recordings_owner_node_idx ON recordings (owner_node, state);
