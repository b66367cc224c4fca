// Hourly housekeeping of the sign-in tables, which grow with every request and are only useful for a
// while: login attempts after 30 days (the longest look-back of lib/throttle.ts is
// LOGIN_KNOWN_SOURCE_DAYS), rate-limit buckets a day after their window ended, and refresh tokens 30
// days after they expired (kept that long so a replayed old token still trips reuse detection and the
// session history stays readable), and one-time tokens (emailed links) a day after they expired.
//
// Deletes go in batches of BATCH rows, each its own short statement and transaction, so no run holds
// long locks or bloats one transaction; a run stops after MAX_BATCHES per table and the next hour's run
// carries on. The app role holds DELETE on these tables (migrations/0001). Nothing here is regulated
// data: the audit trail has its own retention (functions/audit-retention.ts), the outbox and the
// registration requests theirs (functions/outbox-sender.ts). Each run also sweeps orphan objects from
// the files store (lib/files.ts sweepOrphanFiles).
//
// The same run rolls up closed days of the audit trail for GET audit/summary (lib/audit-trail.ts),
// at most ROLLUP_DAYS_PER_RUN a run: a new deployment catches up on its last year within half a day,
// and the summary is exact meanwhile (it reads audit_log for days not rolled up yet).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import type postgres from 'postgres';
import { rollUpClosedAuditDays } from '../lib/audit-trail';
import { type Sql, timerDb } from '../lib/db';
import { sweepOrphanFiles } from '../lib/files';
import { SPENT_TOKEN_RETENTION_DAYS } from '../lib/one-time-links';
import { longestRateLimitWindowSeconds } from '../lib/throttle';

export const LOGIN_ATTEMPT_RETENTION_DAYS = 30;
export const EXPIRED_REFRESH_TOKEN_RETENTION_DAYS = 30;
/** A bucket is deleted this long after its window surely ended. */
const ENDED_BUCKET_RETENTION_SECONDS = 24 * 60 * 60;
const BATCH = 5_000;
const ROLLUP_DAYS_PER_RUN = 31;
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
  oneTimeTokens: number;
}

/** One table to prune: rows whose `column` is older than `before`, addressed by their `key`. */
interface PruneTarget {
  table: 'login_attempts' | 'rate_limit_buckets' | 'refresh_tokens' | 'one_time_tokens';
  key: string;
  column: string;
  before: postgres.Fragment;
}

/**
 * Deletes old rows of one table in batches until a batch comes back short (nothing old is left) or
 * the run's bound is reached; returns how many went. The age condition is repeated outside the
 * sub-select: a row that a concurrent request renewed meanwhile (a rate-limit bucket whose window just
 * restarted) is re-checked on its new version and kept.
 */
async function pruneInBatches(sql: Sql, target: PruneTarget, options: PruneOptions): Promise<number> {
  const [table, key, column] = [sql(target.table), sql(target.key), sql(target.column)];
  let removed = 0;
  for (let batch = 0; batch < options.maxBatches; batch++) {
    const { count } = await sql`
      delete from ${table}
       where ${key} in (select ${key} from ${table} where ${column} < ${target.before} limit ${options.batch})
         and ${column} < ${target.before}`;
    removed += count;
    if (count < options.batch) break;
  }
  return removed;
}

/** Deletes what the sign-in tables no longer need. */
export async function pruneSignInTables(
  sql: Sql = timerDb(),
  options: PruneOptions = { batch: BATCH, maxBatches: MAX_BATCHES },
): Promise<PruneReport> {
  const daysAgo = (days: number) => sql`now() - make_interval(days => ${days})`;
  const bucketAge = longestRateLimitWindowSeconds() + ENDED_BUCKET_RETENTION_SECONDS;
  return {
    loginAttempts: await pruneInBatches(
      sql,
      { table: 'login_attempts', key: 'id', column: 'attempted_at', before: daysAgo(LOGIN_ATTEMPT_RETENTION_DAYS) },
      options,
    ),
    rateLimitBuckets: await pruneInBatches(
      sql,
      {
        table: 'rate_limit_buckets',
        key: 'key',
        column: 'window_start',
        before: sql`now() - make_interval(secs => ${bucketAge})`,
      },
      options,
    ),
    refreshTokens: await pruneInBatches(
      sql,
      {
        table: 'refresh_tokens',
        key: 'id',
        column: 'expires_at',
        before: daysAgo(EXPIRED_REFRESH_TOKEN_RETENTION_DAYS),
      },
      options,
    ),
    oneTimeTokens: await pruneInBatches(
      sql,
      { table: 'one_time_tokens', key: 'id', column: 'expires_at', before: daysAgo(SPENT_TOKEN_RETENTION_DAYS) },
      options,
    ),
  };
}

export async function maintenance(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const report = await pruneSignInTables();
  // Counts only: these rows hold blind indexes, addresses and token hashes, none of which belongs in a log.
  context.log(
    `maintenance: removed ${report.loginAttempts} login attempts, ${report.rateLimitBuckets} rate-limit buckets, ` +
      `${report.refreshTokens} expired refresh tokens, ${report.oneTimeTokens} expired one-time tokens`,
  );
  const rolled = await rollUpClosedAuditDays(timerDb(), ROLLUP_DAYS_PER_RUN);
  context.log(`maintenance: rolled up ${rolled} closed days of the audit trail`);
  // Objects of the files store no row names (a request failed after its upload): lib/files.ts.
  const files = await sweepOrphanFiles(timerDb());
  context.log(`maintenance: removed ${files.deleted} orphan files (${files.kept} under retention kept)`);
}

// Every hour at minute 15 (NCRONTAB with seconds), away from the outbox's and the audit's runs.
app.timer('maintenance', { schedule: '0 15 * * * *', handler: maintenance });
