-- 0006 indexes for the enrollment list, which pages by (created_at, id), overall or within a programme.
-- Built CONCURRENTLY (no write lock on enrollments), hence outside a transaction.

-- migrate:no-transaction
-- migrate:up

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_enrollments_created ON enrollments (created_at, id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_enrollments_program_created ON enrollments (program_id, created_at, id);

-- migrate:down

DROP INDEX CONCURRENTLY IF EXISTS idx_enrollments_program_created;

DROP INDEX CONCURRENTLY IF EXISTS idx_enrollments_created;
