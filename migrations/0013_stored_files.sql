-- migrate:up
-- The files store (lib/files.ts): one row per object in Blob Storage. The object is encrypted
-- (`key_id` names the key, so keys:rotate finds what is left on an old one); the row keeps what a
-- reader needs without fetching it: size, SHA-256 of the plaintext, content type. Rows are never
-- deleted by the app: an area points at a file with a foreign key, and an object without a row is
-- an orphan the sweep removes.
CREATE TABLE stored_files (
  id            uuid PRIMARY KEY,
  purpose       text NOT NULL CONSTRAINT stored_files_purpose_check CHECK (purpose ~ '^[a-z][a-z0-9-]{0,39}$'),
  shelf         text NOT NULL CONSTRAINT stored_files_shelf_check CHECK (shelf IN ('files', 'retained')),
  object_name   text NOT NULL CONSTRAINT stored_files_object_name_key UNIQUE,
  key_id        text NOT NULL CONSTRAINT stored_files_key_id_check CHECK (key_id ~ '^[A-Za-z0-9_-]{1,32}$'),
  byte_size     bigint NOT NULL CONSTRAINT stored_files_byte_size_check CHECK (byte_size >= 0),
  sha256        bytea NOT NULL CONSTRAINT stored_files_sha256_check CHECK (length(sha256) = 32),
  content_type  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_by    uuid CONSTRAINT stored_files_created_by_fkey REFERENCES users (id) ON DELETE RESTRICT
);
CREATE INDEX stored_files_key_id_idx ON stored_files (key_id);

GRANT SELECT, INSERT ON stored_files TO aada_app;
-- keys:rotate (run as the owner) moves a row to its re-encrypted object; the app itself never does.

-- migrate:down
DROP TABLE stored_files;
