// Hourly housekeeping of the sign-in tables, which grow with every request and are only useful for a
// while: login attempts after 30 days (the longest look-back of lib/throttle.ts is
// LOGIN_KNOWN_SOURCE_DAYS), rate-limit buckets a day after their window ended, and refresh tokens 30
// days after they expired (kept that long so a replayed old token still trips reuse detection and the
// session history stays readable).
//
// Deletes go in batches of BATCH rows, each its own short statement and transaction, so no run holds
// long locks or bloats one transaction; a run stops after MAX_BATCHES per table and the next hour's run
// carries on. The app role holds DELETE on these tables (migrations/0001). Nothing here is regulated
// data: the audit trail has its own retention (functions/audit-retention.ts), the outbox and the
// registration requests theirs (functions/outbox-sender.ts).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { db, type Sql } from '../lib/db';
import { longestRateLimitWindowSeconds } from '../lib/throttle';

export const LOGIN_ATTEMPT_RETENTION_DAYS = 30;
export const EXPIRED_REFRESH_TOKEN_RETENTION_DAYS = 30;
/** A bucket is deleted this long after its window surely ended. */
const ENDED_BUCKET_RETENTION_SECONDS = 24 * 60 * 60;
const BATCH = 5_000;
const MAX_BATCHES = 100;

export interface PruneOptions {
  /** Rows per DELETE statement. */
  batch: number;
  /** Statements per table and run. */
  maxBatches: number;
}

export interface PruneReport {
  loginAttempts: number;
  rateLimitBuckets: number;
  refreshTokens: number;
}

/**
 * Runs `deleteBatch` until it deletes fewer than a full batch (nothing old is left) or the run's
 * bound is reached; returns how many rows went.
 */
async function inBatches(deleteBatch: () => Promise<number>, options: PruneOptions): Promise<number> {
  let removed = 0;
  for (let batch = 0; batch < options.maxBatches; batch++) {
    const count = await deleteBatch();
    removed += count;
    if (count < options.batch) break;
  }
  return removed;
}

/**
 * Deletes what the sign-in tables no longer need. Each DELETE repeats its age condition outside the
 * sub-select: a row that a concurrent request renewed meanwhile (a rate-limit bucket whose window just
 * restarted) is re-checked on its new version and kept.
 */
export async function pruneSignInTables(
  sql: Sql = db(),
  options: PruneOptions = { batch: BATCH, maxBatches: MAX_BATCHES },
): Promise<PruneReport> {
  const attemptsBefore = sql`now() - make_interval(days => ${LOGIN_ATTEMPT_RETENTION_DAYS})`;
  const bucketsBefore = sql`now() - make_interval(secs => ${longestRateLimitWindowSeconds() + ENDED_BUCKET_RETENTION_SECONDS})`;
  const tokensBefore = sql`now() - make_interval(days => ${EXPIRED_REFRESH_TOKEN_RETENTION_DAYS})`;

  const loginAttempts = await inBatches(async () => {
    const result = await sql`
      delete from login_attempts
       where id in (select id from login_attempts where attempted_at < ${attemptsBefore} limit ${options.batch})
         and attempted_at < ${attemptsBefore}`;
    return result.count;
  }, options);

  const rateLimitBuckets = await inBatches(async () => {
    const result = await sql`
      delete from rate_limit_buckets
       where key in (select key from rate_limit_buckets where window_start < ${bucketsBefore} limit ${options.batch})
         and window_start < ${bucketsBefore}`;
    return result.count;
  }, options);

  const refreshTokens = await inBatches(async () => {
    const result = await sql`
      delete from refresh_tokens
       where id in (select id from refresh_tokens where expires_at < ${tokensBefore} limit ${options.batch})
         and expires_at < ${tokensBefore}`;
    return result.count;
  }, options);

  return { loginAttempts, rateLimitBuckets, refreshTokens };
}

export async function maintenance(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const report = await pruneSignInTables();
  // Counts only: these rows hold blind indexes, addresses and token hashes, none of which belongs in a log.
  context.log(
    `maintenance: removed ${report.loginAttempts} login attempts, ${report.rateLimitBuckets} rate-limit buckets, ` +
      `${report.refreshTokens} expired refresh tokens`,
  );
}

// Every hour at minute 15 (NCRONTAB with seconds), away from the outbox's and the audit's runs.
app.timer('maintenance', { schedule: '0 15 * * * *', handler: maintenance });
