-- 0001 core schema: the system of record of the Atlanta Academy of Dental Assisting.
--
-- Fixes of the original data model (reference/original-system.md §6 items 17, 31-34):
-- * one schema (public), one migration chain that builds a fresh database (no disabled migrations);
-- * uuid keys, timestamptz everywhere, jsonb for JSON;
-- * deliberate ON DELETE on every foreign key. Regulated records (enrollments, progress, attendance,
--   skills, externships, complaints, credentials, transcripts, withdrawals, refunds, ledger, agreements,
--   signatures, document events, audit) are never removed by a cascade: their references to users,
--   programs, modules and enrollments are ON DELETE RESTRICT, so a user or program with history cannot be
--   hard-deleted at all (deactivate / retire it instead). Actor columns ("who did it": recorded_by,
--   approved_by, ...) on regulated rows are RESTRICT for the same reason: who acted must survive.
--   Only dependent ephemera cascade: refresh_tokens, user_roles, instructor_assignments.
-- * CHECK constraints for every enum-like status and every amount, percentage and hour count, and for
--   the state rules the old code enforced only in Python (e.g. an approved skill needs an evaluator);
-- * the missing unique constraints (module_progress, scorm_records, credentials, document signatures);
-- * PII/PHI columns hold application-side ciphertext (AES-256-GCM, "v1:<keyId>:<base64>"); lookups use
--   keyed HMAC blind indexes (bytea). The schema stores the text; it never sees a key or a plaintext.
--
-- Secondary indexes live in 0002 (built CONCURRENTLY); this file creates only the indexes implied by
-- primary keys, unique constraints and partial unique indexes.
--
-- Database roles: the application never connects as the owner of these tables. It logs in as a role
-- that is a member of the NOLOGIN group role aada_app, which gets only the privileges granted at the end
-- of this file. Later migrations grant explicitly on the tables they create (no default privileges:
-- a forgotten grant fails closed, and test/migrations.test.ts checks every table is covered).

-- migrate:up

-- ---------------------------------------------------------------------------------------------------
-- Shared trigger functions
-- ---------------------------------------------------------------------------------------------------

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Identity and access
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE users (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email_ciphertext       text NOT NULL,
  -- HMAC of the normalized email, computed by the app: login and uniqueness without decrypting.
  email_blind_index      bytea NOT NULL UNIQUE,
  first_name_ciphertext  text NOT NULL,
  last_name_ciphertext   text NOT NULL,
  -- HMAC tokens of normalized name prefixes (GIN-indexed in 0002) for prefix search without decrypting.
  -- There is deliberately no plaintext-derived sort key: it would leak the names' order and initials.
  -- Sorting by last name is done by the app after decrypting one bounded page.
  name_search_tokens     bytea[] NOT NULL DEFAULT '{}',
  password_hash          text,  -- NULL until the account is activated
  status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'inactive', 'locked', 'pending')),
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  deactivated_at         timestamptz,
  -- RESTRICT: an administrator who deactivated someone is part of that record.
  deactivated_by         uuid REFERENCES users (id) ON DELETE RESTRICT
);

CREATE TABLE roles (
  name         text PRIMARY KEY CHECK (name ~ '^[a-z_]+$'),
  description  text NOT NULL
);

INSERT INTO roles (name, description) VALUES
  ('admin',                'Full administration of the school system'),
  ('staff',                'School staff: students, enrollments and records'),
  ('instructor',           'Teaches programs: progress, attendance and skills of assigned students'),
  ('registrar',            'Enrollments, agreements, transcripts and credentials'),
  ('finance',              'Ledger, payments, withdrawals and refunds'),
  ('student',              'An enrolled or applying student: own records only'),
  ('admissions_counselor', 'Admissions: leads and enrollment agreements'),
  ('admissions_manager',   'Admissions management: counselors, leads and agreements');

