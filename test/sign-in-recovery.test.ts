// The real student's way past the account ceiling (lib/throttle.ts rule 3), over real HTTP from
// chosen loopback addresses with the production limits: the lock-out of the outside probe reproduced
// (12 sources × 5 wrong passwords), then the signed device cookie of an earlier browser sign-in letting
// the right password in from a network never used, forged and borrowed cookies counting for nothing,
// a device that keeps failing losing its exemption, and the emailed unlock link (lib/one-time-links.ts)
// letting the source it is opened from sign in, once.
import { beforeAll, describe, expect, test } from 'vitest';
import { emailBlindIndex } from '../lib/crypto';
import { DEVICE_COOKIE } from '../lib/throttle';
import { useTestApp } from './helpers/app';
import { postFrom } from './helpers/http';
import { linkTokenIn, messagesTo } from './helpers/outbox';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

// The defaults of lib/config.ts, said out loud: the finding is about these numbers.
const app = useTestApp({
  env: { LOGIN_MAX_FAILURES: '5', LOGIN_ACCOUNT_CEILING: '50', LOGIN_SOURCE_LIMIT: '30' },
});

let addresses = 0;
/** A loopback address no earlier request of this file used: a network the student never signed in from. */
const newAddress = () => {
  const n = addresses++;
  return `127.31.${Math.floor(n / 250)}.${(n % 250) + 2}`;
};

interface SignIn {
  status: number;
  /** The device cookie the answer set, as `name=value`, if any. */
  deviceCookie: string | null;
  setCookies: string[];
}

async function signIn(
  source: string,
  email: string,
  password: string,
  options: { cookie?: string; client?: 'browser' | 'tool' } = {},
): Promise<SignIn> {
  const body = { email, password, ...(options.client ? { client: options.client } : {}) };
  const headers: Record<string, string> = options.cookie ? { cookie: options.cookie } : {};
  const response = await postFrom(`${app.url}/auth/login`, body, source, 'application/json', headers);
  const setCookies = response.headers.getSetCookie();
  const device = setCookies.find((cookie) => cookie.startsWith(`${DEVICE_COOKIE}=`));
  await response.arrayBuffer();
  return { status: response.status, deviceCookie: device ? (device.split(';')[0] as string) : null, setCookies };
}

/** A device cookie for `user`, from a browser sign-in at a fresh address. */
async function deviceCookieOf(user: TestUser): Promise<string> {
  const home = await signIn(newAddress(), user.email, TEST_PASSWORD);
  expect(home.status).toBe(200);
  expect(home.deviceCookie).not.toBeNull();
  return home.deviceCookie as string;
}

/** A distributed attack on `user`, straight in the table: `failures` failures from as many sources. */
async function attack(user: TestUser, failures = 50): Promise<void> {
  await app.db.sql`
    insert into login_attempts (account_key, source_ip, success)
    select ${emailBlindIndex(user.email)}, ('198.51.100.0'::inet + n), false from generate_series(1, ${failures}) n`;
}

const post = (path: string, body: unknown, source: string) => postFrom(`${app.url}${path}`, body, source);

/** The decrypted sign-in unlock messages queued for `email`. */
const unlockMessagesTo = (email: string) => messagesTo(app.db.sql, 'sign_in_unlock', email);
const tokenIn = (message: string | undefined) => linkTokenIn(message, 'sign-in/unlock');

let student: TestUser;
let classmate: TestUser;

beforeAll(async () => {
  student = await createTestUser(app.db.sql, { roles: ['student'] });
  classmate = await createTestUser(app.db.sql, { roles: ['student'] });
});

