-- 0005 the access token behind each audited request, and the history of enrollment status changes.
--
-- audit_log.token_id: the access token's id (jti), so one stolen token's every use can be listed.
-- enrollment_status_changes: every transition with who, when and why (the reason is encrypted: it is
-- often medical or personal). Append-only for the app, like the other regulated records; an
-- enrollment keeps its history for as long as it exists (RESTRICT).

-- migrate:up

ALTER TABLE audit_log ADD COLUMN token_id uuid;

CREATE TABLE enrollment_status_changes (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  enrollment_id      uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  from_status        text NOT NULL,
  to_status          text NOT NULL CHECK (to_status <> from_status),
  reason_ciphertext  text,
  changed_at         timestamptz NOT NULL DEFAULT now(),
  changed_by         uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT
);

CREATE INDEX idx_enrollment_status_changes_enrollment ON enrollment_status_changes (enrollment_id, changed_at, id);

GRANT SELECT, INSERT ON enrollment_status_changes TO aada_app;

-- migrate:down

REVOKE ALL ON enrollment_status_changes FROM aada_app;
DROP TABLE enrollment_status_changes;
ALTER TABLE audit_log DROP COLUMN token_id;
