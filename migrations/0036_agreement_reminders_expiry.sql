-- 0036 reminders and expiry of unsigned agreements (functions/agreement-reminders.ts, lib/agreement-reminders.ts).
-- The agreement keeps when its current signing link was issued and when it expires (the one-time token
-- row may be pruned after it expired; the agreement's record of it may not), how many reminders went
-- out for that link (a resend starts the count again), and when it expired. An open agreement whose
-- link expired becomes `expired` (its own timestamp, like every other state).

-- migrate:up

ALTER TABLE signed_documents
  ADD COLUMN link_sent_at timestamptz,
  ADD COLUMN link_expires_at timestamptz,
  ADD COLUMN reminders_sent smallint NOT NULL DEFAULT 0
    CONSTRAINT signed_documents_reminders_sent_check CHECK (reminders_sent BETWEEN 0 AND 20),
  ADD COLUMN expired_at timestamptz,
  ADD CONSTRAINT signed_documents_link_check CHECK (num_nonnulls(link_sent_at, link_expires_at) IN (0, 2)),
  ADD CONSTRAINT signed_documents_expired_check CHECK (status <> 'expired' OR expired_at IS NOT NULL);

-- Agreements sent before this migration: their link as its token says, else as it was sent.
UPDATE signed_documents d
   SET link_sent_at = t.issued_at, link_expires_at = t.expires_at
  FROM one_time_tokens t
 WHERE t.signed_document_id = d.id AND t.purpose = 'agreement_signing' AND t.used_at IS NULL;
UPDATE signed_documents
   SET link_sent_at = sent_at, link_expires_at = sent_at + interval '14 days'
 WHERE link_sent_at IS NULL AND sent_at IS NOT NULL AND status IN ('pending', 'viewed');

-- The timer's two questions: which open links expired, which are due a reminder (both: open, by expiry).
CREATE INDEX signed_documents_open_links_idx ON signed_documents (link_expires_at)
  WHERE status IN ('pending', 'viewed');

-- migrate:down

DROP INDEX signed_documents_open_links_idx;
UPDATE signed_documents SET status = 'pending' WHERE status = 'expired' AND viewed_at IS NULL;
UPDATE signed_documents SET status = 'viewed' WHERE status = 'expired';
ALTER TABLE signed_documents
  DROP CONSTRAINT signed_documents_expired_check,
  DROP CONSTRAINT signed_documents_link_check,
  DROP COLUMN expired_at,
  DROP COLUMN reminders_sent,
  DROP COLUMN link_expires_at,
  DROP COLUMN link_sent_at;