describe('the device cookie', () => {
  test('a browser sign-in sets it: HttpOnly, __Host-, Secure, SameSite=Strict, long-lived; a tool gets none', async () => {
    const browser = await signIn(newAddress(), classmate.email, TEST_PASSWORD);
    expect(browser.status).toBe(200);
    const set = browser.setCookies.find((cookie) => cookie.startsWith(`${DEVICE_COOKIE}=`)) as string;
    expect(DEVICE_COOKIE.startsWith('__Host-')).toBe(true);
    expect(set).toMatch(/; Path=\/;/);
    expect(set).toMatch(/; HttpOnly/);
    expect(set).toMatch(/; Secure/);
    expect(set).toMatch(/; SameSite=Strict/);
    expect(set).not.toMatch(/Domain=/i);
    expect(Number(/Max-Age=(\d+)/.exec(set)?.[1])).toBeGreaterThanOrEqual(90 * 24 * 60 * 60);
    // It names the account, a device id and the issue time, and is signed; nothing personal in it.
    expect(browser.deviceCookie).not.toContain(classmate.email);
    expect(browser.deviceCookie).toContain(classmate.id);

    const tool = await signIn(newAddress(), classmate.email, TEST_PASSWORD, { client: 'tool' });
    expect(tool.status).toBe(200);
    expect(tool.deviceCookie).toBeNull();
  });

  test('12 sources × 5 wrong passwords lock everyone out at attempt 51, except the device that signed in before', async () => {
    const device = await deviceCookieOf(student);
    const classmateDevice = await deviceCookieOf(classmate);

    // The probe's attack: 12 sources, 5 wrong passwords each (each under its per-source lockout).
    const statuses: number[] = [];
    for (let source = 0; source < 12; source++) {
      const address = newAddress();
      for (let attempt = 0; attempt < 5; attempt++) {
        statuses.push((await signIn(address, student.email, `Wrong-Guess-${source}-${attempt}`)).status);
      }
    }
    expect(statuses.slice(0, 50)).toEqual(Array(50).fill(401));
    expect(statuses.slice(50)).toEqual(Array(10).fill(429));

    // The finding: the right password from a network the student never used is refused too.
    expect((await signIn(newAddress(), student.email, TEST_PASSWORD)).status).toBe(429);

    // The student's own browser, on another new network, gets in: the ceiling is kept for everyone else.
    const fromTrain = await signIn(newAddress(), student.email, TEST_PASSWORD, { cookie: device });
    expect(fromTrain.status).toBe(200);
    expect(fromTrain.deviceCookie).not.toBeNull();
    expect(fromTrain.deviceCookie).not.toBe(device);

    // A forged cookie (another signature, another account in a signed one, an invented one) counts for nothing.
    const [name, value] = device.split('=') as [string, string];
    const parts = value.split('.');
    const tampered = [
      `${name}=${parts.slice(0, 3).join('.')}.${'A'.repeat(43)}`,
      `${name}=${[classmate.id, ...parts.slice(1)].join('.')}`,
      `${name}=${[parts[0], '00000000-0000-4000-8000-000000000000', ...parts.slice(2)].join('.')}`,
      `${name}=${[...parts.slice(0, 2), String(Number(parts[2]) + 1), parts[3]].join('.')}`,
      `${name}=garbage`,
    ];
    for (const forged of tampered) {
      expect((await signIn(newAddress(), student.email, TEST_PASSWORD, { cookie: forged })).status, forged).toBe(429);
    }
    // Another account's genuine device cookie does not open this account.
    expect((await signIn(newAddress(), student.email, TEST_PASSWORD, { cookie: classmateDevice })).status).toBe(429);
    // …and that classmate's own account is not under attack: their cookie is irrelevant there.
    expect((await signIn(newAddress(), classmate.email, TEST_PASSWORD)).status).toBe(200);
    // About 75 sign-ins, each a real Argon2id verification: minutes when the machine is busy.
  }, 240_000);

  test('a trusted device that keeps failing loses its exemption (counted across networks)', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const device = await deviceCookieOf(user);
    await attack(user);
    expect((await signIn(newAddress(), user.email, TEST_PASSWORD)).status).toBe(429);
    // Five failures with the cookie, spread over three networks (no network reaches its own lockout).
    for (const [address, count] of [
      [newAddress(), 2],
      [newAddress(), 2],
      [newAddress(), 1],
    ] as const) {
      for (let i = 0; i < count; i++) {
        expect((await signIn(address, user.email, `Wrong-${i}-password`, { cookie: device })).status).toBe(401);
      }
    }
    expect((await signIn(newAddress(), user.email, TEST_PASSWORD, { cookie: device })).status).toBe(429);
  });

  test('the device cookie does not lift the per-source lockout', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const device = await deviceCookieOf(user);
    const address = newAddress();
    for (let i = 0; i < 5; i++) {
      expect((await signIn(address, user.email, `Wrong-${i}-password`)).status).toBe(401);
    }
    expect((await signIn(address, user.email, TEST_PASSWORD, { cookie: device })).status).toBe(429);
  });
});

