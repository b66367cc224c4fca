// The hourly maintenance timer (functions/maintenance.ts): old login attempts, ended rate-limit buckets
// and long-expired refresh tokens go, in batches, as the application's own database role; recent rows
// and everything at the edge of its retention stay.
//
// The function module is imported dynamically, after the app booted: a static import would register
// its timer before the local host's stand-in exists (see dev/functions-host.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { InvocationContext, type Timer } from '@azure/functions';
import { beforeAll, describe, expect, test } from 'vitest';
import { db } from '../lib/db';
import { hitRateLimit } from '../lib/throttle';
import { useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const app = useTestApp();
const maintenanceModule = () => import('../functions/maintenance');
const retentionModule = () => import('../lib/sign-in-retention');

// postgres.js learns array types on its first connection; warm it up before createTestUser's bytea[].
beforeAll(async () => {
  await app.db.sql`select 1`;
});

const DAY = 24 * 60 * 60;
const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);
const tag = () => randomBytes(6).toString('hex');

async function addLoginAttempt(accountKey: Buffer, secondsAgo: number): Promise<void> {
  await app.db.sql`
    insert into login_attempts (account_key, source_ip, attempted_at, success)
    values (${accountKey}, '192.0.2.1', ${ago(secondsAgo)}, false)`;
}

async function addBucket(key: string, windowStartedSecondsAgo: number): Promise<void> {
  await app.db.sql`
    insert into rate_limit_buckets (key, window_start, count) values (${key}, ${ago(windowStartedSecondsAgo)}, 3)`;
}

/** A refresh token that expired `expiredSecondsAgo` ago (negative: still valid), issued a week before. */
async function addRefreshToken(userId: string, expiredSecondsAgo: number, replacedBy?: string): Promise<string> {
  const [row] = await app.db.sql<{ id: string }[]>`
    insert into refresh_tokens (user_id, family_id, token_hash, created_at, expires_at, replaced_by)
    values (${userId}, ${randomUUID()}, ${randomBytes(32)}, ${ago(expiredSecondsAgo + 7 * DAY)},
            ${ago(expiredSecondsAgo)}, ${replacedBy ?? null})
    returning id`;
  return (row as { id: string }).id;
}

const loginAttemptsOf = async (accountKey: Buffer) =>
  (await app.db.sql`select attempted_at from login_attempts where account_key = ${accountKey}`).length;
const bucketExists = async (key: string) =>
  (await app.db.sql`select 1 from rate_limit_buckets where key = ${key}`).length === 1;
const tokenIds = async (userId: string) =>
  (await app.db.sql<{ id: string }[]>`select id from refresh_tokens where user_id = ${userId}`).map((row) => row.id);

function timerContext(logged: string[]): InvocationContext {
  return new InvocationContext({
    invocationId: randomBytes(8).toString('hex'),
    functionName: 'maintenance',
    logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
  });
}