CREATE TABLE user_roles (
  -- CASCADE: a role grant is meaningless without its user (the audit log keeps the history of grants).
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- RESTRICT: a role still granted to someone cannot be removed from the catalogue.
  role_name   text NOT NULL REFERENCES roles (name) ON UPDATE CASCADE ON DELETE RESTRICT,
  granted_at  timestamptz NOT NULL DEFAULT now(),
  -- SET NULL: ephemeral row; the grantor's deletion must not block nor remove it.
  granted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
  PRIMARY KEY (user_id, role_name)
);

CREATE TABLE refresh_tokens (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- CASCADE: sessions die with their user.
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- Every token issued by rotation from one login shares the family; reuse of a rotated token
  -- revokes the whole family.
  family_id      uuid NOT NULL,
  token_hash     bytea NOT NULL UNIQUE,  -- SHA-256 of the random token; the token itself is never stored
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  revoked_at     timestamptz,
  revoke_reason  text CHECK (revoke_reason IN ('rotated', 'logout', 'logout_all', 'reuse_detected',
                                               'password_changed', 'user_deactivated', 'roles_changed',
                                               'admin_revoked')),
  -- SET NULL: pruning an old token must not fail because its successor still points at it.
  replaced_by    uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
  client_ip      inet,
  user_agent     text,
  CHECK (expires_at > created_at),
  CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);

-- Login attempts are keyed by the blind index of the submitted email (not by user: unknown emails are
-- throttled the same way, and no user FK means nothing to cascade). Pruned by age (DELETE granted).
CREATE TABLE login_attempts (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_key   bytea NOT NULL,
  source_ip     inet,
  attempted_at  timestamptz NOT NULL DEFAULT now(),
  success       boolean NOT NULL
);

-- Fixed-window counters shared by every instance (per-source throttling; replaces the in-memory limiter).
CREATE TABLE rate_limit_buckets (
  key           text PRIMARY KEY,
  window_start  timestamptz NOT NULL,
  count         integer NOT NULL DEFAULT 0 CHECK (count >= 0)
);

CREATE TABLE registration_requests (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email_ciphertext   text NOT NULL,
  email_blind_index  bytea NOT NULL,
  token_hash         bytea NOT NULL UNIQUE,
  status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'verified', 'completed', 'expired')),
  expires_at         timestamptz NOT NULL,
  verified_at        timestamptz,
  completed_at       timestamptz,
  request_ip         inet,
  user_agent         text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (status NOT IN ('verified', 'completed') OR verified_at IS NOT NULL),
  CHECK (status <> 'completed' OR completed_at IS NOT NULL)
);

-- Outgoing email/SMS, written in the same transaction as the change that causes it and sent by a worker,
-- so no request waits on a mail provider and no message is lost or sent for a rolled-back change.
CREATE TABLE outbox_messages (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind                  text NOT NULL CHECK (kind ~ '^[a-z_]+$'),
  recipient_ciphertext  text NOT NULL,
  subject               text,
  body_ciphertext       text NOT NULL,  -- bodies carry signing/verification links: ciphertext
  status                text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
  attempts              integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at       timestamptz NOT NULL DEFAULT now(),
  last_error            text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  sent_at               timestamptz,
  CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);

