// Sign-in throttling across TWO hosts sharing one database, as two Azure instances would: this file's
// host and a second one in its own process (test/fixtures/second-host.ts). Requests alternate between
// them and the counts add up. Sources are told apart by the client address the host sees: each test
// binds its requests to its own loopback address (127.0.0.x).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { emailBlindIndex } from '../lib/crypto';
import { checkSignIn, recordSignInFailure } from '../lib/throttle';
import { useTestApp } from './helpers/app';
import { postFrom } from './helpers/http';
import { createTestUser, TEST_PASSWORD } from './helpers/users';

// Small limits so the rules show in a few requests. Both hosts get the same.
const LIMITS = {
  LOGIN_SOURCE_LIMIT: '8',
  LOGIN_SOURCE_WINDOW_SECONDS: '60',
  LOGIN_MAX_FAILURES: '3',
  LOGIN_FAILURE_WINDOW_SECONDS: '900',
  LOGIN_ACCOUNT_CEILING: '6',
  LOGIN_ACCOUNT_WINDOW_SECONDS: '3600',
};
const app = useTestApp({ env: LIMITS });

let second: ChildProcess | undefined;
let secondUrl = '';
let secondErrors = '';

/** Starts the second host once this file's app (and so its database) is up. */
beforeAll(async () => {
  second = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'fixtures', 'second-host.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...LIMITS, APP_ENV: 'test', DATABASE_URL: process.env.DATABASE_URL },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  second.stderr?.on('data', (chunk) => {
    secondErrors += chunk;
  });
  const lines = createInterface({ input: second.stdout as NodeJS.ReadableStream });
  secondUrl = await new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
    second?.once('exit', (code) => reject(new Error(`second host exited (${code}): ${secondErrors}`)));
  });
});

afterAll(async () => {
  if (!second || second.exitCode !== null) return;
  const exited = new Promise((resolve) => second?.once('exit', resolve));
  second.kill('SIGTERM');
  await exited;
});

interface Answer {
  status: number;
  retryAfter: number | null;
}

/** POST /auth/login on one host, from the given loopback source address. */
async function signIn(host: 'first' | 'second', source: string, email: string, password: string): Promise<Answer> {
  const url = `${host === 'first' ? app.url : secondUrl}/auth/login`;
  const response = await postFrom(url, { email, password, client: 'tool' }, source);
  const retryAfter = response.headers.get('retry-after');
  return { status: response.status, retryAfter: retryAfter ? Number(retryAfter) : null };
}

const hostFor = (index: number) => (index % 2 === 0 ? 'first' : 'second');

