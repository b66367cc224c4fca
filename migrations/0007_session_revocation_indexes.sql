-- 0007 indexes for reading ended sessions and pruning expired refresh tokens.
--
-- Every instance asks, every few seconds, which sessions ended in the last token lifetime
-- (lib/revocations.ts): a partial index on the revocations that end a session (rotation does not).
-- The hourly maintenance deletes refresh tokens by expiry: an index on expires_at.
-- Built CONCURRENTLY (no write lock on refresh_tokens, which every sign-in writes), hence outside a transaction.

-- migrate:no-transaction
-- migrate:up

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refresh_tokens_ended ON refresh_tokens (revoked_at) WHERE revoke_reason <> 'rotated';

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refresh_tokens_expires ON refresh_tokens (expires_at);

-- migrate:down

DROP INDEX CONCURRENTLY IF EXISTS idx_refresh_tokens_expires;

DROP INDEX CONCURRENTLY IF EXISTS idx_refresh_tokens_ended;