-- ---------------------------------------------------------------------------------------------------
-- Academic structure
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE programs (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code               text NOT NULL UNIQUE CHECK (btrim(code) <> ''),
  name               text NOT NULL CHECK (btrim(name) <> ''),
  credential_level   text NOT NULL CHECK (btrim(credential_level) <> ''),  -- e.g. 'certificate' (a label)
  total_clock_hours  integer NOT NULL CHECK (total_clock_hours >= 0),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
  description        text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE modules (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- RESTRICT: a program is retired, never deleted with its modules (progress and attendance point here).
  program_id          uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
  code                text NOT NULL CHECK (btrim(code) <> ''),
  title               text NOT NULL CHECK (btrim(title) <> ''),
  description         text,
  delivery_type       text NOT NULL CHECK (delivery_type IN ('online', 'hybrid', 'in_person')),
  clock_hours         integer NOT NULL CHECK (clock_hours >= 0),
  requires_in_person  boolean NOT NULL DEFAULT false,
  position            integer NOT NULL CHECK (position >= 1),
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT modules_program_id_code_key UNIQUE (program_id, code),
  -- Deferred so a reorder can swap positions inside one transaction. Its index also serves
  -- "modules of a program in order" and the program_id foreign key (see 0002).
  CONSTRAINT modules_program_id_position_key UNIQUE (program_id, position) DEFERRABLE INITIALLY DEFERRED
);

-- Teaching assignments: an instructor sees the students of the programs they teach.
CREATE TABLE instructor_assignments (
  -- CASCADE (both): an assignment is meaningless without its instructor or program.
  instructor_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  program_id     uuid NOT NULL REFERENCES programs (id) ON DELETE CASCADE,
  assigned_at    timestamptz NOT NULL DEFAULT now(),
  assigned_by    uuid REFERENCES users (id) ON DELETE SET NULL,
  PRIMARY KEY (instructor_id, program_id)
);

CREATE TABLE enrollments (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- RESTRICT: enrollment records are kept (GNPEC/FERPA); a user with enrollments is never deleted.
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id         uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
  start_date         date NOT NULL,
  expected_end_date  date CHECK (expected_end_date >= start_date),
  status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('pending', 'active', 'on_hold', 'completed', 'withdrawn', 'cancelled')),
  status_changed_at  timestamptz NOT NULL DEFAULT now(),
  status_changed_by  uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- At most one open enrollment per student and program (closed ones are history and may repeat).
CREATE UNIQUE INDEX enrollments_one_open_per_program
  ON enrollments (user_id, program_id)
  WHERE status IN ('pending', 'active', 'on_hold');

CREATE TABLE module_progress (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- RESTRICT: progress is the basis of transcripts, credentials and refund percentages.
  enrollment_id         uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  module_id             uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  status                text NOT NULL DEFAULT 'not_started'
                          CHECK (status IN ('not_started', 'incomplete', 'completed', 'passed', 'failed')),
  score                 integer CHECK (score BETWEEN 0 AND 100),
  progress_pct          integer NOT NULL DEFAULT 0 CHECK (progress_pct BETWEEN 0 AND 100),
  last_scroll_position  integer NOT NULL DEFAULT 0 CHECK (last_scroll_position >= 0),
  active_time_seconds   bigint NOT NULL DEFAULT 0 CHECK (active_time_seconds >= 0),
  sections_viewed       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sections_viewed) = 'array'),
  last_accessed_at      timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  -- One row per enrollment and module: upserts instead of the old racy get-or-create.
  CONSTRAINT module_progress_enrollment_id_module_id_key UNIQUE (enrollment_id, module_id)
);

-- SCORM run-time snapshot per learner and module (resume data; part of the learning record).
CREATE TABLE scorm_records (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id      uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  lesson_status  text NOT NULL DEFAULT 'not attempted'
                   CHECK (lesson_status IN ('passed', 'completed', 'failed', 'incomplete', 'browsed',
                                            'not attempted', 'unknown')),
  score_scaled   numeric(4,3) CHECK (score_scaled BETWEEN -1 AND 1),
  score_raw      numeric(6,2),
  session_time   text,  -- as reported by the SCO (SCORM 1.2 HHHH:MM:SS or ISO 8601 duration)
  suspend_data   text CHECK (length(suspend_data) <= 64000),  -- SCORM 2004 SPM
  interactions   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(interactions) = 'array'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT scorm_records_user_id_module_id_key UNIQUE (user_id, module_id)
);

-- xAPI statements as received (the full statement) plus the columns the LRS filters on.
CREATE TABLE xapi_statements (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- the statement id
  actor          jsonb NOT NULL CHECK (jsonb_typeof(actor) = 'object'),
  verb_id        text NOT NULL,
  object         jsonb NOT NULL,
  result         jsonb,
  context        jsonb,
  statement      jsonb NOT NULL CHECK (jsonb_typeof(statement) = 'object'),
  timestamp      timestamptz NOT NULL,
  stored         timestamptz NOT NULL DEFAULT now(),
  -- The learner when the actor is one of our users. RESTRICT: learning records outlive nobody.
  actor_user_id  uuid REFERENCES users (id) ON DELETE RESTRICT,
  voided         boolean NOT NULL DEFAULT false
);

