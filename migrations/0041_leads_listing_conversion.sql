-- 0041 leads listed by admissions and converted into students (lib/leads.ts, functions/leads.ts):
-- * the list pages newest first on (created_at, id);
-- * a conversion records when and by whom, beside the account the lead became (converted_user_id);
--   the converted student reaches the agreements they signed as an applicant through that link, so the
--   lead's personal data is not copied onto the agreements (lib/agreements.ts agreementVisible).

-- migrate:up

ALTER TABLE leads
  ADD COLUMN converted_at timestamptz,
  ADD COLUMN converted_by uuid CONSTRAINT leads_converted_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  ADD CONSTRAINT leads_converted_at_check CHECK (status <> 'converted' OR converted_at IS NOT NULL),
  ADD CONSTRAINT leads_converted_user_check CHECK (converted_user_id IS NULL OR status = 'converted');
CREATE INDEX leads_created_idx ON leads (created_at DESC, id DESC);
CREATE INDEX leads_converted_user_idx ON leads (converted_user_id) WHERE converted_user_id IS NOT NULL;

-- migrate:down

DROP INDEX leads_converted_user_idx;
DROP INDEX leads_created_idx;
ALTER TABLE leads
  DROP CONSTRAINT leads_converted_user_check,
  DROP CONSTRAINT leads_converted_at_check,
  DROP COLUMN converted_by,
  DROP COLUMN converted_at;
