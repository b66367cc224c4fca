-- migrate:up
-- Enrollment agreements (lib/agreements.ts):
-- * a template is a versioned JSON description of the agreement's sections (`schema`), from which the
--   document is rendered with the filled-in data; a version is active until retired, and one that any
--   agreement uses can never be deleted (RESTRICT, and the app holds no DELETE);
-- * the signing link is a one-time token (lib/one-time-links.ts) owned by the agreement, replacing the
--   agreement's own token columns; after signing it stays readable (status, own copy) for a while;
-- * ESIGN consent (the disclosure's version and when) is recorded on the agreement, and as an event
--   with the signer's address and user agent;
-- * the sealed PDF is a file of the files store (lib/files.ts, the `retained` shelf under WORM), with
--   the SHA-256 of the rendered agreement pages and of the sealed file;
-- * signed_document_files goes: nothing ever wrote it, and documents live in the files store.
ALTER TABLE document_templates
  ADD COLUMN schema jsonb CONSTRAINT document_templates_schema_check CHECK (schema IS NULL OR jsonb_typeof(schema) = 'object'),
  ADD COLUMN retired_at timestamptz,
  DROP CONSTRAINT document_templates_check,
  ADD CONSTRAINT document_templates_one_body CHECK (num_nonnulls(content, storage_ref, schema) = 1);

-- The reason a sent agreement was voided is free text about a person: encrypted.
ALTER TABLE signed_documents RENAME COLUMN void_reason TO void_reason_ciphertext;
ALTER TABLE signed_documents
  DROP COLUMN signing_token_hash,
  DROP COLUMN token_expires_at,
  ADD COLUMN consent_version text,
  ADD COLUMN consented_at timestamptz,
  ADD COLUMN content_sha256 bytea CONSTRAINT signed_documents_content_sha256_check CHECK (length(content_sha256) = 32),
  ADD COLUMN sealed_file_id uuid CONSTRAINT signed_documents_sealed_file_id_fkey REFERENCES stored_files (id) ON DELETE RESTRICT,
  ADD CONSTRAINT signed_documents_consent_check CHECK (num_nonnulls(consent_version, consented_at) IN (0, 2)),
  ADD CONSTRAINT signed_documents_signed_after_consent CHECK (student_signed_at IS NULL OR consented_at IS NOT NULL),
  ADD CONSTRAINT signed_documents_completed_sealed CHECK (status <> 'completed' OR sealed_file_id IS NOT NULL);
CREATE INDEX signed_documents_sealed_file_idx ON signed_documents (sealed_file_id) WHERE sealed_file_id IS NOT NULL;
CREATE INDEX signed_documents_created_idx ON signed_documents (created_at DESC, id DESC);

DROP TABLE signed_document_files;

-- The signing link: a one-time token owned by the agreement.
ALTER TABLE one_time_tokens
  ADD COLUMN signed_document_id uuid CONSTRAINT one_time_tokens_signed_document_id_fkey REFERENCES signed_documents (id) ON DELETE CASCADE;
DO $$
DECLARE owner_check text;
BEGIN
  SELECT conname INTO owner_check FROM pg_constraint
   WHERE conrelid = 'one_time_tokens'::regclass AND contype = 'c'
     AND pg_get_constraintdef(oid) LIKE '%num_nonnulls(user_id, registration_request_id)%';
  EXECUTE format('ALTER TABLE one_time_tokens DROP CONSTRAINT %I', owner_check);
END
$$;
ALTER TABLE one_time_tokens ADD CONSTRAINT one_time_tokens_one_owner
  CHECK (num_nonnulls(user_id, registration_request_id, signed_document_id) = 1);
CREATE UNIQUE INDEX one_time_tokens_signed_document_purpose_key
  ON one_time_tokens (purpose, signed_document_id) WHERE signed_document_id IS NOT NULL;

-- migrate:down
DELETE FROM one_time_tokens WHERE signed_document_id IS NOT NULL;
DROP INDEX one_time_tokens_signed_document_purpose_key;
ALTER TABLE one_time_tokens DROP CONSTRAINT one_time_tokens_one_owner;
ALTER TABLE one_time_tokens DROP COLUMN signed_document_id;
ALTER TABLE one_time_tokens ADD CHECK (num_nonnulls(user_id, registration_request_id) = 1);

CREATE TABLE signed_document_files (
  document_id   uuid NOT NULL REFERENCES signed_documents (id) ON DELETE RESTRICT,
  kind          text NOT NULL CHECK (kind IN ('unsigned', 'signed')),
  content       bytea NOT NULL,
  content_type  text NOT NULL DEFAULT 'application/pdf',
  sha256        bytea NOT NULL CHECK (length(sha256) = 32),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (document_id, kind)
);
CREATE TRIGGER signed_document_files_set_updated_at BEFORE UPDATE ON signed_document_files
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
GRANT SELECT, INSERT, UPDATE ON signed_document_files TO aada_app;

DROP INDEX signed_documents_created_idx;
DROP INDEX signed_documents_sealed_file_idx;
ALTER TABLE signed_documents
  DROP CONSTRAINT signed_documents_completed_sealed,
  DROP CONSTRAINT signed_documents_signed_after_consent,
  DROP CONSTRAINT signed_documents_consent_check,
  DROP COLUMN sealed_file_id,
  DROP COLUMN content_sha256,
  DROP COLUMN consented_at,
  DROP COLUMN consent_version,
  ADD COLUMN signing_token_hash bytea UNIQUE,
  ADD COLUMN token_expires_at timestamptz;
ALTER TABLE signed_documents RENAME COLUMN void_reason_ciphertext TO void_reason;

ALTER TABLE document_templates
  DROP CONSTRAINT document_templates_one_body,
  DROP COLUMN retired_at,
  DROP COLUMN schema,
  ADD CONSTRAINT document_templates_check CHECK (num_nonnulls(content, storage_ref) = 1);