-- ---------------------------------------------------------------------------------------------------
-- Audit: one row per request that reads or changes PII/PHI (and per security event)
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE audit_log (
  id            bigint GENERATED ALWAYS AS IDENTITY,
  occurred_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  request_id    text,
  -- No foreign key: the audit trail must outlive its users and an audit write must never be blocked.
  user_id       uuid,
  roles         text[] NOT NULL DEFAULT '{}',
  method        text NOT NULL CHECK (method ~ '^[A-Z]+$'),
  route         text NOT NULL,  -- the route TEMPLATE (students/{id}), never the raw URL or query string
  resource_ids  jsonb CHECK (resource_ids IS NULL OR jsonb_typeof(resource_ids) = 'object'),  -- path parameters
  status        integer NOT NULL CHECK (status BETWEEN 100 AND 599),
  duration_ms   integer CHECK (duration_ms >= 0),
  client_ip     inet,
  user_agent    text,
  phi           boolean NOT NULL DEFAULT false,
  event         text CHECK (event ~ '^[a-z_]+$'),  -- e.g. 'refresh_token_reuse'
  PRIMARY KEY (id)
  -- No email or other PII column: who is identified by user_id only.
);

-- Append-only even for the table owner: corrections are new rows, never edits.
CREATE FUNCTION audit_log_reject_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: UPDATE is not allowed'
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_reject_update();

-- The only way the application removes audit rows: rows older than `older_than` (at least 90 days),
-- except PHI-access rows younger than six years (HIPAA documentation retention, 45 CFR 164.316).
-- SECURITY DEFINER so aada_app needs no DELETE on audit_log; search_path pinned (pg_temp last, so a
-- temporary table cannot shadow audit_log) and the table name qualified.
CREATE FUNCTION prune_audit_log(older_than interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  removed bigint;
BEGIN
  IF older_than IS NULL OR older_than < interval '90 days' THEN
    RAISE EXCEPTION 'prune_audit_log: older_than must be at least 90 days (got %)', older_than
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  DELETE FROM public.audit_log
   WHERE occurred_at < now() - older_than
     AND (NOT phi OR occurred_at < now() - interval '6 years');
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Compliance records (GNPEC / accreditation). None of them is ever removed by a cascade.
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE attendance_records (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id     uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  session_type  text NOT NULL CHECK (session_type IN ('live', 'lab', 'externship')),
  session_ref   text,  -- Zoom meeting id, lab code, ...
  started_at    timestamptz NOT NULL,
  ended_at      timestamptz NOT NULL,
  recorded_by   uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  -- A wrong record is voided (who, when, why), never deleted or silently edited.
  voided_at     timestamptz,
  voided_by     uuid REFERENCES users (id) ON DELETE RESTRICT,
  void_reason   text,
  CHECK (ended_at > started_at),
  CHECK ((voided_at IS NULL) = (void_reason IS NULL)),
  CHECK ((voided_at IS NULL) = (voided_by IS NULL))
);

CREATE TABLE skills_checkoffs (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id          uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  skill_code         text NOT NULL CHECK (btrim(skill_code) <> ''),  -- e.g. PPE_DON_DOFF
  status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'in_review', 'approved', 'rejected')),
  evaluator_user_id  uuid REFERENCES users (id) ON DELETE RESTRICT,
  evaluator_name     text,
  evaluator_license  text,
  evidence_url       text,
  signed_at          timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  -- A decision needs a licensed evaluator and a signature time.
  CHECK (status NOT IN ('approved', 'rejected')
         OR (evaluator_name IS NOT NULL AND evaluator_license IS NOT NULL AND signed_at IS NOT NULL))
);

