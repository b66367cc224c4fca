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
import { type Config, config } from './config';
import type { Sql, TransactionSql } from './db';

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

interface CheckRow {
  source_attempts: number;
  source_retry_after: number;
  lockout_retry_after: number | null;
  ceiling_retry_after: number | null;
  known_source: boolean;
}

/**
 * Counts this attempt against its source and decides whether the password may be checked at all.
 * One round trip: the source counter is bumped (`INSERT … ON CONFLICT DO UPDATE … RETURNING`) in
 * the same statement that reads the account's recent failures.
 */
export async function checkSignIn(sql: Db, accountKey: Buffer, clientIp: string | null): Promise<ThrottleDecision> {
  const l = throttleLimits();
  const source = sourceOf(sql, clientIp);
  const failedFromSource = sql`account_key = ${accountKey} and source_ip is not distinct from ${source} and not success`;
  // The n-th most recent failure (array index n) leaves the window at `+ window`; while it is inside
  // the window there are at least n failures in it. NULL when there are fewer.
  const [row] = await sql<CheckRow[]>`
    with bucket as (
      insert into rate_limit_buckets as b (key, window_start, count)
      values ('login:' || coalesce(host(${source}) || '/' || masklen(${source}), 'unknown'), now(), 1)
      on conflict (key) do update set
        window_start = case when b.window_start <= now() - make_interval(secs => ${l.LOGIN_SOURCE_WINDOW_SECONDS})
                            then now() else b.window_start end,
        count = case when b.window_start <= now() - make_interval(secs => ${l.LOGIN_SOURCE_WINDOW_SECONDS})
                     then 1 else b.count + 1 end
      returning count, window_start)
    select bucket.count as source_attempts,
           ceil(extract(epoch from bucket.window_start
                + make_interval(secs => ${l.LOGIN_SOURCE_WINDOW_SECONDS}) - now()))::int as source_retry_after,
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
