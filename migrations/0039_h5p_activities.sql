-- migrate:up
-- H5P activities of a module (lib/h5p.ts): a validated .h5p package, unpacked once at upload. Each
-- file of the package is a file of the files store (stored_files: encrypted object, size, SHA-256,
-- content type from its extension); h5p_activity_files names it by its path inside the package.
-- `activity_key` is the id lessons name in their `(H5P: id)` marker. Uploading a key again retires the
-- current activity (retired_at, retired_by) and adds a new one: at most one current activity per key,
-- old ones kept for the record. The app may read, add and retire; nothing else changes.
CREATE TABLE h5p_activities (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id       uuid NOT NULL CONSTRAINT h5p_activities_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  activity_key    text NOT NULL CONSTRAINT h5p_activities_activity_key_check
                    CHECK (activity_key ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
  title           text NOT NULL CONSTRAINT h5p_activities_title_check CHECK (length(title) BETWEEN 1 AND 255),
  main_library    text NOT NULL CONSTRAINT h5p_activities_main_library_check CHECK (length(main_library) BETWEEN 1 AND 255),
  h5p_json        jsonb NOT NULL,
  file_count      integer NOT NULL CONSTRAINT h5p_activities_file_count_check CHECK (file_count > 0),
  byte_size       bigint NOT NULL CONSTRAINT h5p_activities_byte_size_check CHECK (byte_size >= 0),
  uploaded_by     uuid NOT NULL CONSTRAINT h5p_activities_uploaded_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  uploaded_at     timestamptz NOT NULL DEFAULT now(),
  retired_at      timestamptz,
  retired_by      uuid CONSTRAINT h5p_activities_retired_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT h5p_activities_retired_check CHECK (num_nonnulls(retired_at, retired_by) IN (0, 2))
);
CREATE UNIQUE INDEX h5p_activities_current_key ON h5p_activities (module_id, activity_key) WHERE retired_at IS NULL;

CREATE TABLE h5p_activity_files (
  activity_id     uuid NOT NULL CONSTRAINT h5p_activity_files_activity_id_fkey REFERENCES h5p_activities (id) ON DELETE RESTRICT,
  path            text NOT NULL CONSTRAINT h5p_activity_files_path_check CHECK (length(path) BETWEEN 1 AND 255),
  stored_file_id  uuid NOT NULL CONSTRAINT h5p_activity_files_stored_file_id_key UNIQUE
                    CONSTRAINT h5p_activity_files_stored_file_id_fkey REFERENCES stored_files (id) ON DELETE RESTRICT,
  CONSTRAINT h5p_activity_files_pkey PRIMARY KEY (activity_id, path)
);

GRANT SELECT, INSERT ON h5p_activities, h5p_activity_files TO aada_app;
GRANT UPDATE (retired_at, retired_by) ON h5p_activities TO aada_app;

-- migrate:down
DROP TABLE h5p_activity_files;
DROP TABLE h5p_activities;