CREATE TABLE externships (
  id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  site_name                     text NOT NULL CHECK (btrim(site_name) <> ''),
  site_address                  text,
  -- The supervisor's contact is personal data of a third party: ciphertext.
  supervisor_name_ciphertext    text,
  supervisor_email_ciphertext   text,
  supervisor_phone_ciphertext   text,
  total_hours                   numeric(7,2) NOT NULL DEFAULT 0 CHECK (total_hours >= 0),
  verified                      boolean NOT NULL DEFAULT false,
  verification_doc_url          text,
  verified_at                   timestamptz,
  verified_by                   uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  updated_at                    timestamptz NOT NULL DEFAULT now(),
  CHECK (NOT verified OR (verification_doc_url IS NOT NULL AND verified_at IS NOT NULL))
);

CREATE TABLE complaints (
  id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- NULL for a complaint from someone who is not a user. RESTRICT: complaints are kept (GNPEC).
  user_id                      uuid REFERENCES users (id) ON DELETE RESTRICT,
  submitted_at                 timestamptz NOT NULL DEFAULT now(),
  category                     text,
  details_ciphertext           text NOT NULL,  -- may describe health matters: ciphertext
  status                       text NOT NULL DEFAULT 'open'
                                 CHECK (status IN ('open', 'in_review', 'resolved', 'appealed')),
  resolution_notes_ciphertext  text,
  resolution_at                timestamptz,
  resolved_by                  uuid REFERENCES users (id) ON DELETE RESTRICT,
  appealed_at                  timestamptz,
  appeal_notes_ciphertext      text,
  created_at                   timestamptz NOT NULL DEFAULT now(),
  updated_at                   timestamptz NOT NULL DEFAULT now(),
  -- Resolved needs notes and a date; an appeal is only possible after a resolution.
  CHECK (status NOT IN ('resolved', 'appealed')
         OR (resolution_notes_ciphertext IS NOT NULL AND resolution_at IS NOT NULL)),
  CHECK (status <> 'appealed' OR appealed_at IS NOT NULL)
);

CREATE TABLE credentials (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id       uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
  credential_type  text NOT NULL CHECK (btrim(credential_type) <> ''),
  issued_at        timestamptz NOT NULL DEFAULT now(),
  cert_serial      text NOT NULL UNIQUE,
  issued_by        uuid REFERENCES users (id) ON DELETE RESTRICT,
  revoked_at       timestamptz,
  revoke_reason    text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credentials_user_id_program_id_key UNIQUE (user_id, program_id),
  CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);

