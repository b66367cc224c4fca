-- 0004 academic records: transcripts keep what they certified, credentials can be revoked and reissued,
-- and the bound on sections viewed is the schema's as well as the API's.
--
-- * transcripts.lines: the module rows as they stood when the transcript was generated (position,
--   code, title, clockHours, status, score: the shape the API returns), so reading a transcript shows
--   what it certified, not today's progress. NULL only on rows generated before this migration (their
--   PDF holds the lines); no backfill, since today's progress is not what those transcripts said.
-- * credentials.revoked_by: who revoked (RESTRICT like every actor column of a regulated row; NULL on
--   credentials revoked before this migration, whose revoker is in the audit trail).
-- * One LIVE credential per student and programme (a partial unique index) instead of one ever, so a
--   credential revoked in error can be reissued while the revoked one stays on record. Dropping the
--   old constraint also drops the only index led by user_id, which a student's own listing needs:
--   idx_credentials_user_issued replaces it, in the listing's order.
-- * idx_credentials_issued: the keyset of the credential listing, (issued_at, id), read backwards.
-- * module_progress.sections_viewed: at most 200 entries (the API's limit), so no writer can grow a
--   row without bound.
--
-- Transactional: the indexes are built with a plain CREATE INDEX, which blocks writes to credentials
-- for the duration of the build. The table holds one row per graduate (thousands, not millions), so
-- that is milliseconds, and it keeps the file atomic. Adding the CHECK scans module_progress once.
-- The existing table-level grants cover the new columns; no GRANT is needed.

-- migrate:up

ALTER TABLE transcripts
  ADD COLUMN lines jsonb CHECK (lines IS NULL OR jsonb_typeof(lines) = 'array');

ALTER TABLE credentials
  ADD COLUMN revoked_by uuid REFERENCES users (id) ON DELETE RESTRICT,
  ADD CONSTRAINT credentials_revoked_by_check CHECK (revoked_by IS NULL OR revoked_at IS NOT NULL),
  DROP CONSTRAINT credentials_user_id_program_id_key;

CREATE UNIQUE INDEX credentials_one_live_per_program ON credentials (user_id, program_id) WHERE revoked_at IS NULL;
CREATE INDEX idx_credentials_issued ON credentials (issued_at, id);
CREATE INDEX idx_credentials_user_issued ON credentials (user_id, issued_at, id);

ALTER TABLE module_progress
  DROP CONSTRAINT module_progress_sections_viewed_check,
  ADD CONSTRAINT module_progress_sections_viewed_check
    CHECK (jsonb_typeof(sections_viewed) = 'array' AND jsonb_array_length(sections_viewed) <= 200);

-- migrate:down

-- Fails (naming the duplicated key) once a student holds a revoked and a reissued credential for the
-- same programme: the old schema cannot represent that, and no record is deleted to make it fit.

ALTER TABLE module_progress
  DROP CONSTRAINT module_progress_sections_viewed_check,
  ADD CONSTRAINT module_progress_sections_viewed_check CHECK (jsonb_typeof(sections_viewed) = 'array');

DROP INDEX idx_credentials_user_issued;
DROP INDEX idx_credentials_issued;
DROP INDEX credentials_one_live_per_program;

ALTER TABLE credentials
  ADD CONSTRAINT credentials_user_id_program_id_key UNIQUE (user_id, program_id),
  DROP CONSTRAINT credentials_revoked_by_check,
  DROP COLUMN revoked_by;

ALTER TABLE transcripts
  DROP COLUMN lines;
