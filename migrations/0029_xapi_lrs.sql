-- migrate:up
-- The xAPI learning record store (lib/xapi-*.ts, docs/xapi.md):
-- * lrs_credentials: keys and hashed secrets that content and tools present over HTTP Basic, with scopes;
-- * xapi_statements replaces the table of 0001, which nothing ever wrote: a statement is stored encrypted
--   (statement_ciphertext), keyed by a time-ordered uuid (`key`, UUIDv7: its first 48 bits are the stored
--   millisecond), so since/until/ascending and every `more` link are ranges and keyset pages of one index;
-- * xapi_statement_index: one row per (filter kind, keyed blind index of the value, statement). Agents,
--   activities, verbs and registrations are found through it by an index scan, and no agent is readable
--   there. A statement whose object is a StatementRef also gets the rows of the statement it targets
--   (recursively), which is how the spec's filter rule for targeting statements is served;
-- * xapi_attachments: attachment bytes live in the files store (stored_files), one per SHA-2;
-- * xapi_activities: the LRS's canonical definition of each activity (the Activities resource);
-- * xapi_documents: State, Activity Profile and Agent Profile documents, encrypted, found by blind index.
DROP TABLE xapi_statements;

CREATE TABLE lrs_credentials (
  id            uuid PRIMARY KEY,
  key           text NOT NULL CONSTRAINT lrs_credentials_key_key UNIQUE
                CONSTRAINT lrs_credentials_key_check CHECK (key ~ '^[A-Za-z0-9_-]{16,64}$'),
  -- SHA-256 of a 256-bit random secret: a secret that cannot be guessed needs no slow hash (see lib/xapi-credentials.ts).
  secret_sha256 bytea NOT NULL CONSTRAINT lrs_credentials_secret_sha256_check CHECK (length(secret_sha256) = 32),
  label         text NOT NULL CONSTRAINT lrs_credentials_label_check CHECK (length(label) BETWEEN 1 AND 200),
  scopes        text[] NOT NULL CONSTRAINT lrs_credentials_scopes_check CHECK (
                  cardinality(scopes) >= 1 AND scopes <@ ARRAY['all', 'all/read', 'statements/read', 'statements/read/mine',
                  'statements/write', 'state', 'activities_profile', 'agents_profile']::text[]),
  created_by    uuid NOT NULL CONSTRAINT lrs_credentials_created_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz,
  revoked_by    uuid CONSTRAINT lrs_credentials_revoked_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT lrs_credentials_revoked_check CHECK (num_nonnulls(revoked_at, revoked_by) IN (0, 2))
);
CREATE INDEX lrs_credentials_created_idx ON lrs_credentials (created_at DESC, id DESC);
CREATE INDEX lrs_credentials_created_by_idx ON lrs_credentials (created_by);
CREATE INDEX lrs_credentials_revoked_by_idx ON lrs_credentials (revoked_by) WHERE revoked_by IS NOT NULL;