describe('pruning the sign-in tables', () => {
  test('old rows go and recent ones stay, as the app role, with counts of what went', async () => {
    const { pruneSignInTables } = await retentionModule();
    const account = randomBytes(32);
    await addLoginAttempt(account, 31 * DAY);
    await addLoginAttempt(account, 45 * DAY);
    await addLoginAttempt(account, 29 * DAY);
    await addLoginAttempt(account, 60);

    const prefix = `maintenance-${tag()}`;
    await addBucket(`${prefix}:ended-long-ago`, 3 * DAY);
    // The longest window is a day: a window that started 36 hours ago ended at most 12 hours ago.
    await addBucket(`${prefix}:ended-recently`, 36 * 60 * 60);
    await addBucket(`${prefix}:running`, 10);

    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const live = await addRefreshToken(user.id, -DAY);
    const expiredLately = await addRefreshToken(user.id, 29 * DAY);
    const expiredLongAgo = await addRefreshToken(user.id, 31 * DAY);
    // One-time tokens: one live, one expired an hour ago (kept a day), one expired two days ago.
    for (const [purpose, expiredSecondsAgo] of [
      ['sign_in_unlock', -600],
      ['registration_verify', 3600],
      ['registration_complete', 2 * DAY],
    ] as const) {
      await app.db.sql`
        insert into one_time_tokens (purpose, token_hash, user_id, issued_at, expires_at)
        values (${purpose}, ${randomBytes(32)}, ${user.id}, now() - make_interval(secs => ${expiredSecondsAgo + 1800}),
                now() - make_interval(secs => ${expiredSecondsAgo}))`;
    }

    // db() is the app's pool, signed in as the application role: its DELETE grants suffice.
    const report = await pruneSignInTables(db());
    expect(report).toEqual({ loginAttempts: 2, rateLimitBuckets: 1, refreshTokens: 1, oneTimeTokens: 1 });
    expect(await loginAttemptsOf(account)).toBe(2);
    expect(await bucketExists(`${prefix}:ended-long-ago`)).toBe(false);
    expect(await bucketExists(`${prefix}:ended-recently`)).toBe(true);
    expect(await bucketExists(`${prefix}:running`)).toBe(true);
    expect((await tokenIds(user.id)).sort()).toEqual([live, expiredLately].sort());
    expect(await tokenIds(user.id)).not.toContain(expiredLongAgo);
    const kept = await app.db.sql`select purpose from one_time_tokens where user_id = ${user.id} order by purpose`;
    expect(kept.map((row) => row.purpose)).toEqual(['registration_verify', 'sign_in_unlock']);

    // Nothing left to do: a second run deletes nothing.
    expect(await pruneSignInTables(db())).toEqual({
      loginAttempts: 0,
      rateLimitBuckets: 0,
      refreshTokens: 0,
      oneTimeTokens: 0,
    });
  });

  test('deletes in batches; a run stops at its bound and the next one carries on', async () => {
    const { pruneSignInTables } = await retentionModule();
    const account = randomBytes(32);
    for (let i = 0; i < 10; i++) await addLoginAttempt(account, 40 * DAY + i);
    await addLoginAttempt(account, 5);

    const bounded = await pruneSignInTables(db(), { batch: 3, maxBatches: 2 });
    expect(bounded.loginAttempts).toBe(6);
    expect(await loginAttemptsOf(account)).toBe(5);

    const rest = await pruneSignInTables(db(), { batch: 3, maxBatches: 100 });
    expect(rest.loginAttempts).toBe(4);
    expect(await loginAttemptsOf(account)).toBe(1);
  });

  test('a token still pointing at a pruned successor stays, its link cleared', async () => {
    const { pruneSignInTables } = await retentionModule();
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const successor = await addRefreshToken(user.id, 40 * DAY);
    const predecessor = await addRefreshToken(user.id, 20 * DAY, successor);
    expect((await pruneSignInTables(db())).refreshTokens).toBe(1);
    const [row] = await app.db.sql`select replaced_by from refresh_tokens where id = ${predecessor}`;
    expect(row).toEqual({ replaced_by: null });
  });

  test('a bucket counted again after its window ended starts a new window and is not pruned', async () => {
    const { pruneSignInTables } = await retentionModule();
    const key = `maintenance-${tag()}:revived`;
    await addBucket(key, 5 * DAY);
    expect(await hitRateLimit(db(), key, 10, 60)).toEqual({ allowed: true });
    expect((await pruneSignInTables(db())).rateLimitBuckets).toBe(0);
    const [bucket] = await app.db.sql`select count from rate_limit_buckets where key = ${key}`;
    expect(bucket).toEqual({ count: 1 });
  });

  test('the timer logs counts only, never a key or an address', async () => {
    const { maintenance } = await maintenanceModule();
    const key = `maintenance-${tag()}:198.51.100.7/32`;
    await addBucket(key, 4 * DAY);
    const logged: string[] = [];
    await maintenance({ isPastDue: false } as Timer, timerContext(logged));
    const text = logged.join('\n');
    expect(text).toMatch(/maintenance: removed 0 login attempts, 1 rate-limit buckets, 0 expired refresh tokens/);
    expect(text).not.toContain('198.51.100.7');
    expect(await bucketExists(key)).toBe(false);
  });
});

describe('hitRateLimit', () => {
  test('counts hits per key in a fixed window and refuses past the limit with the seconds left', async () => {
    const key = `limit-${tag()}`;
    for (let hit = 1; hit <= 3; hit++) expect(await hitRateLimit(db(), key, 3, 120)).toEqual({ allowed: true });
    const refused = await hitRateLimit(db(), key, 3, 120);
    expect(refused).toMatchObject({ allowed: false });
    const retryAfter = (refused as { retryAfterSeconds: number }).retryAfterSeconds;
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(120);
    // Another key has its own count.
    expect(await hitRateLimit(db(), `${key}-other`, 3, 120)).toEqual({ allowed: true });
  });

  test('refuses windows it could not prune safely: longer than a day, zero or fractional', async () => {
    for (const window of [DAY + 1, 0, 1.5]) {
      await expect(hitRateLimit(db(), `limit-${tag()}`, 3, window), String(window)).rejects.toThrow(RangeError);
    }
  });
});