describe('two hosts, one set of counts', () => {
  test('the second host is a separate process serving the same API', async () => {
    expect(secondUrl).not.toBe(app.url);
    expect(second?.pid).not.toBe(process.pid);
    expect((await fetch(`${secondUrl}/programs`)).status).toBe(200);
  });

  test('failures of one source add up across hosts and lock that source out of that account only', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const attacker = '127.0.0.11';
    for (let i = 0; i < 3; i++) {
      expect((await signIn(hostFor(i), attacker, student.email, `Guess-${i}-xxxxxxxx`)).status).toBe(401);
    }
    // The fourth attempt is refused on either host, even with the right password.
    for (const host of ['second', 'first'] as const) {
      const locked = await signIn(host, attacker, student.email, TEST_PASSWORD);
      expect(locked.status).toBe(429);
      expect(locked.retryAfter).toBeGreaterThan(0);
      expect(locked.retryAfter).toBeLessThanOrEqual(900);
    }
    // The student, from their own address, is not locked out.
    expect((await signIn('second', '127.0.0.12', student.email, TEST_PASSWORD)).status).toBe(200);
    expect((await signIn('first', '127.0.0.12', student.email, TEST_PASSWORD)).status).toBe(200);

    const audit = await app.db.sql`
      select event, count(*)::int as n from audit_log where user_id = ${student.id} group by event order by event`;
    expect(audit).toEqual([
      { event: 'login_failed', n: 3 },
      { event: 'login_succeeded', n: 2 },
      { event: 'login_throttled', n: 2 },
    ]);
  });

  test('a successful sign-in clears the failures of its source', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const source = '127.0.0.13';
    expect((await signIn('first', source, student.email, 'Typo-Password-1')).status).toBe(401);
    expect((await signIn('second', source, student.email, 'Typo-Password-2')).status).toBe(401);
    expect((await signIn('first', source, student.email, TEST_PASSWORD)).status).toBe(200);
    // Without the reset this would be the third failure in the window and the next attempt a 429.
    expect((await signIn('second', source, student.email, 'Typo-Password-3')).status).toBe(401);
    expect((await signIn('first', source, student.email, 'Typo-Password-4')).status).toBe(401);
    expect((await signIn('second', source, student.email, TEST_PASSWORD)).status).toBe(200);
  });

  test('one source gets LOGIN_SOURCE_LIMIT attempts per window across hosts, whatever the accounts; others are unaffected', async () => {
    const source = '127.0.0.14';
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) {
      answers.push(await signIn(hostFor(i), source, `nobody-${i}@example.test`, 'Some-Password-1'));
    }
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(401));
    for (const host of ['first', 'second'] as const) {
      const limited = await signIn(host, source, 'nobody-else@example.test', 'Some-Password-1');
      expect(limited.status).toBe(429);
      expect(limited.retryAfter).toBeGreaterThan(0);
      expect(limited.retryAfter).toBeLessThanOrEqual(60);
    }
    expect((await signIn('second', '127.0.0.15', 'nobody-else@example.test', 'Some-Password-1')).status).toBe(401);
    const [bucket] = await app.db.sql`select count from rate_limit_buckets where key = ${`login:${source}/32`}`;
    expect(bucket?.count).toBe(10);
  });

  test('past the account ceiling, unknown sources are slowed down while a known source still signs in', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const home = '127.0.0.16';
    expect((await signIn('first', home, student.email, TEST_PASSWORD)).status).toBe(200);
    // A distributed attack: two failures from each of three sources (under the per-source lockout).
    let i = 0;
    for (const source of ['127.0.0.17', '127.0.0.18', '127.0.0.19']) {
      for (let n = 0; n < 2; n++, i++) {
        expect((await signIn(hostFor(i), source, student.email, `Guess-${i}-yyyyyyyy`)).status).toBe(401);
      }
    }
    const fresh = await signIn('second', '127.0.0.20', student.email, TEST_PASSWORD);
    expect(fresh.status).toBe(429);
    expect(fresh.retryAfter).toBeGreaterThan(0);
    expect(fresh.retryAfter).toBeLessThanOrEqual(3600);
    expect((await signIn('second', home, student.email, TEST_PASSWORD)).status).toBe(200);
  });
});

describe('sources', () => {
  test('an IPv6 source is its /64: addresses of one /64 share a lockout, the next /64 does not', async () => {
    const account = emailBlindIndex('ipv6-target@example.test');
    for (const ip of ['2001:db8:1:2::1', '2001:db8:1:2::abcd', '2001:db8:1:2:ffff:ffff:ffff:ffff']) {
      expect(await checkSignIn(app.db.sql, account, ip)).toEqual({ allowed: true });
      await recordSignInFailure(app.db.sql, account, ip);
    }
    expect(await checkSignIn(app.db.sql, account, '2001:db8:1:2::99')).toMatchObject({
      allowed: false,
      reason: 'account_source_lockout',
    });
    expect(await checkSignIn(app.db.sql, account, '2001:db8:1:3::1')).toEqual({ allowed: true });
    expect(await checkSignIn(app.db.sql, account, '192.0.2.1')).toEqual({ allowed: true });
  });

  test('requests without a known address share one source', async () => {
    const account = emailBlindIndex('no-address@example.test');
    for (let i = 0; i < 3; i++) await recordSignInFailure(app.db.sql, account, null);
    expect(await checkSignIn(app.db.sql, account, null)).toMatchObject({ reason: 'account_source_lockout' });
    expect(await checkSignIn(app.db.sql, account, '192.0.2.2')).toEqual({ allowed: true });
  });
});
