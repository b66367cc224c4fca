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
//    distributed attack), only trusted clients may keep trying: a source that signed in to this
//    account successfully within KNOWN_SOURCE_DAYS (or was let through by an unlock link), and a
//    browser presenting this account's device cookie. This slows guessing to ACCOUNT_CEILING per
//    window without locking the student out of a device they used before, wherever it is now.
//
// The device cookie follows OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a
// successful browser sign-in gets an HttpOnly `__Host-` cookie naming the account, a random device
// id and the issue time, signed (HMAC-SHA256, a key derived from JWT_SIGNING_KEY, so it fails closed
// in production). It is bound to its account: another account's cookie, a forged or an expired one
// is no cookie at all. Failures presented with a device id are counted for that device too, and a
// device with MAX_FAILURES of them in FAILURE_WINDOW loses its exemption until they age out (a
// stolen cookie does not buy unlimited guesses). It never exempts from rules 1 and 2.
//
// A "source" is the client address the platform reports; for IPv6 its /64, because one subscriber
// commonly holds a whole /64. Accounts are keyed by the email's blind index, so unknown emails are
// throttled exactly like real ones and nothing here reveals whether an account exists.
//
// Rule 1 is an instance of the general per-key limiter below (`hitRateLimit`), which registration
// uses too: fixed-window counters in `rate_limit_buckets`, pruned by functions/maintenance.ts.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import type postgres from 'postgres';
import { cookieValue, derivedSigningKey } from './auth';
import { type Config, config } from './config';
import { BYTEA_ARRAY, type Sql, type TransactionSql } from './db';
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
// Device cookies
// ---------------------------------------------------------------------------------------------------

export const DEVICE_COOKIE = '__Host-aada-device';
/** A device stays trusted this long after its last successful sign-in (each one renews the cookie). */
export const DEVICE_COOKIE_TTL_SECONDS = 180 * 24 * 60 * 60;

/** A device cookie whose signature and age checked out: whose it is and which device it names. */
export interface PresentedDevice {
  userId: string;
  deviceId: string;
}

const DEVICE_COOKIE_SHAPE = /^([0-9a-f-]{36})\.([0-9a-f-]{36})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$/;

let deviceKey: Buffer | undefined;
function deviceMac(payload: string): string {
  deviceKey ??= derivedSigningKey('device cookie v1');
  return createHmac('sha256', deviceKey).update(payload).digest('base64url');
}

/** A new device cookie value for `userId`: `<user id>.<device id>.<issued, epoch seconds>.<HMAC>`. */
export function newDeviceCookie(userId: string, now = Date.now()): string {
  const payload = `${userId}.${randomUUID()}.${Math.floor(now / 1000)}`;
  return `${payload}.${deviceMac(payload)}`;
}

/** The device cookie of a request when it is ours, intact and not expired; otherwise null. */
export function presentedDevice(request: HttpRequest, now = Date.now()): PresentedDevice | null {
  const value = cookieValue(request, DEVICE_COOKIE);
  const match = value ? DEVICE_COOKIE_SHAPE.exec(value) : null;
  if (!match) return null;
  const [, userId, deviceId, issued, mac] = match as unknown as [string, string, string, string, string];
  const expected = Buffer.from(deviceMac(`${userId}.${deviceId}.${issued}`));
  if (!timingSafeEqual(expected, Buffer.from(mac))) return null;
  const ageSeconds = now / 1000 - Number(issued);
  if (ageSeconds < -60 || ageSeconds > DEVICE_COOKIE_TTL_SECONDS) return null;
  return { userId, deviceId };
}

// ---------------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------------

interface CheckRow {
  source_attempts: number;
  source_retry_after: number;
  lockout_retry_after: number | null;
  ceiling_retry_after: number | null;
  trusted: boolean;
}

/**
 * Seconds until the n-th most recent failure matching `where` leaves a window of `windowSeconds`;
 * while it is inside the window there are at least n failures in it. NULL when there are fewer.
 */
function secondsUntilFewerThan(sql: Db, n: number, windowSeconds: number, where: postgres.Fragment) {
  const window = sql`make_interval(secs => ${windowSeconds})`;
  return sql`(select ceil(extract(epoch from (array_agg(attempted_at order by attempted_at desc))[${n}]
                     + ${window} - now()))::int
                from login_attempts
               where ${where} and not success and attempted_at > now() - ${window})`;
}

/**
 * An account as the throttle knows it: the email's blind index under the current index key, or that
 * index first and then the email's index under every other configured key (lib/crypto.ts
 * emailBlindIndexes), so a device cookie still counts for an account not yet re-indexed.
 */
export type AccountKey = Buffer | readonly Buffer[];

