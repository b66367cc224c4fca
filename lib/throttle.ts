// Sign-in throttling, kept in PostgreSQL so that every instance sees the same counts (the old
// system's limiter lived in each process's memory). Three rules, checked in this order:
//
// 1. Per source: at most SOURCE_LIMIT password attempts per SOURCE_WINDOW (any account), a
//    fixed window that starts at a source's first attempt (`rate_limit_buckets`).
// 2. Per account AND source: after MAX_FAILURES failures in FAILURE_WINDOW, that source may not try
//    that account again until the oldest of those failures leaves the window. Another source (the
//    real student at home) is not affected, so an attacker cannot lock anyone out; a successful
//    sign-in clears the failures of its own source.
// 3. Per account, across sources: once ACCOUNT_CEILING failures happened in ACCOUNT_WINDOW (a
//    distributed attack), only sources that signed in to this account successfully within
//    KNOWN_SOURCE_DAYS may keep trying. This slows guessing to ACCOUNT_CEILING per window without
//    locking the student out of a device they used before.
//
// A "source" is the client address the platform reports; for IPv6 its /64, because one subscriber
// commonly holds a whole /64. Accounts are keyed by the email's blind index, so unknown emails are
// throttled exactly like real ones and nothing here reveals whether an account exists.
//
// Rule 1 is an instance of the general per-key limiter below (`hitRateLimit`), which registration
// uses too: fixed-window counters in `rate_limit_buckets`, pruned by functions/maintenance.ts.
import type postgres from 'postgres';
import { type Config, config } from './config';
import type { Sql, TransactionSql } from './db';
import { tooManyRequests } from './errors';

/** The limits (lib/config.ts; tests lower them through the environment). */
export type ThrottleLimits = Pick<
  Config,
  | 'LOGIN_SOURCE_LIMIT'
  | 'LOGIN_SOURCE_WINDOW_SECONDS'
  | 'LOGIN_MAX_FAILURES'
  | 'LOGIN_FAILURE_WINDOW_SECONDS'
  | 'LOGIN_ACCOUNT_CEILING'
  | 'LOGIN_ACCOUNT_WINDOW_SECONDS'
  | 'LOGIN_KNOWN_SOURCE_DAYS'
>;

export function throttleLimits(): ThrottleLimits {
  return config();
}

export type ThrottleReason = 'source_rate' | 'account_source_lockout' | 'account_ceiling';

export type ThrottleDecision =
  | { allowed: true }
  | { allowed: false; reason: ThrottleReason; retryAfterSeconds: number };

type Db = Sql | TransactionSql;

/** The source of an address: itself for IPv4, its /64 network for IPv6, NULL when unknown. */
const sourceOf = (sql: Db, ip: string | null) =>
  sql`(case when family(${ip}::inet) = 6 then network(set_masklen(${ip}::inet, 64))::inet else ${ip}::inet end)`;

// ---------------------------------------------------------------------------------------------------
// Per-key rate limits
// ---------------------------------------------------------------------------------------------------

/** What a rate limit counts: a plain key (`export:<user id>`) or SQL that computes one (`sourceKey`). */
export type RateLimitKey = string | postgres.Fragment;

/**
 * The key of a client source in one scope: `<scope>:<address>/<prefix length>` (`login:192.0.2.1/32`,
 * `register-request:2001:db8:1:2::/64`), or `<scope>:unknown` when the platform reported no address.
 */
export function sourceKey(sql: Db, scope: string, clientIp: string | null): postgres.Fragment {
  const source = sourceOf(sql, clientIp);
  return sql`(${`${scope}:`}::text || coalesce(host(${source}) || '/' || masklen(${source}), 'unknown'))`;
}

/**
 * No rate-limit window may be longer than this: a bucket whose window started longer ago than this
 * has surely ended, which is how functions/maintenance.ts knows which buckets it may delete. A day,
 * or the sign-in window if that is configured longer.
 */
export function longestRateLimitWindowSeconds(): number {
  return Math.max(24 * 60 * 60, throttleLimits().LOGIN_SOURCE_WINDOW_SECONDS);
}

/** A bucket after a hit: hits in its current window (this one included), seconds until it ends. */
export interface RateLimitBucket {
  count: number;
  retry_after: number;
}

export type RateLimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * Counts one hit on `key` in a fixed window of `windowSeconds` that starts at the key's first hit:
 * one `INSERT … ON CONFLICT … DO UPDATE … RETURNING`. Returned unexecuted, so a caller may run it as
 * a CTE of its own statement (`with bucket as (${rateLimitHit(…)}) …`) and keep one round trip;
 * awaiting it runs it alone.
 */
export function rateLimitHit(
  sql: Db,
  key: RateLimitKey,
  windowSeconds: number,
): postgres.PendingQuery<RateLimitBucket[]> {
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > longestRateLimitWindowSeconds()) {
    throw new RangeError(`a rate-limit window is 1 to ${longestRateLimitWindowSeconds()} whole seconds`);
  }
  const window = sql`make_interval(secs => ${windowSeconds})`;
  return sql<RateLimitBucket[]>`
    insert into rate_limit_buckets as b (key, window_start, count)
    values (${key}, now(), 1)
    on conflict (key) do update
       set window_start = case when b.window_start <= now() - ${window} then now() else b.window_start end,
           count = case when b.window_start <= now() - ${window} then 1 else b.count + 1 end
    returning b.count, ceil(extract(epoch from b.window_start + ${window} - now()))::int as retry_after`;
}

