-- 0033 the refunds-due timer's notices (functions/refunds-due.ts): GNPEC requires a refund within 45
-- days of the date of determination, so finance is told once when a refund comes within the warning
-- window and once when it is overdue. A row per refund and level says that notice went out (with the
-- outbox message, in the same transaction), so a daily run never repeats one.

-- migrate:up

CREATE TABLE refund_due_notices (
  refund_id    uuid NOT NULL REFERENCES refunds (id) ON DELETE RESTRICT,
  level        text NOT NULL CONSTRAINT refund_due_notices_level_check CHECK (level IN ('coming_due', 'overdue')),
  noticed_on   date NOT NULL,
  notified_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (refund_id, level)
);

GRANT SELECT, INSERT ON refund_due_notices TO aada_app;

-- migrate:down

DROP TABLE refund_due_notices;
