-- 0003 self-registration: one registration request per email address.
--
-- `POST /api/auth/register/request` upserts the request of an address (a new request replaces the
-- token of the previous one), which needs a unique index on the email's blind index; 0002's plain
-- index on that column becomes redundant and goes. Pending requests are ephemeral (30 minutes), so
-- duplicates left by earlier code are removed first, keeping the newest of each address.
--
-- Built CONCURRENTLY (no write lock), hence outside a transaction; every statement is idempotent.

-- migrate:no-transaction
-- migrate:up

DELETE FROM registration_requests r
 USING registration_requests newer
 WHERE newer.email_blind_index = r.email_blind_index
   AND (newer.created_at, newer.id) > (r.created_at, r.id);

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS registration_requests_email_blind_index_key
  ON registration_requests (email_blind_index);

DROP INDEX CONCURRENTLY IF EXISTS idx_registration_requests_email;

-- migrate:down

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_registration_requests_email ON registration_requests (email_blind_index);

DROP INDEX CONCURRENTLY IF EXISTS registration_requests_email_blind_index_key;
