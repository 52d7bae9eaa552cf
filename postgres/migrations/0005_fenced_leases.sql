-- Fenced leases and states that only move forward (issue 11).
--
-- lease_epoch counts the claims that changed a recording's owner (or were
-- forced); every write by the owner names the epoch it holds, so a node that
-- lost a recording cannot write it any more. Rows owned before this
-- migration start at epoch 1.
ALTER TABLE recordings ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
UPDATE recordings SET lease_epoch = 1 WHERE owner_node <> '';

-- uploaded, failed and deleted are final: the only way out of uploaded or
-- failed is deleted, and nothing leaves deleted. The store's UPDATE refuses
-- more (the whole transition table); this trigger makes sure that no other
-- statement can take a recording back. It raises check_violation naming the
-- trigger as the constraint, which the store turns into a conflict.
CREATE FUNCTION recordings_final_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state IN ('uploaded', 'failed', 'deleted') AND NEW.state <> OLD.state
        AND NOT (OLD.state IN ('uploaded', 'failed') AND NEW.state = 'deleted') THEN
        RAISE EXCEPTION 'recording % cannot move from % to %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'recordings_final_state';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_final_state BEFORE UPDATE OF state ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_final_state();

-- Two recordings never write one object: the key is unique per endpoint and
-- bucket among recordings not deleted.
CREATE UNIQUE INDEX recordings_object_key_idx ON recordings (endpoint, bucket, object_key) WHERE state <> 'deleted';

-- Prune finds finished recordings by their last change.
CREATE INDEX recordings_state_updated_at_idx ON recordings (state, updated_at);
CREATE INDEX webhook_deliveries_state_created_at_idx ON webhook_deliveries (state, created_at);
