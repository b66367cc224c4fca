-- 0017 the student ledger, idempotent payments, withdrawals and refunds by versioned rules.
--
-- ledger_entries becomes append-only: no entry is ever updated or deleted, by anyone (a trigger refuses
-- UPDATE, DELETE and TRUNCATE even for the owner; the app role has neither privilege). A mistake is
-- corrected by a reversal that points at the entry it reverses (at most once, same student, same
-- amount, the other direction). Amounts are positive integer cents with a direction: a debit raises
-- what the student owes (a charge, a refund paid out), a credit lowers it (a payment, an adjustment,
-- a write-off). The balance is the sum of debits minus credits.
--
-- Payments carry a receipt number from a gap-free counter (a row updated in the payment's
-- transaction: a rolled-back payment hands its number back, unlike a sequence). Idempotency keys are
-- kept with the request's hash and the first answer, encrypted (it names the student's payment).
--
-- Refund rules are data with effective dates; a calculation stores its inputs, the rule id and its
-- amounts, which the app role cannot change (column grants and a trigger), so a later rule or an edit
-- never rewrites an old calculation.
--
-- No release ever wrote ledger_entries, withdrawals or refunds (no code named them), so they are
-- recreated in their new shape; a database where someone put rows in them by hand stops here rather
-- than guess what the rows meant.

-- migrate:up

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM ledger_entries) OR EXISTS (SELECT 1 FROM withdrawals) OR EXISTS (SELECT 1 FROM refunds) THEN
    RAISE EXCEPTION '0017: ledger_entries, withdrawals or refunds hold rows no release wrote; move them aside first';
  END IF;
END
$$;

DROP TABLE refunds, ledger_entries, withdrawals;
DROP FUNCTION ledger_entries_void_only();

-- An entry names its enrollment together with the enrollment's student and programme (one foreign key),
-- so an entry can never put one student's money on another student's enrollment.
ALTER TABLE enrollments ADD CONSTRAINT enrollments_id_user_program_key UNIQUE (id, user_id, program_id);

CREATE TABLE ledger_entries (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The order entries were posted in (history pages, statements); never reused.
  entry_number       bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT ledger_entries_entry_number_key UNIQUE,
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id         uuid REFERENCES programs (id) ON DELETE RESTRICT,
  enrollment_id      uuid,
  kind               text NOT NULL CONSTRAINT ledger_entries_kind_check
                       CHECK (kind IN ('charge', 'payment', 'adjustment', 'refund', 'write_off', 'reversal')),
  -- charge: what was charged; payment: its method; adjustment: why; refund: to whom; reversal: the
  -- kind of the entry it reverses.
  category           text NOT NULL,
  direction          text NOT NULL CHECK (direction IN ('debit', 'credit')),
  amount_cents       bigint NOT NULL CONSTRAINT ledger_entries_amount_check CHECK (amount_cents BETWEEN 1 AND 100000000),
  -- A check number or an external processor's reference: a code, never free text.
  reference          text CONSTRAINT ledger_entries_reference_check
                       CHECK (reference ~ '^[A-Za-z0-9][A-Za-z0-9 ._:/#-]{0,63}$'),
  reverses_entry_id  uuid CONSTRAINT ledger_entries_reverses_key UNIQUE REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  receipt_number     bigint CONSTRAINT ledger_entries_receipt_number_key UNIQUE,
  posted_at          timestamptz NOT NULL DEFAULT now(),
  posted_by          uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT ledger_entries_enrollment_fkey FOREIGN KEY (enrollment_id, user_id, program_id)
    REFERENCES enrollments (id, user_id, program_id) ON DELETE RESTRICT,
  CONSTRAINT ledger_entries_category_check CHECK (
    (kind = 'charge' AND category IN ('tuition', 'fee', 'books', 'kit', 'other')) OR
    (kind = 'payment' AND category IN ('cash', 'check', 'card', 'bank', 'financial_aid', 'sponsor')) OR
    (kind = 'adjustment' AND category IN ('tuition_reduction', 'other')) OR
    (kind = 'refund' AND category IN ('student', 'third_party')) OR
    (kind = 'write_off' AND category = 'write_off') OR
    (kind = 'reversal' AND category IN ('charge', 'payment', 'adjustment', 'refund', 'write_off'))),
  CONSTRAINT ledger_entries_kind_direction_check CHECK (
    kind = 'reversal' OR direction = CASE WHEN kind IN ('charge', 'refund') THEN 'debit' ELSE 'credit' END),
  CONSTRAINT ledger_entries_reversal_link_check CHECK ((kind = 'reversal') = (reverses_entry_id IS NOT NULL)),
  CONSTRAINT ledger_entries_receipt_check CHECK ((kind = 'payment') = (receipt_number IS NOT NULL)),
  CHECK (enrollment_id IS NULL OR program_id IS NOT NULL)
);