-- A transcript is a snapshot: regenerating makes a new row.
CREATE TABLE transcripts (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id    uuid NOT NULL REFERENCES programs (id) ON DELETE RESTRICT,
  gpa           numeric(3,2) CHECK (gpa BETWEEN 0 AND 4),
  generated_at  timestamptz NOT NULL DEFAULT now(),
  generated_by  uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Instances are ephemeral, so generated PDFs live in the database (kept apart from the row so that
-- listing transcripts never reads the documents).
CREATE TABLE transcript_documents (
  transcript_id  uuid PRIMARY KEY REFERENCES transcripts (id) ON DELETE RESTRICT,
  content        bytea NOT NULL,
  content_type   text NOT NULL DEFAULT 'application/pdf' CHECK (content_type ~ '^[a-z]+/[a-z0-9.+-]+$'),
  sha256         bytea NOT NULL CHECK (length(sha256) = 32),
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE withdrawals (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  enrollment_id               uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  requested_at                timestamptz NOT NULL DEFAULT now(),
  reason_ciphertext           text,  -- students often give medical or family reasons: ciphertext
  processed_at                timestamptz,
  processed_by                uuid REFERENCES users (id) ON DELETE RESTRICT,
  progress_pct_at_withdrawal  integer CHECK (progress_pct_at_withdrawal BETWEEN 0 AND 100),
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  CHECK (processed_by IS NULL OR processed_at IS NOT NULL)
);

-- The financial ledger: the only money storage (the old "payments" are ledger lines).
-- Amounts are positive cents; the sign is implied by entry_type (charges: tuition, fee; credits:
-- payment, refund; adjustment as described). Corrections are voids plus new entries, never edits
-- (enforced below by a trigger and by the column-level UPDATE grant).
CREATE TABLE ledger_entries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id       uuid REFERENCES programs (id) ON DELETE RESTRICT,
  enrollment_id    uuid REFERENCES enrollments (id) ON DELETE RESTRICT,
  entry_type       text NOT NULL CHECK (entry_type IN ('tuition', 'fee', 'payment', 'refund', 'adjustment')),
  amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
  description      text,
  -- Client-supplied key: a retried "record payment" posts once.
  idempotency_key  text UNIQUE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  created_by       uuid REFERENCES users (id) ON DELETE RESTRICT,
  voided_at        timestamptz,
  voided_by        uuid REFERENCES users (id) ON DELETE RESTRICT,
  void_reason      text,
  CHECK ((voided_at IS NULL) = (void_reason IS NULL)),
  CHECK ((voided_at IS NULL) = (voided_by IS NULL))
);

CREATE FUNCTION ledger_entries_void_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.voided_at IS NOT NULL THEN
    RAISE EXCEPTION 'ledger entry % is voided and cannot change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF (NEW.id, NEW.user_id, NEW.program_id, NEW.enrollment_id, NEW.entry_type, NEW.amount_cents,
      NEW.description, NEW.idempotency_key, NEW.created_at, NEW.created_by)
     IS DISTINCT FROM
     (OLD.id, OLD.user_id, OLD.program_id, OLD.enrollment_id, OLD.entry_type, OLD.amount_cents,
      OLD.description, OLD.idempotency_key, OLD.created_at, OLD.created_by) THEN
    RAISE EXCEPTION 'ledger entry % can only be voided, not edited', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER ledger_entries_void_only
  BEFORE UPDATE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_void_only();

CREATE TABLE refunds (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  withdrawal_id    uuid NOT NULL REFERENCES withdrawals (id) ON DELETE RESTRICT,
  amount_cents     bigint NOT NULL CHECK (amount_cents >= 0),
  policy_basis     text NOT NULL,  -- e.g. 'cancellation_72h', 'pro_rata_under_50pct', 'none_over_50pct'
  approved_by      uuid REFERENCES users (id) ON DELETE RESTRICT,
  approved_at      timestamptz,
  remitted_at      timestamptz,
  -- The ledger line that posts this refund (the old system never posted refunds).
  ledger_entry_id  uuid UNIQUE REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((approved_at IS NULL) = (approved_by IS NULL)),
  CHECK (remitted_at IS NULL OR approved_at IS NOT NULL)
);

-- ---------------------------------------------------------------------------------------------------
-- Enrollment agreements (e-signature)
-- ---------------------------------------------------------------------------------------------------

CREATE TABLE document_templates (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                        text NOT NULL CHECK (btrim(name) <> ''),
  version                     text NOT NULL CHECK (btrim(version) <> ''),
  description                 text,
  content                     bytea,  -- the template PDF, or
  storage_ref                 text,   -- a reference to it in blob storage
  content_type                text NOT NULL DEFAULT 'application/pdf',
  sha256                      bytea NOT NULL CHECK (length(sha256) = 32),
  is_active                   boolean NOT NULL DEFAULT true,
  requires_counter_signature  boolean NOT NULL DEFAULT false,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  created_by                  uuid REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT document_templates_name_version_key UNIQUE (name, version),
  CHECK (num_nonnulls(content, storage_ref) = 1)
);

-- A minimal applicant record: agreements can go to people who are not users yet.
CREATE TABLE leads (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  first_name_ciphertext  text NOT NULL,
  last_name_ciphertext   text NOT NULL,
  email_ciphertext       text NOT NULL,
  email_blind_index      bytea NOT NULL,
  phone_ciphertext       text,
  status                 text NOT NULL DEFAULT 'new'
                           CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost')),
  -- The account the applicant became. RESTRICT: the link is part of the admissions record.
  converted_user_id      uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  created_by             uuid REFERENCES users (id) ON DELETE RESTRICT,
  CHECK (status <> 'converted' OR converted_user_id IS NOT NULL)
);

