-- 0031 withdrawals as GNPEC reads them, refund approvals frozen with the amounts they posted, and
-- admin overrides with their reason (lib/refunds.ts, lib/refund-rules.ts).
--
-- A withdrawal is official (the student gave notice) or unofficial (the school determined that the
-- student stopped attending); it records the date of determination (the refund is due a fixed number
-- of days after it), and the attendance it was computed from: the clock minutes and hours attended
-- (lib/attendance.ts hoursAttended) as they stood when it was recorded, and the status the enrollment
-- left. No release wrote withdrawals or refunds (0017 created them empty and nothing wrote them), so
-- the columns are added NOT NULL; a database where someone put rows in by hand stops here.
--
-- An approval freezes what it posted: the adjustment and refund amounts, to whom, and the override it
-- applied, beside the entries' ids (0017's trigger is replaced to cover the new columns). An override
-- is an administrator's figure for a calculation not yet approved, with a reason (encrypted: it is
-- about a student); overrides are never changed or removed (keys:rotate may re-encrypt the reason),
-- the newest is the one in force, and the database refuses one for a refund no longer 'calculated' (a
-- trigger that waits for a concurrent approval and then sees it).

-- migrate:up

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM withdrawals) OR EXISTS (SELECT 1 FROM refunds) THEN
    RAISE EXCEPTION '0031: withdrawals or refunds hold rows no release wrote; move them aside first';
  END IF;
END
$$;

ALTER TABLE withdrawals
  ADD COLUMN kind text NOT NULL CONSTRAINT withdrawals_kind_check CHECK (kind IN ('official', 'unofficial')),
  ADD COLUMN determined_on date NOT NULL,
  ADD COLUMN minutes_attended integer NOT NULL CONSTRAINT withdrawals_minutes_attended_check CHECK (minutes_attended >= 0),
  ADD COLUMN clock_hours_attended numeric(10, 2) NOT NULL CONSTRAINT withdrawals_clock_hours_check CHECK (clock_hours_attended >= 0),
  ADD COLUMN enrollment_status_before text NOT NULL
    CONSTRAINT withdrawals_status_before_check CHECK (enrollment_status_before IN ('pending', 'active', 'on_hold'));

CREATE INDEX idx_withdrawals_user ON withdrawals (user_id);

ALTER TABLE refunds
  ADD COLUMN approved_adjustment_cents bigint CONSTRAINT refunds_approved_adjustment_check
    CHECK (approved_adjustment_cents BETWEEN 0 AND 100000000),
  ADD COLUMN approved_refund_cents bigint CONSTRAINT refunds_approved_refund_check
    CHECK (approved_refund_cents BETWEEN 0 AND 100000000),
  ADD COLUMN payee text CONSTRAINT refunds_payee_check CHECK (payee IN ('student', 'third_party')),
  ADD COLUMN override_id uuid,
  ADD CONSTRAINT refunds_approval_complete_check CHECK (
    (approved_at IS NULL) = (approved_adjustment_cents IS NULL) AND
    (approved_at IS NULL) = (approved_refund_cents IS NULL) AND
    (approved_at IS NULL) = (payee IS NULL)),
  -- Entries are posted for what is not zero, and only then.
  ADD CONSTRAINT refunds_entries_posted_check CHECK (
    approved_at IS NULL OR (
      (adjustment_entry_id IS NOT NULL) = (approved_adjustment_cents > 0) AND
      (refund_entry_id IS NOT NULL) = (approved_refund_cents > 0))),
  -- Nothing to remit is never remitted; something to remit only after approval.
  ADD CONSTRAINT refunds_remittance_check CHECK (
    remitted_at IS NULL OR (approved_refund_cents > 0 AND remittance_reference IS NOT NULL));

CREATE INDEX idx_refunds_user ON refunds (user_id);

CREATE TABLE refund_overrides (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  refund_id          uuid NOT NULL REFERENCES refunds (id) ON DELETE RESTRICT,
  adjustment_cents   bigint NOT NULL CONSTRAINT refund_overrides_adjustment_check CHECK (adjustment_cents BETWEEN 0 AND 100000000),
  refund_cents       bigint NOT NULL CONSTRAINT refund_overrides_refund_check CHECK (refund_cents BETWEEN 0 AND 100000000),
  reason_ciphertext  text NOT NULL,
  overridden_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  overridden_by      uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT
);
CREATE INDEX idx_refund_overrides_refund ON refund_overrides (refund_id, overridden_at DESC);

