-- 0034 an approval of a refund is undone as a whole, never entry by entry (lib/refunds.ts
-- reverseRefundApproval, POST ledger/refunds/{id}/approval-reversal).
--
-- Before this, finance could reverse the tuition reduction or the refund entry an approval posted
-- (POST ledger/entries/{id}/reversal) and the refund stayed `approved`, naming entries that no longer
-- counted: the record said money was owed and posted when the ledger said it was not. Now the generic
-- reversal refuses an entry a refund's approval posted (lib/ledger.ts reverseEntry), and the refund's
-- own route reverses both entries, keeps the approval it undoes as a row here with who, when and why
-- (encrypted: it is about a student), and returns the refund to `calculated`, so an administrator may
-- override it and finance approve it again. A remitted refund was paid: it is not un-approved.
--
-- The freeze of 0031 is replaced to allow exactly that: approved -> calculated with every approval
-- column cleared, and only when a reversal row records the approval being cleared (same approved_at).

-- migrate:up

CREATE TABLE refund_approval_reversals (
  id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  refund_id                    uuid NOT NULL REFERENCES refunds (id) ON DELETE RESTRICT,
  -- The approval undone, as it was recorded on the refund.
  approved_at                  timestamptz NOT NULL,
  approved_by                  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  approved_adjustment_cents    bigint NOT NULL,
  approved_refund_cents        bigint NOT NULL,
  payee                        text NOT NULL CONSTRAINT refund_approval_reversals_payee_check
                                 CHECK (payee IN ('student', 'third_party')),
  override_id                  uuid REFERENCES refund_overrides (id) ON DELETE RESTRICT,
  adjustment_entry_id          uuid REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  refund_entry_id              uuid REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  -- The reversals posted for them (each present exactly when its original is).
  adjustment_reversal_entry_id uuid REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  refund_reversal_entry_id     uuid REFERENCES ledger_entries (id) ON DELETE RESTRICT,
  reason_ciphertext            text NOT NULL,
  reversed_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
  reversed_by                  uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  CONSTRAINT refund_approval_reversals_entries_check CHECK (
    (adjustment_entry_id IS NULL) = (adjustment_reversal_entry_id IS NULL) AND
    (refund_entry_id IS NULL) = (refund_reversal_entry_id IS NULL)),
  CONSTRAINT refund_approval_reversals_approval_key UNIQUE (refund_id, approved_at)
);

-- reverseEntry asks, for every reversal, whether a refund's approval posted the entry.
CREATE INDEX idx_refunds_adjustment_entry ON refunds (adjustment_entry_id) WHERE adjustment_entry_id IS NOT NULL;
CREATE INDEX idx_refunds_refund_entry ON refunds (refund_entry_id) WHERE refund_entry_id IS NOT NULL;

-- Never changed or removed; only the reason's ciphertext may be rewritten (keys:rotate, as the owner).
CREATE FUNCTION refund_approval_reversals_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'reason_ciphertext') = (to_jsonb(OLD) - 'reason_ciphertext') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'refund approval reversals are never changed or removed' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER refund_approval_reversals_append_only BEFORE UPDATE OR DELETE ON refund_approval_reversals
  FOR EACH ROW EXECUTE FUNCTION refund_approval_reversals_append_only();

CREATE OR REPLACE FUNCTION refunds_fixed_calculation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  -- approved -> calculated with the approval cleared, recorded by a reversal of that very approval.
  approval_reversed boolean :=
    OLD.status = 'approved' AND NEW.status = 'calculated' AND
    (NEW.approved_at, NEW.approved_by, NEW.adjustment_entry_id, NEW.refund_entry_id, NEW.approved_adjustment_cents,
     NEW.approved_refund_cents, NEW.payee, NEW.override_id) IS NOT DISTINCT FROM
    (NULL::timestamptz, NULL::uuid, NULL::uuid, NULL::uuid, NULL::bigint, NULL::bigint, NULL::text, NULL::uuid) AND
    EXISTS (SELECT 1 FROM refund_approval_reversals v WHERE v.refund_id = OLD.id AND v.approved_at = OLD.approved_at);
BEGIN
  IF (NEW.withdrawal_id, NEW.user_id, NEW.enrollment_id, NEW.rule_id, NEW.inputs, NEW.basis, NEW.explanation,
      NEW.retained_cents, NEW.adjustment_cents, NEW.refund_cents, NEW.due_date, NEW.created_at)
     IS DISTINCT FROM
     (OLD.withdrawal_id, OLD.user_id, OLD.enrollment_id, OLD.rule_id, OLD.inputs, OLD.basis, OLD.explanation,
      OLD.retained_cents, OLD.adjustment_cents, OLD.refund_cents, OLD.due_date, OLD.created_at)
     OR (OLD.status = 'approved' AND NEW.status NOT IN ('approved', 'remitted') AND NOT approval_reversed)
     OR (OLD.status = 'remitted' AND NEW IS DISTINCT FROM OLD)
     OR (OLD.approved_at IS NOT NULL AND NOT approval_reversed AND
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

GRANT SELECT, INSERT ON refund_approval_reversals TO aada_app;

-- migrate:down

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
DROP TABLE refund_approval_reversals;
DROP FUNCTION refund_approval_reversals_append_only();
DROP INDEX idx_refunds_refund_entry;
DROP INDEX idx_refunds_adjustment_entry;
