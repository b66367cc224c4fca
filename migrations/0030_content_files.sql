-- migrate:up
-- Content files of a module (lib/content-files.ts): PDFs, images, audio and video that lessons link
-- to by name. The bytes are a file of the files store (stored_files: encrypted object, size, SHA-256,
-- content type decided from the bytes); this row names it within its module. Uploading a name again
-- retires the current row (retired_at, retired_by) and adds a new one: at most one current file per
-- name, old ones kept for the record. The app may read, add and retire; nothing else changes.
CREATE TABLE content_files (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id       uuid NOT NULL CONSTRAINT content_files_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  name            text NOT NULL CONSTRAINT content_files_name_check
                    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,115}\.[A-Za-z0-9]{1,5}$'),
  kind            text NOT NULL CONSTRAINT content_files_kind_check CHECK (kind IN ('pdf', 'image', 'audio', 'video')),
  stored_file_id  uuid NOT NULL CONSTRAINT content_files_stored_file_id_key UNIQUE
                    CONSTRAINT content_files_stored_file_id_fkey REFERENCES stored_files (id) ON DELETE RESTRICT,
  uploaded_by     uuid NOT NULL CONSTRAINT content_files_uploaded_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  uploaded_at     timestamptz NOT NULL DEFAULT now(),
  retired_at      timestamptz,
  retired_by      uuid CONSTRAINT content_files_retired_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT content_files_retired_check CHECK (num_nonnulls(retired_at, retired_by) IN (0, 2))
);
CREATE UNIQUE INDEX content_files_current_name_key ON content_files (module_id, name) WHERE retired_at IS NULL;

GRANT SELECT, INSERT ON content_files TO aada_app;
GRANT UPDATE (retired_at, retired_by) ON content_files TO aada_app;

-- migrate:down
DROP TABLE content_files;