ALTER TABLE refunds ADD CONSTRAINT refunds_override_id_fkey
  FOREIGN KEY (override_id) REFERENCES refund_overrides (id) ON DELETE RESTRICT;

CREATE FUNCTION refund_overrides_only_before_approval() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  current_status text;
BEGIN
  -- FOR SHARE waits for an approval in flight, then reads its outcome.
  SELECT status INTO current_status FROM refunds WHERE id = NEW.refund_id FOR SHARE;
  IF current_status IS DISTINCT FROM 'calculated' THEN
    RAISE EXCEPTION 'a refund is overridden only before it is approved'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'refund_overrides_before_approval_check';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER refund_overrides_only_before_approval BEFORE INSERT ON refund_overrides
  FOR EACH ROW EXECUTE FUNCTION refund_overrides_only_before_approval();

-- Never changed or removed; only the reason's ciphertext may be rewritten (keys:rotate re-encrypts it,
-- as the owner: the app role has no UPDATE at all).
CREATE FUNCTION refund_overrides_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.id, NEW.refund_id, NEW.adjustment_cents, NEW.refund_cents, NEW.overridden_at, NEW.overridden_by)
     IS NOT DISTINCT FROM (OLD.id, OLD.refund_id, OLD.adjustment_cents, OLD.refund_cents, OLD.overridden_at, OLD.overridden_by) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'refund overrides are never changed or removed' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER refund_overrides_append_only BEFORE UPDATE OR DELETE ON refund_overrides
  FOR EACH ROW EXECUTE FUNCTION refund_overrides_append_only();

-- 0017's freeze, now covering what an approval records.
CREATE OR REPLACE FUNCTION refunds_fixed_calculation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.withdrawal_id, NEW.user_id, NEW.enrollment_id, NEW.rule_id, NEW.inputs, NEW.basis, NEW.explanation,
      NEW.retained_cents, NEW.adjustment_cents, NEW.refund_cents, NEW.due_date, NEW.created_at)
     IS DISTINCT FROM
     (OLD.withdrawal_id, OLD.user_id, OLD.enrollment_id, OLD.rule_id, OLD.inputs, OLD.basis, OLD.explanation,
      OLD.retained_cents, OLD.adjustment_cents, OLD.refund_cents, OLD.due_date, OLD.created_at)
     OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'remitted'))
     OR (OLD.status = 'remitted' AND NEW IS DISTINCT FROM OLD)
     OR (OLD.approved_at IS NOT NULL AND
         (NEW.approved_at, NEW.approved_by, NEW.adjustment_entry_id, NEW.refund_entry_id,
          NEW.approved_adjustment_cents, NEW.approved_refund_cents, NEW.payee, NEW.override_id)
         IS DISTINCT FROM
         (OLD.approved_at, OLD.approved_by, OLD.adjustment_entry_id, OLD.refund_entry_id,
          OLD.approved_adjustment_cents, OLD.approved_refund_cents, OLD.payee, OLD.override_id)) THEN
    RAISE EXCEPTION 'a refund calculation cannot be changed'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_fixed_calculation_check';
  END IF;
  RETURN NEW;
END
$$;

GRANT SELECT, INSERT ON refund_overrides TO aada_app;
GRANT UPDATE (approved_adjustment_cents, approved_refund_cents, payee, override_id) ON refunds TO aada_app;

-- migrate:down

REVOKE UPDATE (approved_adjustment_cents, approved_refund_cents, payee, override_id) ON refunds FROM aada_app;
CREATE OR REPLACE FUNCTION refunds_fixed_calculation() RETURNS trigger
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
ALTER TABLE refunds DROP CONSTRAINT refunds_override_id_fkey;
DROP TABLE refund_overrides;
DROP FUNCTION refund_overrides_append_only();
DROP FUNCTION refund_overrides_only_before_approval();
DROP INDEX idx_refunds_user;
ALTER TABLE refunds
  DROP CONSTRAINT refunds_remittance_check,
  DROP CONSTRAINT refunds_entries_posted_check,
  DROP CONSTRAINT refunds_approval_complete_check,
  DROP COLUMN override_id,
  DROP COLUMN payee,
  DROP COLUMN approved_refund_cents,
  DROP COLUMN approved_adjustment_cents;
DROP INDEX idx_withdrawals_user;
ALTER TABLE withdrawals
  DROP COLUMN enrollment_status_before,
  DROP COLUMN clock_hours_attended,
  DROP COLUMN minutes_attended,
  DROP COLUMN determined_on,
  DROP COLUMN kind;
