-- How each recording was received (issue 15): 'http' (the ingest API),
-- 'rtmp' or 'srt' (a live publish). Set once at start and never updated.
-- Recordings from before this migration all came in over HTTP.
ALTER TABLE recordings ADD COLUMN source TEXT NOT NULL DEFAULT 'http';
