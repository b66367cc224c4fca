-- 0040 the ESIGN Act's paper alternatives on an agreement (lib/agreements.ts, functions/agreements-signing.ts):
-- * the signer may withdraw consent to electronic records before signing (15 U.S.C. § 7001(c)(1)(B));
--   the agreement then cannot be e-signed: it becomes `paper_required` (its own timestamp, like every
--   other state) until staff close it (void) once the paper agreement is dealt with;
-- * the signer may ask for a paper copy at any time, before or after signing (§ 7001(c)(1)(B)(ii)):
--   when they first asked is kept, for staff to see and act on.
-- Both are also events of the agreement's trail (consent_withdrawn, paper_copy_requested).

-- migrate:up

ALTER TABLE signed_documents
  DROP CONSTRAINT signed_documents_status_check,
  ADD CONSTRAINT signed_documents_status_check
    CHECK (status IN ('pending', 'viewed', 'student_signed', 'completed', 'voided', 'expired', 'paper_required')),
  ADD COLUMN consent_withdrawn_at timestamptz,
  ADD COLUMN paper_copy_requested_at timestamptz,
  ADD CONSTRAINT signed_documents_paper_required_check CHECK (status <> 'paper_required' OR consent_withdrawn_at IS NOT NULL),
  -- Withdrawal comes before any signature: it "does not affect documents already signed".
  ADD CONSTRAINT signed_documents_withdrawn_unsigned_check CHECK (consent_withdrawn_at IS NULL OR student_signed_at IS NULL);

-- Staff's question "who asked for a paper copy?" (`GET agreements?paperCopyRequested=true`): a partial index.
CREATE INDEX signed_documents_paper_copy_idx ON signed_documents (paper_copy_requested_at)
  WHERE paper_copy_requested_at IS NOT NULL;

-- migrate:down

DROP INDEX signed_documents_paper_copy_idx;
UPDATE signed_documents SET status = CASE WHEN viewed_at IS NULL THEN 'pending' ELSE 'viewed' END
 WHERE status = 'paper_required';
ALTER TABLE signed_documents
  DROP CONSTRAINT signed_documents_withdrawn_unsigned_check,
  DROP CONSTRAINT signed_documents_paper_required_check,
  DROP COLUMN paper_copy_requested_at,
  DROP COLUMN consent_withdrawn_at,
  DROP CONSTRAINT signed_documents_status_check,
  ADD CONSTRAINT signed_documents_status_check
    CHECK (status IN ('pending', 'viewed', 'student_signed', 'completed', 'voided', 'expired'));