/** SQL of the throttle's state for one account and source: what checkSignIn and the unlock request read. */
function signInState(sql: Db, account: AccountKey, clientIp: string | null, device: PresentedDevice | null) {
  const l = throttleLimits();
  const indexes = Buffer.isBuffer(account) ? [account] : [...account];
  const accountKey = indexes[0] as Buffer;
  const source = sourceOf(sql, clientIp);
  const deviceId = device?.deviceId ?? null;
  return {
    lockout: secondsUntilFewerThan(
      sql,
      l.LOGIN_MAX_FAILURES,
      l.LOGIN_FAILURE_WINDOW_SECONDS,
      sql`account_key = ${accountKey} and source_ip is not distinct from ${source}`,
    ),
    ceiling: secondsUntilFewerThan(
      sql,
      l.LOGIN_ACCOUNT_CEILING,
      l.LOGIN_ACCOUNT_WINDOW_SECONDS,
      sql`account_key = ${accountKey}`,
    ),
    /** A source that signed in lately, or this account's own device cookie that has not failed too often. */
    trusted: sql`(exists (select 1 from login_attempts
                           where account_key = ${accountKey} and source_ip is not distinct from ${source} and success
                             and attempted_at > now() - make_interval(days => ${l.LOGIN_KNOWN_SOURCE_DAYS}))
                  or (exists (select 1 from users where id = ${device?.userId ?? null}::uuid
                                                  and email_blind_index = any(${sql.array(indexes, BYTEA_ARRAY)}::bytea[]))
                      and ${secondsUntilFewerThan(
                        sql,
                        l.LOGIN_MAX_FAILURES,
                        l.LOGIN_FAILURE_WINDOW_SECONDS,
                        sql`account_key = ${accountKey} and device_id = ${deviceId}::uuid`,
                      )} is null))`,
  };
}

/**
 * Counts this attempt against its source and decides whether the password may be checked at all.
 * `device` is the request's device cookie (presentedDevice); it counts only for its own account.
 * One round trip: the source's rate-limit bucket is bumped (`rateLimitHit`) in the same statement
 * that reads the account's recent failures.
 */
export async function checkSignIn(
  sql: Db,
  accountKey: AccountKey,
  clientIp: string | null,
  device: PresentedDevice | null = null,
): Promise<ThrottleDecision> {
  const l = throttleLimits();
  const state = signInState(sql, accountKey, clientIp, device);
  const [row] = await sql<CheckRow[]>`
    with bucket as (${rateLimitHit(sql, sourceKey(sql, 'login', clientIp), l.LOGIN_SOURCE_WINDOW_SECONDS)})
    select bucket.count as source_attempts, bucket.retry_after as source_retry_after,
           ${state.lockout} as lockout_retry_after, ${state.ceiling} as ceiling_retry_after,
           ${state.trusted} as trusted
      from bucket`;
  if (!row) throw new Error('the throttle statement returned no row');
  if (row.source_attempts > l.LOGIN_SOURCE_LIMIT) return denied('source_rate', row.source_retry_after);
  if (row.lockout_retry_after !== null) return denied('account_source_lockout', row.lockout_retry_after);
  if (row.ceiling_retry_after !== null && !row.trusted) return denied('account_ceiling', row.ceiling_retry_after);
  return { allowed: true };
}

/**
 * SQL that is true when sign-in to this account is refused to this source because of failures (the
 * ceiling without being trusted, or this source's own lockout): when an unlock link is worth sending.
 */
export function signInLockedOut(sql: Db, accountKey: AccountKey, clientIp: string | null): postgres.Fragment {
  const state = signInState(sql, accountKey, clientIp, null);
  return sql`(${state.lockout} is not null or (${state.ceiling} is not null and not ${state.trusted}))`;
}

const denied = (reason: ThrottleReason, retryAfterSeconds: number): ThrottleDecision => ({
  allowed: false,
  reason,
  retryAfterSeconds: Math.max(1, retryAfterSeconds),
});

/** A wrong password (or an unknown or inactive account) from this source, and device if one was presented. */
export async function recordSignInFailure(
  sql: Db,
  accountKey: Buffer,
  clientIp: string | null,
  deviceId: string | null = null,
): Promise<void> {
  await sql`insert into login_attempts (account_key, source_ip, device_id, success)
            values (${accountKey}, ${sourceOf(sql, clientIp)}, ${deviceId}::uuid, false)`;
}

/**
 * A correct password from this source (and device): their failures for this account are forgotten,
 * and one success row remembers the source as known (it may keep trying while the account is under
 * attack). An unlock link records the same for the source it was opened from.
 */
export async function recordSignInSuccess(
  sql: Db,
  accountKey: Buffer,
  clientIp: string | null,
  deviceId: string | null = null,
): Promise<void> {
  const source = sourceOf(sql, clientIp);
  await sql`
    with cleared as (
      delete from login_attempts
       where account_key = ${accountKey}
         and (source_ip is not distinct from ${source} or device_id = ${deviceId}::uuid))
    insert into login_attempts (account_key, source_ip, device_id, success)
    values (${accountKey}, ${source}, ${deviceId}::uuid, true)`;
}
