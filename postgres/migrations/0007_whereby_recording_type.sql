-- Whereby's recording.type (issue 14): "none" now means that recordings are
-- disabled in the room, and a room created without recording options records
-- into the organization's destination ("cloud"). Before this migration
-- "none" was only the default and changed nothing, so every existing room
-- keeps the behaviour it had: it may record.
UPDATE meetings SET recording_type = 'cloud' WHERE recording_type = 'none';
