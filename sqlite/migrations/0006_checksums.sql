-- Full-object checksums that S3 verifies (issue 12).
--
-- checksum_algorithm is the CRC the multipart upload asked for at start
-- ('' when the endpoint takes none); every part and the completion need it,
-- on whichever node continues the upload. checksum is the object's
-- full-object checksum, 'ALGORITHM:base64', once S3 completed it. Each part
-- keeps the CRC S3 verified, so that the object's checksum can be combined
-- from them at completion.
ALTER TABLE recordings ADD COLUMN checksum_algorithm TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN checksum TEXT NOT NULL DEFAULT '';
ALTER TABLE recording_parts ADD COLUMN checksum TEXT NOT NULL DEFAULT '';