-- A student's history in posting order, and their balance from the index alone (index-only scans).
CREATE INDEX idx_ledger_entries_user ON ledger_entries (user_id, entry_number)
  INCLUDE (direction, amount_cents, enrollment_id, posted_at);
CREATE INDEX idx_ledger_entries_enrollment ON ledger_entries (enrollment_id) WHERE enrollment_id IS NOT NULL;

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger entries are never changed or removed; post a reversal'
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- An entry's memo (free text about a student: encrypted) lives beside it, so the entry itself holds no
-- ciphertext and stays untouchable even by key rotation, which re-encrypts memos here.
CREATE TABLE ledger_entry_memos (
  entry_id         uuid PRIMARY KEY REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  memo_ciphertext  text NOT NULL
);

-- A reversal mirrors what it reverses: same student, enrollment and amount, the other direction, and
-- never a reversal itself (post the original again instead).
CREATE FUNCTION ledger_entries_check_reversal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  original ledger_entries%ROWTYPE;
BEGIN
  IF NEW.reverses_entry_id IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT * INTO original FROM ledger_entries WHERE id = NEW.reverses_entry_id;
  IF original.kind = 'reversal' OR original.user_id <> NEW.user_id
     OR original.amount_cents <> NEW.amount_cents OR original.direction = NEW.direction
     OR original.kind <> NEW.category
     OR original.enrollment_id IS DISTINCT FROM NEW.enrollment_id THEN
    RAISE EXCEPTION 'a reversal must mirror the entry it reverses'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_entries_reversal_check';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER ledger_entries_check_reversal BEFORE INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_check_reversal();

-- The gap-free receipt counter: one row, incremented in the payment's own transaction.
CREATE TABLE receipt_counter (
  singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_issued   bigint NOT NULL DEFAULT 0 CHECK (last_issued >= 0)
);
INSERT INTO receipt_counter DEFAULT VALUES;

-- Idempotency keys (lib/idempotency.ts), per caller and scope: the request's hash and the first answer.
CREATE TABLE idempotency_keys (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  caller_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  scope                text NOT NULL CHECK (scope ~ '^[a-z_]{1,64}$'),
  key                  text NOT NULL CHECK (key ~ '^[\x21-\x7e]{1,255}$'),
  request_hash         bytea NOT NULL CHECK (length(request_hash) = 32),
  response_status      integer NOT NULL CHECK (response_status BETWEEN 200 AND 299),
  response_ciphertext  text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT idempotency_keys_caller_scope_key_key UNIQUE (caller_id, scope, key)
);

CREATE TABLE withdrawals (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  enrollment_id            uuid NOT NULL CONSTRAINT withdrawals_enrollment_key UNIQUE
                             REFERENCES enrollments (id) ON DELETE RESTRICT,
  user_id                  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  initiated_by             text NOT NULL CHECK (initiated_by IN ('student', 'school')),
  -- NULL: the student never attended (e.g. a withdrawal before the start date).
  last_date_of_attendance  date,
  -- Where the last date came from: the attendance records, or the request (before attendance existed).
  last_date_source         text NOT NULL CHECK (last_date_source IN ('attendance', 'stated', 'never_attended')),
  reason_ciphertext        text,  -- students often give medical or family reasons
  -- When the student gave notice (the cancellation window is measured to it); at most recorded_at.
  notified_at              timestamptz NOT NULL,
  -- The date of determination: refunds are due a fixed number of days after it.
  recorded_at              timestamptz NOT NULL DEFAULT now(),
  recorded_by              uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  CHECK ((last_date_of_attendance IS NULL) = (last_date_source = 'never_attended')),
  CHECK (notified_at <= recorded_at)
);

