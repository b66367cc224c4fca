// Exact values clients read (issue 18): a portal shows "try again in N minutes" from Retry-After, a
// browser caches a preflight for Access-Control-Max-Age and refuses a header it does not list, every
// answer of every status class carries the same security, cache and request-id headers, and a client
// pages by the documented default and maximum. Each is pinned to its value, not merely "present".
import { describe, expect, test } from 'vitest';
import { emailBlindIndex } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { postFrom } from './helpers/http';
import { createTestUser, TEST_PASSWORD } from './helpers/users';

const PORTAL = 'https://admin.portal.test';
const app = useTestApp({ env: { CORS_ALLOWED_ORIGINS: PORTAL }, fixtures: ['wrapper-routes.ts'] });

/** Failed sign-ins of `email` from `sources[i]`, `secondsAgo[i]` old, written in one statement (one now()). */
async function failedSignIns(email: string, sources: string[], secondsAgo: number[]): Promise<void> {
  await app.db.sql`
    insert into login_attempts (account_key, source_ip, attempted_at, success)
    select ${emailBlindIndex(email)}, source::inet, now() - make_interval(secs => age), false
      from unnest(${sources}::text[], ${secondsAgo}::int[]) as attempt(source, age)`;
}

/** Seconds until the n-th most recent failure of `email` is older than `windowSeconds`, as of now. */
async function secondsLeft(email: string, n: number, windowSeconds: number): Promise<number> {
  const [row] = await app.db.sql<{ left: number }[]>`
    select ceil(extract(epoch from (attempted_at + make_interval(secs => ${windowSeconds}) - now())))::int as left
      from login_attempts where account_key = ${emailBlindIndex(email)} and not success
     order by attempted_at desc offset ${n - 1} limit 1`;
  return row?.left ?? Number.NaN;
}

/** The Retry-After of a refused sign-in, and the time left just before and just after it was answered. */
async function refusedSignIn(source: string, email: string, n: number, windowSeconds: number) {
  const before = await secondsLeft(email, n, windowSeconds);
  const response = await postFrom(`${app.url}/auth/login`, { email, password: TEST_PASSWORD, client: 'tool' }, source);
  const after = await secondsLeft(email, n, windowSeconds);
  const body = (await response.json()) as { type?: string };
  return {
    status: response.status,
    type: body.type,
    retryAfter: Number(response.headers.get('retry-after')),
    before,
    after,
  };
}

describe('Retry-After of a refused sign-in is the time left, to the second', () => {
  test('a source locked out of an account: until the 5th most recent failure leaves the 15 minutes', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    // The 5th most recent of these is 800 s old: 100 s of the 900 s window are left.
    const ages = [400, 500, 600, 700, 800, 850];
    await failedSignIns(
      student.email,
      ages.map(() => '127.0.0.31'),
      ages,
    );
    const refused = await refusedSignIn('127.0.0.31', student.email, 5, 900);
    expect(refused).toMatchObject({ status: 429, type: 'urn:aada:problem:rate-limited' });
    expect(refused.before).toBeLessThanOrEqual(100);
    expect(refused.after).toBeGreaterThan(90);
    expect(refused.retryAfter).toBeLessThanOrEqual(refused.before);
    expect(refused.retryAfter).toBeGreaterThanOrEqual(refused.after);
  });

  test('the account ceiling: until the 50th most recent failure leaves the hour', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    // 50 failures from 50 addresses, the oldest 3000 s ago: 600 s of the 3600 s window are left.
    const ages = Array.from({ length: 50 }, (_, i) => 3000 - i * 10);
    await failedSignIns(
      student.email,
      ages.map((_, i) => `10.9.0.${i + 1}`),
      ages,
    );
    const refused = await refusedSignIn('127.0.0.32', student.email, 50, 3600);
    expect(refused.status).toBe(429);
    expect(refused.after).toBeGreaterThan(590);
    expect(refused.retryAfter).toBeLessThanOrEqual(refused.before);
    expect(refused.retryAfter).toBeGreaterThanOrEqual(refused.after);
  });
});