CREATE TABLE xapi_statements (
  key                  uuid PRIMARY KEY,
  id                   uuid NOT NULL CONSTRAINT xapi_statements_id_key UNIQUE,
  stored               timestamptz NOT NULL,
  -- Blind index of the authority agent: statements/read/mine reads what its own credential stored.
  authority_hash       bytea NOT NULL CONSTRAINT xapi_statements_authority_hash_check CHECK (length(authority_hash) = 16),
  -- SHA-256 of the statement as received, canonicalised: a re-sent id with other content is a 409.
  content_sha256       bytea NOT NULL CONSTRAINT xapi_statements_content_sha256_check CHECK (length(content_sha256) = 32),
  statement_ciphertext text NOT NULL,
  -- The object's StatementRef, and for a voiding statement the statement it voids.
  ref_target           uuid,
  voids                uuid,
  voided               boolean NOT NULL DEFAULT false,
  attachment_sha2      text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX xapi_statements_ref_target_idx ON xapi_statements (ref_target) WHERE ref_target IS NOT NULL;
CREATE INDEX xapi_statements_voids_idx ON xapi_statements (voids) WHERE voids IS NOT NULL;
CREATE INDEX xapi_statements_authority_idx ON xapi_statements (authority_hash, key);

CREATE TABLE xapi_statement_index (
  -- 1 actor/object agent, 2 related agent, 3 object activity, 4 related activity, 5 registration, 6 verb
  kind  smallint NOT NULL CONSTRAINT xapi_statement_index_kind_check CHECK (kind BETWEEN 1 AND 6),
  hash  bytea NOT NULL CONSTRAINT xapi_statement_index_hash_check CHECK (length(hash) = 16),
  key   uuid NOT NULL CONSTRAINT xapi_statement_index_key_fkey REFERENCES xapi_statements (key) ON DELETE RESTRICT,
  PRIMARY KEY (kind, hash, key)
);
CREATE INDEX xapi_statement_index_key_idx ON xapi_statement_index (key);

CREATE TABLE xapi_attachments (
  sha2          text PRIMARY KEY CONSTRAINT xapi_attachments_sha2_check CHECK (sha2 ~ '^[0-9a-f]{56,128}$'),
  file_id       uuid NOT NULL CONSTRAINT xapi_attachments_file_id_fkey REFERENCES stored_files (id) ON DELETE RESTRICT,
  content_type  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX xapi_attachments_file_idx ON xapi_attachments (file_id);

CREATE TABLE xapi_activities (
  id_hash     bytea PRIMARY KEY CONSTRAINT xapi_activities_id_hash_check CHECK (length(id_hash) = 16),
  activity_id text NOT NULL,
  definition  jsonb CONSTRAINT xapi_activities_definition_check CHECK (definition IS NULL OR jsonb_typeof(definition) = 'object'),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE xapi_documents (
  -- Blind index of (resource, activity, agent, registration, document id): one document.
  key_hash       bytea PRIMARY KEY CONSTRAINT xapi_documents_key_hash_check CHECK (length(key_hash) = 16),
  -- Blind index of (resource, activity, agent, registration): the set a list or a DELETE of all reads.
  set_hash       bytea NOT NULL CONSTRAINT xapi_documents_set_hash_check CHECK (length(set_hash) = 16),
  resource       text NOT NULL CONSTRAINT xapi_documents_resource_check CHECK (resource IN ('state', 'activity_profile', 'agent_profile')),
  document_id_ciphertext text NOT NULL,
  content_ciphertext bytea NOT NULL,
  content_type   text NOT NULL,
  etag           text NOT NULL CONSTRAINT xapi_documents_etag_check CHECK (etag ~ '^[0-9a-f]{40}$'),
  updated        timestamptz NOT NULL
);
CREATE INDEX xapi_documents_set_idx ON xapi_documents (set_hash, updated);

GRANT SELECT, INSERT ON lrs_credentials, xapi_statements, xapi_statement_index, xapi_attachments TO aada_app;
GRANT UPDATE (revoked_at, revoked_by) ON lrs_credentials TO aada_app;
-- Voiding is the only change a stored statement ever sees.
GRANT UPDATE (voided) ON xapi_statements TO aada_app;
GRANT SELECT, INSERT, UPDATE ON xapi_activities TO aada_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON xapi_documents TO aada_app;

-- migrate:down
DROP TABLE xapi_documents, xapi_activities, xapi_attachments, xapi_statement_index, xapi_statements, lrs_credentials;

CREATE TABLE xapi_statements (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  actor          jsonb NOT NULL CHECK (jsonb_typeof(actor) = 'object'),
  verb_id        text NOT NULL,
  object         jsonb NOT NULL,
  result         jsonb,
  context        jsonb,
  statement      jsonb NOT NULL CHECK (jsonb_typeof(statement) = 'object'),
  timestamp      timestamptz NOT NULL,
  stored         timestamptz NOT NULL DEFAULT now(),
  actor_user_id  uuid REFERENCES users (id) ON DELETE RESTRICT,
  voided         boolean NOT NULL DEFAULT false
);
CREATE INDEX idx_xapi_statements_timestamp ON xapi_statements (timestamp);
CREATE INDEX idx_xapi_statements_actor_user ON xapi_statements (actor_user_id, timestamp) WHERE actor_user_id IS NOT NULL;
CREATE INDEX idx_xapi_statements_actor_mbox ON xapi_statements ((actor ->> 'mbox'), timestamp) WHERE (actor ->> 'mbox') IS NOT NULL;
GRANT SELECT, INSERT, UPDATE ON xapi_statements TO aada_app;
