// xAPI content in a browser on an allowed origin reaching the LRS cross-origin, without a browser: the preflight
// and the answers are checked the way the Fetch standard's CORS checks judge them (every requested method and
// non-safelisted header allowed; a script reads only safelisted and exposed response headers). Content sends
// X-Experience-API-Version on every request, Authorization, Content-Type, and If-Match / If-None-Match on
// documents, and reads X-Experience-API-Version, ETag, Last-Modified and X-Experience-API-Consistent-Through.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { createCredential } from '../lib/xapi-credentials';
import { useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const CONTENT_ORIGIN = 'https://content.aada.test';
const app = useTestApp({ env: { CORS_ALLOWED_ORIGINS: CONTENT_ORIGIN } });
let auth = '';

/** Response headers any cross-origin script may read (Fetch: CORS-safelisted response-header names). */
const SAFELISTED_RESPONSE = [
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'expires',
  'last-modified',
  'pragma',
];

const list = (value: string | null) =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean);

/** What a browser's CORS-preflight check says of this answer for a request with these method and headers. */
function preflightRefusals(response: Response, origin: string, method: string, headers: string[]): string[] {
  const refusals: string[] = [];
  if (response.status < 200 || response.status > 299) refusals.push(`status ${response.status}`);
  if (response.headers.get('access-control-allow-origin') !== origin) refusals.push('origin not allowed');
  // GET, HEAD and POST are CORS-safelisted methods: allowed whether listed or not.
  const methods = [...list(response.headers.get('access-control-allow-methods')), 'get', 'head', 'post'];
  if (!methods.includes(method.toLowerCase())) refusals.push(`method ${method} not allowed`);
  const allowed = list(response.headers.get('access-control-allow-headers'));
  for (const header of headers) if (!allowed.includes(header.toLowerCase())) refusals.push(`header ${header}`);
  return refusals;
}

/** The response headers a script on `origin` can read of a cross-origin answer (null: none, CORS failed). */
function readableHeaders(response: Response, origin: string): Map<string, string> | null {
  if (response.headers.get('access-control-allow-origin') !== origin) return null;
  const exposed = new Set([...SAFELISTED_RESPONSE, ...list(response.headers.get('access-control-expose-headers'))]);
  return new Map([...response.headers].filter(([name]) => exposed.has(name)));
}

function preflight(path: string, method: string, headers: string[], origin = CONTENT_ORIGIN) {
  return app.api(`/xapi${path}`, {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': method,
      'Access-Control-Request-Headers': headers.map((h) => h.toLowerCase()).join(','),
    },
  });
}

function fromContent(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  return app.api(`/xapi${path}`, {
    method,
    headers: {
      Origin: CONTENT_ORIGIN,
      'X-Experience-API-Version': '1.0.3',
      Authorization: auth,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const XAPI_REQUEST_HEADERS = ['Authorization', 'Content-Type', 'X-Experience-API-Version'];
const actor = { mbox: `mailto:cors-${randomUUID().slice(0, 8)}@example.org` };
const activityId = 'http://example.org/cors/course';

beforeAll(async () => {
  const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
  const credential = await createCredential(app.db.sql, { label: 'browser content', scopes: ['all'] }, admin.id);
  auth = `Basic ${Buffer.from(`${credential.key}:${credential.secret}`).toString('base64')}`;
});

describe('xAPI content on an allowed origin, as a browser judges it', () => {
  test('the statements preflight allows every method content uses, with the xAPI request headers', async () => {
    for (const method of ['GET', 'HEAD', 'PUT', 'POST']) {
      const response = await preflight('/statements', method, XAPI_REQUEST_HEADERS);
      expect(preflightRefusals(response, CONTENT_ORIGIN, method, XAPI_REQUEST_HEADERS)).toEqual([]);
    }
  });

  test('a statement posted and read cross-origin: version and Consistent-Through are readable', async () => {
    const id = randomUUID();
    const statement = {
      id,
      actor,
      verb: { id: 'http://adlnet.gov/expapi/verbs/attempted' },
      object: { id: activityId },
    };
    const posted = await fromContent('POST', '/statements', statement);
    expect(posted.status).toBe(200);
    expect(readableHeaders(posted, CONTENT_ORIGIN)?.get('x-experience-api-version')).toBe('1.0.3');
    const read = await fromContent('GET', `/statements?statementId=${id}`);
    expect(read.status).toBe(200);
    const readable = readableHeaders(read, CONTENT_ORIGIN);
    expect(readable?.get('x-experience-api-version')).toBe('1.0.3');
    expect(Date.parse(readable?.get('x-experience-api-consistent-through') ?? '')).not.toBeNaN();
    expect(Date.parse(readable?.get('last-modified') ?? '')).not.toBeNaN();
  });

  test('a state document with If-Match / If-None-Match: preflight allowed, the ETag readable', async () => {
    const path = `/activities/state?${new URLSearchParams({
      activityId,
      agent: JSON.stringify(actor),
      stateId: 'bookmark',
    })}`;
    const headers = [...XAPI_REQUEST_HEADERS, 'If-Match', 'If-None-Match'];
    for (const method of ['PUT', 'POST', 'GET', 'DELETE']) {
      expect(preflightRefusals(await preflight(path, method, headers), CONTENT_ORIGIN, method, headers)).toEqual([]);
    }
    const put = await fromContent('PUT', path, { page: 3 }, { 'If-None-Match': '*' });
    expect(put.status).toBe(204);
    const got = await fromContent('GET', path);
    expect(got.status).toBe(200);
    const etag = readableHeaders(got, CONTENT_ORIGIN)?.get('etag');
    expect(etag).toMatch(/^"[0-9a-f]{40}"$/);
    const replaced = await fromContent('PUT', path, { page: 4 }, { 'If-Match': etag as string });
    expect(replaced.status).toBe(204);
  });

  test('another origin gets no CORS header at all, preflight or answer: its script reads nothing', async () => {
    const evil = 'https://evil.example';
    const response = await preflight('/statements', 'POST', XAPI_REQUEST_HEADERS, evil);
    expect(preflightRefusals(response, evil, 'POST', XAPI_REQUEST_HEADERS)).toContain('origin not allowed');
    expect([...response.headers.keys()].filter((name) => name.startsWith('access-control-'))).toEqual([]);
    const answer = await app.api('/xapi/statements?limit=1', {
      headers: { Origin: evil, Authorization: auth, 'X-Experience-API-Version': '1.0.3' },
    });
    expect(answer.status).toBe(200);
    expect(readableHeaders(answer, evil)).toBeNull();
  });
});