describe('a CORS preflight, header by header', () => {
  // The portal's request headers and xAPI content's (X-Experience-API-Version, If-Match for documents);
  // the LRS's response headers are readable too (issue 13).
  const EXPECTED_ALLOW_HEADERS =
    'Authorization, Content-Type, If-Match, If-None-Match, X-CSRF-Token, X-Experience-API-Version';
  const EXPECTED_EXPOSE_HEADERS =
    'ETag, Last-Modified, Link, Location, Retry-After, X-Experience-API-Consistent-Through, X-Experience-API-Version, X-Request-Id';

  test('from an allowed origin: exactly these CORS headers, with the methods of the path in a fixed order', async () => {
    const response = await app.api('/auth/me', {
      method: 'OPTIONS',
      headers: {
        Origin: PORTAL,
        'Access-Control-Request-Method': 'PATCH',
        'Access-Control-Request-Headers': 'x-csrf-token',
      },
    });
    expect(response.status).toBe(204);
    const cors = Object.fromEntries([...response.headers].filter(([name]) => name.startsWith('access-control-')));
    expect(cors).toEqual({
      'access-control-allow-origin': PORTAL,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET, PATCH',
      'access-control-allow-headers': EXPECTED_ALLOW_HEADERS,
      'access-control-expose-headers': EXPECTED_EXPOSE_HEADERS,
      'access-control-max-age': '600',
    });
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  test('from any other origin: no CORS header at all', async () => {
    const response = await app.api('/auth/me', {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'PATCH' },
    });
    expect(response.status).toBe(204);
    expect([...response.headers.keys()].filter((name) => name.startsWith('access-control-'))).toEqual([]);
  });
});

describe('headers on every status class', () => {
  const SECURITY = {
    'strict-transport-security': 'max-age=31536000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  };

  test('200, 204, 304, 400, 401, 403, 404, 405, 500: security headers, Cache-Control and a request id', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const catalogue = await app.api('/programs');
    const etag = catalogue.headers.get('etag') as string;
    const answers: [string, number, Response, string][] = [
      ['GET programs', 200, catalogue, 'public, max-age=300'],
      [
        'preflight',
        204,
        await app.api('/programs', {
          method: 'OPTIONS',
          headers: { Origin: PORTAL, 'Access-Control-Request-Method': 'GET' },
        }),
        'no-store',
      ],
      ['logout', 204, await postFrom(`${app.url}/auth/logout`, {}, '127.0.0.33'), 'no-store'],
      ['revalidation', 304, await app.api('/programs', { headers: { 'If-None-Match': etag } }), 'public, max-age=300'],
      ['bad limit', 400, await app.api('/programs?limit=0'), 'no-store'],
      ['no token', 401, await app.api('/auth/me'), 'no-store'],
      ['wrong role', 403, await app.api('/audit/logs', { headers: student.headers }), 'no-store'],
      ['unknown route', 404, await app.api('/no/such/route'), 'no-store'],
      ['wrong method', 405, await app.api('/programs', { method: 'DELETE' }), 'no-store'],
      ['crash', 500, await app.api('/fixture/crash'), 'no-store'],
    ];
    const wrong: string[] = [];
    for (const [what, status, response, cacheControl] of answers) {
      await response.arrayBuffer();
      if (response.status !== status) wrong.push(`${what}: status ${response.status}, not ${status}`);
      const expected: Record<string, string> = { ...SECURITY, 'cache-control': cacheControl };
      for (const [name, value] of Object.entries(expected)) {
        if (response.headers.get(name) !== value)
          wrong.push(`${what} ${status}: ${name} is ${response.headers.get(name)}`);
      }
      if (!/^[0-9a-f-]{36}$/.test(response.headers.get('x-request-id') ?? ''))
        wrong.push(`${what} ${status}: no request id`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('page sizes', () => {
  test('50 items by default, up to 200 on request, 201 refused naming query.limit', async () => {
    const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
    await app.db.sql`
      insert into audit_log (method, route, status)
      select 'GET', 'fixture/page-size', 200 from generate_series(1, 260)`;
    const page = async (query: string) => {
      const response = await app.api(`/audit/logs${query}`, { headers: admin.headers });
      return {
        status: response.status,
        body: (await response.json()) as { items?: unknown[]; next?: string | null; errors?: { field: string }[] },
      };
    };
    const byDefault = await page('');
    expect(byDefault.status).toBe(200);
    expect(byDefault.body.items).toHaveLength(50);
    expect(byDefault.body.next).toEqual(expect.any(String));
    const largest = await page('?limit=200');
    expect(largest.body.items).toHaveLength(200);
    const tooLarge = await page('?limit=201');
    expect(tooLarge.status).toBe(400);
    expect(tooLarge.body.errors?.map((error) => error.field)).toEqual(['query.limit']);
  });
});