describe('the unlock link', () => {
  test('works once, from the address it is opened from, and not from another; not twice', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    await attack(user);
    const cafe = newAddress();
    expect((await signIn(cafe, user.email, TEST_PASSWORD)).status).toBe(429);

    const requested = await post('/auth/unlock/request', { email: user.email }, cafe);
    expect(requested.status).toBe(202);
    const [message] = await unlockMessagesTo(user.email);
    const token = tokenIn(message as string);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const opened = await post('/auth/unlock', { token }, cafe);
    expect(opened.status).toBe(200);
    expect((await signIn(cafe, user.email, TEST_PASSWORD)).status).toBe(200);
    // Only the source the link was opened from: another new network is still held by the ceiling.
    expect((await signIn(newAddress(), user.email, TEST_PASSWORD)).status).toBe(429);
    // Single use.
    const again = await post('/auth/unlock', { token }, newAddress());
    expect(again.status).toBe(400);
    expect(again.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await again.json()) as { errors: { field: string }[] }).errors[0]?.field).toBe('body.token');

    // It let the source try again; it did not sign anyone in or drop the password.
    const wrong = await signIn(cafe, user.email, 'Not-The-Password-1');
    expect(wrong.status).toBe(401);

    const audit = await app.db.sql`
      select event from audit_log where user_id = ${user.id} and event like '%unlock%' order by occurred_at`;
    expect(audit.map((row) => row.event)).toEqual(['sign_in_unlocked']);
  });

  test('an unknown address, an account that is not locked and a locked one get the same 202', async () => {
    const locked = await createTestUser(app.db.sql, { roles: ['student'] });
    const free = await createTestUser(app.db.sql, { roles: ['student'] });
    await attack(locked);
    const source = newAddress();
    const answers = [];
    for (const email of [locked.email, free.email, 'nobody-here@example.test']) {
      const response = await post('/auth/unlock/request', { email }, source);
      answers.push({ status: response.status, body: await response.json() });
    }
    expect(answers[0]?.status).toBe(202);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    // Only the locked account got a link.
    expect(await unlockMessagesTo(locked.email)).toHaveLength(1);
    expect(await unlockMessagesTo(free.email)).toHaveLength(0);
    expect(await unlockMessagesTo('nobody-here@example.test')).toHaveLength(0);
  });

  test('at most one link per account a minute; a new link replaces the old; expired links fail', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    await attack(user);
    const source = newAddress();
    expect((await post('/auth/unlock/request', { email: user.email }, source)).status).toBe(202);
    expect((await post('/auth/unlock/request', { email: user.email }, source)).status).toBe(202);
    expect(await unlockMessagesTo(user.email)).toHaveLength(1);

    await app.db.sql`update one_time_tokens set issued_at = now() - interval '2 minutes'
                      where user_id = ${user.id} and purpose = 'sign_in_unlock'`;
    expect((await post('/auth/unlock/request', { email: user.email }, source)).status).toBe(202);
    const [first, second] = (await unlockMessagesTo(user.email)).map(tokenIn);
    expect(second).not.toBe(first);
    expect((await post('/auth/unlock', { token: first }, source)).status).toBe(400);

    await app.db
      .sql`update one_time_tokens set issued_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
                      where user_id = ${user.id} and purpose = 'sign_in_unlock'`;
    expect((await post('/auth/unlock', { token: second }, source)).status).toBe(400);
    expect((await signIn(source, user.email, TEST_PASSWORD)).status).toBe(429);
  });

  test('the token is stored only as a hash, the message encrypted', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    await attack(user);
    expect((await post('/auth/unlock/request', { email: user.email }, newAddress())).status).toBe(202);
    const token = tokenIn((await unlockMessagesTo(user.email))[0] as string);
    const dump = await app.db.sql<{ row: string }[]>`
      select t::text as row from one_time_tokens t union all select o::text from outbox_messages o`;
    const text = dump.map((row) => row.row).join('\n');
    expect(text).not.toContain(token);
    expect(text).not.toContain(Buffer.from(token).toString('hex'));
    expect(text).not.toContain(user.email);
  });

  test('requests are rate-limited per source', async () => {
    const source = newAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      statuses.push((await post('/auth/unlock/request', { email: `someone-${i}@example.test` }, source)).status);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(202));
    expect(statuses.slice(10)).toEqual([429, 429]);
    const opened: number[] = [];
    const other = newAddress();
    for (let i = 0; i < 11; i++) opened.push((await post('/auth/unlock', { token: 'x'.repeat(43) }, other)).status);
    expect(opened.slice(0, 10)).toEqual(Array(10).fill(400));
    expect(opened[10]).toBe(429);
  });
});
