-- Key health watch (issue 13): what the last scheduled re-check of a saved
-- key or role found. failing_since is set when a check starts failing and
-- cleared when one passes: one failing spell, one credential.failing.
ALTER TABLE credentials ADD COLUMN last_checked_at TEXT;
ALTER TABLE credentials ADD COLUMN failing_since TEXT;
ALTER TABLE credentials ADD COLUMN failing_check TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN failing_code TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN failing_reason TEXT NOT NULL DEFAULT '';