-- Refund rules in force, by jurisdiction and effective dates. Rows are never changed (no UPDATE
-- grant): a policy change is a new row, so every calculation keeps the rule it was made under.
CREATE TABLE refund_rules (
  id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,64}$'),
  jurisdiction    text NOT NULL CHECK (jurisdiction ~ '^[A-Z]{2}$'),
  effective_from  date NOT NULL,
  effective_to    date,
  source          text NOT NULL,
  rule            jsonb NOT NULL,
  CONSTRAINT refund_rules_start_key UNIQUE (jurisdiction, effective_from),
  CHECK (effective_to IS NULL OR effective_to > effective_from)
);

INSERT INTO refund_rules (id, jurisdiction, effective_from, source, rule) VALUES (
  'ga-gnpec-std12-v1', 'GA', '2000-01-01',
  'Georgia Nonpublic Postsecondary Education Commission, Standard 12 (refunds), as the school''s previous system applied it',
  '{"cancellationWindowHours": 72,
    "tiers": [{"belowPct": 50, "refund": "pro_rata"}, {"belowPct": 100, "refund": "none"}],
    "remitWithinDays": 45}');

CREATE TABLE refunds (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  withdrawal_id        uuid NOT NULL CONSTRAINT refunds_withdrawal_key UNIQUE REFERENCES withdrawals (id) ON DELETE RESTRICT,
  user_id              uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  enrollment_id        uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  rule_id              text NOT NULL REFERENCES refund_rules (id) ON DELETE RESTRICT,
  -- Everything the rule was applied to (charges, payments, dates, hours) and why the amount is what it is.
  inputs               jsonb NOT NULL,
  basis                text NOT NULL CHECK (basis IN ('cancellation', 'pro_rata', 'fixed_pct', 'none', 'nothing_charged')),
  explanation          text NOT NULL,
  retained_cents       bigint NOT NULL CHECK (retained_cents >= 0),
  adjustment_cents     bigint NOT NULL CHECK (adjustment_cents >= 0),
  refund_cents         bigint NOT NULL CHECK (refund_cents >= 0),
  due_date             date NOT NULL,
  status               text NOT NULL DEFAULT 'calculated' CHECK (status IN ('calculated', 'approved', 'remitted')),
  approved_at          timestamptz,
  approved_by          uuid REFERENCES users (id) ON DELETE RESTRICT,
  adjustment_entry_id  uuid CONSTRAINT refunds_adjustment_entry_key UNIQUE REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  refund_entry_id      uuid CONSTRAINT refunds_refund_entry_key UNIQUE REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  remitted_at          timestamptz,
  remitted_by          uuid REFERENCES users (id) ON DELETE RESTRICT,
  remittance_reference text CHECK (remittance_reference ~ '^[A-Za-z0-9][A-Za-z0-9 ._:/#-]{0,63}$'),
  created_at           timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'calculated') = (approved_at IS NULL)),
  CHECK ((approved_at IS NULL) = (approved_by IS NULL)),
  CHECK ((status = 'remitted') = (remitted_at IS NOT NULL)),
  CHECK ((remitted_at IS NULL) = (remitted_by IS NULL))
);

CREATE INDEX idx_refunds_open_due ON refunds (due_date) WHERE status <> 'remitted';