CREATE TABLE signed_documents (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  template_id           uuid NOT NULL REFERENCES document_templates (id) ON DELETE RESTRICT,
  -- Sent either to a user or to a lead, never both, never neither. RESTRICT: agreements are kept
  -- (retention_until) whatever happens to the account or the lead.
  user_id               uuid REFERENCES users (id) ON DELETE RESTRICT,
  lead_id               uuid REFERENCES leads (id) ON DELETE RESTRICT,
  signing_token_hash    bytea UNIQUE,  -- SHA-256 of the emailed token; NULL once used or revoked
  token_expires_at      timestamptz,
  status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'viewed', 'student_signed', 'completed', 'voided', 'expired')),
  course_type           text CHECK (course_type IN ('twenty_week', 'expanded_functions')),
  form_data_ciphertext  text,  -- the agreement answers (DOB, SSN last 4, address...): ciphertext
  retention_until       date NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  created_by            uuid REFERENCES users (id) ON DELETE RESTRICT,
  sent_at               timestamptz,
  viewed_at             timestamptz,
  student_signed_at     timestamptz,
  counter_signed_at     timestamptz,
  completed_at          timestamptz,
  voided_at             timestamptz,
  voided_by             uuid REFERENCES users (id) ON DELETE RESTRICT,
  void_reason           text,
  CHECK (num_nonnulls(user_id, lead_id) = 1),
  CHECK (signing_token_hash IS NULL OR token_expires_at IS NOT NULL),
  -- Each state carries its timestamp; nothing is completed that the student never signed.
  CHECK (status <> 'viewed' OR viewed_at IS NOT NULL),
  CHECK (status NOT IN ('student_signed', 'completed') OR student_signed_at IS NOT NULL),
  CHECK (status <> 'completed' OR completed_at IS NOT NULL),
  CHECK (status <> 'voided' OR voided_at IS NOT NULL)
);

-- The unsigned and signed PDFs of an agreement (in the database: instances are ephemeral).
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

CREATE TABLE document_signatures (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  document_id            uuid NOT NULL REFERENCES signed_documents (id) ON DELETE RESTRICT,
  signer_user_id         uuid REFERENCES users (id) ON DELETE RESTRICT,  -- NULL for a lead
  signature_type         text NOT NULL CHECK (signature_type IN ('applicant', 'student', 'school_official')),
  signature_ciphertext   text NOT NULL,  -- the signature image
  typed_name_ciphertext  text NOT NULL,
  signed_at              timestamptz NOT NULL DEFAULT now(),
  client_ip              inet,
  user_agent             text,
  -- One signature of each kind per document: two concurrent signing requests cannot both succeed.
  CONSTRAINT document_signatures_document_id_signature_type_key UNIQUE (document_id, signature_type)
);

-- The document-level audit trail (sent, viewed, signed, counter-signed, pdf_generated, voided...).
CREATE TABLE document_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  document_id  uuid NOT NULL REFERENCES signed_documents (id) ON DELETE RESTRICT,
  user_id      uuid REFERENCES users (id) ON DELETE RESTRICT,
  event_type   text NOT NULL CHECK (event_type ~ '^[a-z_]+$'),
  details      jsonb CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),  -- never PII
  occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  client_ip    inet,
  user_agent   text
);

-- ---------------------------------------------------------------------------------------------------
-- updated_at maintenance
-- ---------------------------------------------------------------------------------------------------

CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER registration_requests_set_updated_at BEFORE UPDATE ON registration_requests
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER outbox_messages_set_updated_at BEFORE UPDATE ON outbox_messages
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER programs_set_updated_at BEFORE UPDATE ON programs
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER modules_set_updated_at BEFORE UPDATE ON modules
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER enrollments_set_updated_at BEFORE UPDATE ON enrollments
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER module_progress_set_updated_at BEFORE UPDATE ON module_progress
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER scorm_records_set_updated_at BEFORE UPDATE ON scorm_records
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER attendance_records_set_updated_at BEFORE UPDATE ON attendance_records
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER skills_checkoffs_set_updated_at BEFORE UPDATE ON skills_checkoffs
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER externships_set_updated_at BEFORE UPDATE ON externships
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER complaints_set_updated_at BEFORE UPDATE ON complaints
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER credentials_set_updated_at BEFORE UPDATE ON credentials
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER withdrawals_set_updated_at BEFORE UPDATE ON withdrawals
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER refunds_set_updated_at BEFORE UPDATE ON refunds
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER document_templates_set_updated_at BEFORE UPDATE ON document_templates
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER leads_set_updated_at BEFORE UPDATE ON leads
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER signed_documents_set_updated_at BEFORE UPDATE ON signed_documents
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER signed_document_files_set_updated_at BEFORE UPDATE ON signed_document_files
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------------
-- The application role and its privileges
-- ---------------------------------------------------------------------------------------------------

-- Cluster-wide group role; created once, tolerating a concurrent creation from another database.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'aada_app') THEN
    BEGIN
      CREATE ROLE aada_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;  -- created meanwhile by a migration of another database on the same server
    END;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO aada_app;

-- Read, create and change (no DELETE): every table whose rows the app maintains.
GRANT SELECT, INSERT, UPDATE ON
  users, registration_requests, outbox_messages, refresh_tokens, login_attempts, rate_limit_buckets,
  programs, modules, instructor_assignments, enrollments, module_progress, scorm_records, xapi_statements,
  attendance_records, skills_checkoffs, externships, complaints, credentials, transcripts,
  transcript_documents, withdrawals, refunds, document_templates, leads, signed_documents,
  signed_document_files, user_roles
TO aada_app;

-- DELETE only on ephemeral tables (sessions, grants, throttling, queues, pending registrations).
GRANT DELETE ON
  refresh_tokens, user_roles, login_attempts, rate_limit_buckets, instructor_assignments,
  outbox_messages, registration_requests
TO aada_app;

-- The role catalogue is fixed (the old API let any user create or delete roles).
GRANT SELECT ON roles TO aada_app;

-- Append-only for the app: audit trail, document events and signatures.
GRANT SELECT, INSERT ON audit_log, document_events, document_signatures TO aada_app;

-- Ledger: insert, and update only the void columns (the trigger enforces the same for everyone).
GRANT SELECT, INSERT ON ledger_entries TO aada_app;
GRANT UPDATE (voided_at, voided_by, void_reason) ON ledger_entries TO aada_app;

GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO aada_app;

REVOKE ALL ON FUNCTION prune_audit_log(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_audit_log(interval) TO aada_app;

-- The readiness probe (run by the app) compares schema_migrations with the files it ships.
DO $$
BEGIN
  IF to_regclass('public.schema_migrations') IS NOT NULL THEN
    GRANT SELECT ON public.schema_migrations TO aada_app;
  END IF;
END
$$;

-- migrate:down

-- The role aada_app is NOT dropped: roles are cluster-wide and shared with the other databases on the
-- server (other environments, test databases). Its privileges here go with the objects, or are revoked.
DO $$
BEGIN
  IF to_regclass('public.schema_migrations') IS NOT NULL THEN
    REVOKE ALL ON public.schema_migrations FROM aada_app;
  END IF;
END
$$;

REVOKE USAGE ON SCHEMA public FROM aada_app;

DROP TABLE
  document_events, document_signatures, signed_document_files, signed_documents, leads, document_templates,
  refunds, ledger_entries, withdrawals, transcript_documents, transcripts, credentials, complaints,
  externships, skills_checkoffs, attendance_records, audit_log, xapi_statements, scorm_records,
  module_progress, enrollments, instructor_assignments, modules, programs, outbox_messages,
  registration_requests, rate_limit_buckets, login_attempts, refresh_tokens, user_roles, roles, users;

DROP FUNCTION prune_audit_log(interval);
DROP FUNCTION ledger_entries_void_only();
DROP FUNCTION audit_log_reject_update();
DROP FUNCTION set_updated_at();
