-- 0008 encrypted columns for the personal data that was stored in the clear: transcript PDFs (they print
-- the student's name and record), a learner's SCORM suspend_data and interactions (their saved answers
-- and responses), and the reason an administrator gave for revoking a credential (free text about a
-- student). Each gets a `*_ciphertext` column written by the app (AES-256-GCM, lib/crypto.ts); the
-- declaration of every column and its protection is lib/personal-data.ts.
--
-- Existing rows: SQL holds no key, so this migration cannot encrypt them. The plaintext columns stay,
-- nullable, as "legacy plaintext": the app stops writing them now and reads them only where the
-- ciphertext is NULL, and `npm run keys:rotate` (run after deploying this, as every rotation is)
-- encrypts each remaining value into its ciphertext column and sets the plaintext to NULL, in resumable
-- batches. A CHECK keeps a row from holding both. Encrypting on the first read instead would leave
-- records never read in the clear indefinitely, and make reads write. A later migration drops the
-- legacy columns once every deployment has run the command.
--
-- * transcript_documents.content_ciphertext: the PDF in the binary envelope of lib/crypto.ts
--   (`v1.<keyId>.` ‖ nonce ‖ ciphertext ‖ tag). content_length keeps the PDF's size for the JSON view,
--   which must not decrypt a document to report it.
-- * scorm_records: interactions loses its NOT NULL and its default ('[]'): new rows store NULL there.
--   The bounds of the plaintext (64,000 characters of suspend_data, 128 KiB of interactions) are the
--   API's; the CHECKs bound the ciphertexts at what those plaintexts can become.
-- * credentials: a revoked credential has exactly one of revoke_reason, revoke_reason_ciphertext.
-- * transcripts.kind: 'official' for an enrollment that was completed when the transcript was generated,
--   'unofficial' (a progress report) otherwise. NULL on older rows: their enrollment's status at the
--   time was not recorded (their PDFs all said "Official transcript"), and no guess is written.
--
-- Transactional: each ALTER rewrites nothing (nullable columns without a default); the UPDATE of
-- content_length reads every transcript document once.

-- migrate:up

ALTER TABLE transcripts
  ADD COLUMN kind text CHECK (kind IN ('official', 'unofficial'));

ALTER TABLE transcript_documents
  ADD COLUMN content_ciphertext bytea,
  ADD COLUMN content_length integer CHECK (content_length >= 0),
  ALTER COLUMN content DROP NOT NULL;

UPDATE transcript_documents SET content_length = octet_length(content);

ALTER TABLE transcript_documents
  ALTER COLUMN content_length SET NOT NULL,
  ADD CONSTRAINT transcript_documents_one_content CHECK (num_nonnulls(content, content_ciphertext) = 1);

ALTER TABLE scorm_records
  ADD COLUMN suspend_data_ciphertext text CHECK (length(suspend_data_ciphertext) <= 350000),
  ADD COLUMN interactions_ciphertext text CHECK (length(interactions_ciphertext) <= 180000),
  ALTER COLUMN interactions DROP NOT NULL,
  ALTER COLUMN interactions DROP DEFAULT,
  ADD CONSTRAINT scorm_records_one_suspend_data CHECK (num_nonnulls(suspend_data, suspend_data_ciphertext) <= 1),
  ADD CONSTRAINT scorm_records_one_interactions CHECK (num_nonnulls(interactions, interactions_ciphertext) <= 1);

ALTER TABLE credentials
  ADD COLUMN revoke_reason_ciphertext text,
  DROP CONSTRAINT credentials_check,
  ADD CONSTRAINT credentials_revoke_reason_check
    CHECK ((revoked_at IS NULL) = (num_nonnulls(revoke_reason, revoke_reason_ciphertext) = 0)
           AND num_nonnulls(revoke_reason, revoke_reason_ciphertext) <= 1);

-- migrate:down

-- Without a key SQL cannot decrypt: going back is refused while any ciphertext of these columns exists
-- (nothing stored is lost by a rollback).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM transcript_documents WHERE content_ciphertext IS NOT NULL)
     OR EXISTS (SELECT 1 FROM scorm_records
                 WHERE suspend_data_ciphertext IS NOT NULL OR interactions_ciphertext IS NOT NULL)
     OR EXISTS (SELECT 1 FROM credentials WHERE revoke_reason_ciphertext IS NOT NULL) THEN
    RAISE EXCEPTION '0008 down: encrypted transcript, SCORM or credential data exists and SQL cannot decrypt it'
      USING ERRCODE = 'object_in_use';
  END IF;
END
$$;

ALTER TABLE credentials
  DROP CONSTRAINT credentials_revoke_reason_check,
  ADD CONSTRAINT credentials_check CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL)),
  DROP COLUMN revoke_reason_ciphertext;

UPDATE scorm_records SET interactions = '[]' WHERE interactions IS NULL;

ALTER TABLE scorm_records
  DROP CONSTRAINT scorm_records_one_interactions,
  DROP CONSTRAINT scorm_records_one_suspend_data,
  ALTER COLUMN interactions SET DEFAULT '[]',
  ALTER COLUMN interactions SET NOT NULL,
  DROP COLUMN interactions_ciphertext,
  DROP COLUMN suspend_data_ciphertext;

ALTER TABLE transcript_documents
  DROP CONSTRAINT transcript_documents_one_content,
  ALTER COLUMN content SET NOT NULL,
  DROP COLUMN content_length,
  DROP COLUMN content_ciphertext;

ALTER TABLE transcripts
  DROP COLUMN kind;
