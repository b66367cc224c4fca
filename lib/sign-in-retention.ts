// Retention of the sign-in tables, which grow with every request and are only useful for a while:
// login attempts after 30 days (the longest look-back of lib/throttle.ts is LOGIN_KNOWN_SOURCE_DAYS),
// rate-limit buckets a day after their window ended, refresh tokens 30 days after they expired (kept
// that long so a replayed old token still trips reuse detection and the session history stays
// readable), and one-time tokens (emailed links) a day after they expired. Run hourly by
// functions/maintenance.ts.
//
// Deletes go in batches of BATCH rows, each its own short statement and transaction, so no run holds
// long locks or bloats one transaction; a run stops after MAX_BATCHES per table and the next hour's run
// carries on. The app role holds DELETE on these tables (migrations/0001).
import type postgres from 'postgres';
import { type Sql, timerDb } from './db';
import { SPENT_TOKEN_RETENTION_DAYS } from './one-time-links';
import { longestRateLimitWindowSeconds } from './throttle';

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