/** Whether a bucket (from `rateLimitHit`) is still within `limit` hits. */
export function rateLimitDecision(bucket: RateLimitBucket | undefined, limit: number): RateLimitDecision {
  if (!bucket || bucket.count <= limit) return { allowed: true };
  return { allowed: false, retryAfterSeconds: Math.max(1, bucket.retry_after) };
}

/**
 * Counts one hit on `key` and says whether it is within `limit` hits per `windowSeconds`: one round
 * trip, shared by every instance. Over the limit, answer 429 with `Retry-After: retryAfterSeconds`.
 */
export async function hitRateLimit(
  sql: Db,
  key: RateLimitKey,
  limit: number,
  windowSeconds: number,
): Promise<RateLimitDecision> {
  const [bucket] = await rateLimitHit(sql, key, windowSeconds);
  return rateLimitDecision(bucket, limit);
}

/** Answers 429 with `Retry-After` when the decision is a refusal. */
export function refuseOverLimit(decision: RateLimitDecision): void {
  if (!decision.allowed) throw tooManyRequests(decision.retryAfterSeconds);
}

// ---------------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------------

interface CheckRow {
  source_attempts: number;
  source_retry_after: number;
  lockout_retry_after: number | null;
  ceiling_retry_after: number | null;
  known_source: boolean;
}

/**
 * Counts this attempt against its source and decides whether the password may be checked at all.
 * One round trip: the source's rate-limit bucket is bumped (`rateLimitHit`) in the same statement
 * that reads the account's recent failures.
 */
export async function checkSignIn(sql: Db, accountKey: Buffer, clientIp: string | null): Promise<ThrottleDecision> {
  const l = throttleLimits();
  const source = sourceOf(sql, clientIp);
  const failedFromSource = sql`account_key = ${accountKey} and source_ip is not distinct from ${source} and not success`;
  // The n-th most recent failure (array index n) leaves the window at `+ window`; while it is inside
  // the window there are at least n failures in it. NULL when there are fewer.
  const [row] = await sql<CheckRow[]>`
    with bucket as (${rateLimitHit(sql, sourceKey(sql, 'login', clientIp), l.LOGIN_SOURCE_WINDOW_SECONDS)})
    select bucket.count as source_attempts, bucket.retry_after as source_retry_after,
           (select ceil(extract(epoch from (array_agg(attempted_at order by attempted_at desc))[${l.LOGIN_MAX_FAILURES}]
                   + make_interval(secs => ${l.LOGIN_FAILURE_WINDOW_SECONDS}) - now()))::int
              from login_attempts
             where ${failedFromSource}
               and attempted_at > now() - make_interval(secs => ${l.LOGIN_FAILURE_WINDOW_SECONDS})) as lockout_retry_after,
           (select ceil(extract(epoch from (array_agg(attempted_at order by attempted_at desc))[${l.LOGIN_ACCOUNT_CEILING}]
                   + make_interval(secs => ${l.LOGIN_ACCOUNT_WINDOW_SECONDS}) - now()))::int
              from login_attempts
             where account_key = ${accountKey} and not success
               and attempted_at > now() - make_interval(secs => ${l.LOGIN_ACCOUNT_WINDOW_SECONDS})) as ceiling_retry_after,
           exists (select 1 from login_attempts
                    where account_key = ${accountKey} and source_ip is not distinct from ${source} and success
                      and attempted_at > now() - make_interval(days => ${l.LOGIN_KNOWN_SOURCE_DAYS})) as known_source
      from bucket`;
  if (!row) throw new Error('the throttle statement returned no row');
  if (row.source_attempts > l.LOGIN_SOURCE_LIMIT) return denied('source_rate', row.source_retry_after);
  if (row.lockout_retry_after !== null) return denied('account_source_lockout', row.lockout_retry_after);
  if (row.ceiling_retry_after !== null && !row.known_source) return denied('account_ceiling', row.ceiling_retry_after);
  return { allowed: true };
}

const denied = (reason: ThrottleReason, retryAfterSeconds: number): ThrottleDecision => ({
  allowed: false,
  reason,
  retryAfterSeconds: Math.max(1, retryAfterSeconds),
});

/** A wrong password (or an unknown or inactive account) from this source. */
export async function recordSignInFailure(sql: Db, accountKey: Buffer, clientIp: string | null): Promise<void> {
  await sql`insert into login_attempts (account_key, source_ip, success)
            values (${accountKey}, ${sourceOf(sql, clientIp)}, false)`;
}

/**
 * A correct password from this source: its failures for this account are forgotten, and one success
 * row remembers the source as known (it may keep trying while the account is under attack).
 */
export async function recordSignInSuccess(sql: Db, accountKey: Buffer, clientIp: string | null): Promise<void> {
  const source = sourceOf(sql, clientIp);
  await sql`
    with cleared as (
      delete from login_attempts where account_key = ${accountKey} and source_ip is not distinct from ${source})
    insert into login_attempts (account_key, source_ip, success) values (${accountKey}, ${source}, true)`;
}