-- A calculation's amounts and inputs never change; its status only moves forward.
CREATE FUNCTION refunds_fixed_calculation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.withdrawal_id, NEW.user_id, NEW.enrollment_id, NEW.rule_id, NEW.inputs, NEW.basis, NEW.explanation,
      NEW.retained_cents, NEW.adjustment_cents, NEW.refund_cents, NEW.due_date, NEW.created_at)
     IS DISTINCT FROM
     (OLD.withdrawal_id, OLD.user_id, OLD.enrollment_id, OLD.rule_id, OLD.inputs, OLD.basis, OLD.explanation,
      OLD.retained_cents, OLD.adjustment_cents, OLD.refund_cents, OLD.due_date, OLD.created_at)
     OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'remitted'))
     OR (OLD.status = 'remitted' AND NEW IS DISTINCT FROM OLD)
     OR (OLD.approved_at IS NOT NULL AND (NEW.approved_at, NEW.approved_by, NEW.adjustment_entry_id, NEW.refund_entry_id)
         IS DISTINCT FROM (OLD.approved_at, OLD.approved_by, OLD.adjustment_entry_id, OLD.refund_entry_id)) THEN
    RAISE EXCEPTION 'a refund calculation cannot be changed'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_fixed_calculation_check';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER refunds_fixed_calculation BEFORE UPDATE ON refunds
  FOR EACH ROW EXECUTE FUNCTION refunds_fixed_calculation();

GRANT SELECT, INSERT ON ledger_entries, ledger_entry_memos, idempotency_keys, withdrawals TO aada_app;
GRANT SELECT ON refund_rules TO aada_app;
GRANT SELECT, UPDATE ON receipt_counter TO aada_app;
GRANT SELECT, INSERT ON refunds TO aada_app;
GRANT UPDATE (status, approved_at, approved_by, adjustment_entry_id, refund_entry_id, remitted_at, remitted_by,
              remittance_reference) ON refunds TO aada_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO aada_app;

-- migrate:down

DROP TABLE refunds, refund_rules, withdrawals, idempotency_keys, receipt_counter, ledger_entry_memos, ledger_entries;
DROP FUNCTION refunds_fixed_calculation();
DROP FUNCTION ledger_entries_check_reversal();
DROP FUNCTION ledger_entries_append_only();
ALTER TABLE enrollments DROP CONSTRAINT enrollments_id_user_program_key;

-- The shapes of 0001 (and the indexes of 0002), as they were.
CREATE TABLE withdrawals (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  enrollment_id               uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  requested_at                timestamptz NOT NULL DEFAULT now(),
  reason_ciphertext           text,
  processed_at                timestamptz,
  processed_by                uuid REFERENCES users (id) ON DELETE RESTRICT,
  progress_pct_at_withdrawal  integer CHECK (progress_pct_at_withdrawal BETWEEN 0 AND 100),
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  CHECK (processed_by IS NULL OR processed_at IS NOT NULL)
);

CREATE TABLE ledger_entries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  program_id       uuid REFERENCES programs (id) ON DELETE RESTRICT,
  enrollment_id    uuid REFERENCES enrollments (id) ON DELETE RESTRICT,
  entry_type       text NOT NULL CHECK (entry_type IN ('tuition', 'fee', 'payment', 'refund', 'adjustment')),
  amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
  description      text,
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
  policy_basis     text NOT NULL,
  approved_by      uuid REFERENCES users (id) ON DELETE RESTRICT,
  approved_at      timestamptz,
  remitted_at      timestamptz,
  ledger_entry_id  uuid UNIQUE REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((approved_at IS NULL) = (approved_by IS NULL)),
  CHECK (remitted_at IS NULL OR approved_at IS NOT NULL)
);

CREATE INDEX idx_withdrawals_enrollment ON withdrawals (enrollment_id);
CREATE INDEX idx_refunds_withdrawal ON refunds (withdrawal_id);
CREATE INDEX idx_ledger_entries_user_created ON ledger_entries (user_id, created_at);
CREATE INDEX idx_ledger_entries_type_created ON ledger_entries (entry_type, created_at);
CREATE INDEX idx_ledger_entries_program ON ledger_entries (program_id) WHERE program_id IS NOT NULL;
CREATE INDEX idx_ledger_entries_enrollment ON ledger_entries (enrollment_id) WHERE enrollment_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE ON withdrawals, refunds TO aada_app;
GRANT SELECT, INSERT ON ledger_entries TO aada_app;
GRANT UPDATE (voided_at, voided_by, void_reason) ON ledger_entries TO aada_app;
