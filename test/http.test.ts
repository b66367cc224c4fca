// The response helper and the route wrapper over real HTTP: cache policies, ETag/304, CORS,
// security headers, problem+json for every error class, body limits and content types.
import { describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';

const PORTAL = 'https://admin.portal.test';
const app = useTestApp({
  env: { CORS_ALLOWED_ORIGINS: `${PORTAL},https://students.portal.test` },
  fixtures: ['wrapper-routes.ts'],
});

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('cache-control')).toBe('no-store');
  const body = (await response.json()) as Record<string, unknown>;
  expect(body.status).toBe(response.status);
  expect(body.type).toMatch(/^urn:aada:problem:[a-z-]+$/);
  expect(typeof body.title).toBe('string');
  expect(body.requestId).toBe(response.headers.get('x-request-id'));
  return body;
}

describe('cache policy per route', () => {
  test.each([
    ['public', 'public, max-age=300', 'Origin'],
    ['private', 'private, max-age=300', 'Authorization, Cookie, Origin'],
  ])('%s responses carry %s, an ETag and Vary', async (policy, cacheControl, vary) => {
    const response = await app.api(`/fixture/cache/${policy}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe(cacheControl);
    expect(response.headers.get('vary')).toBe(vary);
    expect(response.headers.get('etag')).toMatch(/^"[\w-]{32}"$/);
  });

  test('immutable (fingerprinted) responses are cached for a year; the URL is their version', async () => {
    const response = await app.api('/fixture/cache/immutable');
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(response.headers.get('etag')).toBeNull();
  });

  test('no-store responses have no ETag', async () => {
    const response = await app.api('/fixture/cache/no-store');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('etag')).toBeNull();
  });

  test('a matching If-None-Match gets a 304 without a body; a stale one gets the full body', async () => {
    const first = await app.api('/fixture/cache/public');
    const etag = first.headers.get('etag') as string;
    const revalidated = await app.api('/fixture/cache/public', { headers: { 'If-None-Match': etag } });
    expect(revalidated.status).toBe(304);
    expect(await revalidated.text()).toBe('');
    expect(revalidated.headers.get('etag')).toBe(etag);
    expect(revalidated.headers.get('cache-control')).toBe('public, max-age=300');

    const weak = await app.api('/fixture/cache/public', { headers: { 'If-None-Match': `"other", W/${etag}` } });
    expect(weak.status).toBe(304);

    const stale = await app.api('/fixture/cache/public', { headers: { 'If-None-Match': '"not-the-current-one"' } });
    expect(stale.status).toBe(200);
    expect(await stale.json()).toEqual({ policy: 'public', fixed: 'same body every time' });
  });

  test('mutations are no-store even on a route that caches its reads', async () => {
    const response = await app.api('/fixture/cache/public', { method: 'POST' });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('etag')).toBeNull();
  });

  test('errors are no-store', async () => {
    const response = await app.api('/fixture/conflict');
    expect(response.status).toBe(409);
    await problemOf(response);
  });
});

describe('security headers and CORS', () => {
  test('every response carries the security headers', async () => {
    for (const path of ['/fixture/cache/public', '/fixture/crash', '/health']) {
      const response = await app.api(path);
      expect(response.headers.get('strict-transport-security')).toMatch(/^max-age=\d+; includeSubDomains$/);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  test('a configured origin is echoed with credentials; others get no CORS headers', async () => {
    const allowed = await app.api('/fixture/cache/public', { headers: { Origin: PORTAL } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe(PORTAL);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');

    const other = await app.api('/fixture/cache/public', { headers: { Origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('access-control-allow-credentials')).toBeNull();
  });

  test('preflight answers only configured origins, never with *', async () => {
    const preflight = await app.api('/fixture/echo', {
      method: 'OPTIONS',
      headers: { Origin: PORTAL, 'Access-Control-Request-Method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(PORTAL);
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');

    const refused = await app.api('/fixture/echo', {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' },
    });
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('problem+json for every error class', () => {
  test('400 names each failing field', async () => {
    const response = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 42, count: -1, extra: "'; drop table users; --" }),
    });
    expect(response.status).toBe(400);
    const body = await problemOf(response);
    const fields = (body.errors as { field: string }[]).map((error) => error.field).sort();
    expect(fields).toEqual(['body.count', 'body.name']);
  });

  test('400 for malformed JSON and for invalid UTF-8', async () => {
    const malformed = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"name": "unterminated',
    });
    expect(malformed.status).toBe(400);
    expect((await problemOf(malformed)).errors).toEqual([{ field: 'body', message: 'Malformed JSON' }]);

    const badBytes = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    });
    expect(badBytes.status).toBe(400);
    await problemOf(badBytes);
  });

  test('400 for a missing body where one is required, and for a wrong path parameter', async () => {
    const missing = await app.api('/fixture/echo', { method: 'POST', headers: { 'Content-Type': 'application/json' } });
    expect(missing.status).toBe(400);
    await problemOf(missing);

    const params = await app.api('/fixture/sleep/99999999');
    expect(params.status).toBe(400);
    expect(((await problemOf(params)).errors as { field: string }[])[0]?.field).toBe('params.ms');
  });

  test('unicode and script fragments come back as data, never as markup', async () => {
    const name = '<script>alert(1)</script> Zoë 😀 \u202e';
    const response = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ name, count: 3 }),
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await response.json()).toEqual({ received: { name, count: 3 } });
  });

  test('404 problem from a handler and for an unknown route; 405 with Allow for a wrong method', async () => {
    const missing = await app.api('/programs/7d9f6a3e-0000-4000-8000-000000000000');
    expect(missing.status).toBe(404);
    await problemOf(missing);

    const unknown = await app.api('/no/such/route');
    expect(unknown.status).toBe(404);
    await problemOf(unknown);

    const wrongMethod = await app.api('/fixture/echo', { method: 'GET' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST, OPTIONS');
    await problemOf(wrongMethod);
  });

  test('413 for a body over the route limit, by declared length and by streamed length', async () => {
    const declared = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(10_000), count: 1 }),
    });
    expect(declared.status).toBe(413);
    await problemOf(declared);

    // No Content-Length: the body arrives chunked and is cut off as soon as it passes the limit.
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"name":"'));
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode('y'.repeat(1000)));
        controller.enqueue(new TextEncoder().encode('","count":1}'));
        controller.close();
      },
    });
    const streamedBody = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: chunks,
      duplex: 'half',
    } as RequestInit);
    expect(streamedBody.status).toBe(413);
    await problemOf(streamedBody);
  });

  test('the default body limit is 1 MiB', async () => {
    const under = await app.api('/fixture/echo-large', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'a'.repeat(1_000_000) }),
    });
    expect(under.status).toBe(200);
    const over = await app.api('/fixture/echo-large', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'a'.repeat(1_100_000) }),
    });
    expect(over.status).toBe(413);
  });

  test('415 for JSON declared in a charset other than UTF-8; UTF-8 in any spelling is read', async () => {
    const body = JSON.stringify({ name: 'Zoë', count: 1 });
    for (const contentType of [
      'application/json; charset=utf-16',
      'application/json; charset=UTF-16LE',
      'application/json;charset="iso-8859-1"',
      'application/json; charset=us-ascii',
    ]) {
      const response = await app.api('/fixture/echo', {
        method: 'POST',
        headers: { 'Content-Type': contentType },
        body,
      });
      expect(response.status, contentType).toBe(415);
      expect((await problemOf(response)).detail).toMatch(/UTF-8/);
    }
    for (const contentType of ['application/json; charset=UTF-8', 'application/json; charset="utf-8"']) {
      const response = await app.api('/fixture/echo', {
        method: 'POST',
        headers: { 'Content-Type': contentType },
        body,
      });
      expect(response.status, contentType).toBe(201);
    }
  });

  test('415 for a body that is not JSON', async () => {
    const response = await app.api('/fixture/echo', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'name=x&count=1',
    });
    expect(response.status).toBe(415);
    await problemOf(response);
  });

  test('401 problem for a route that needs a role, when anonymous', async () => {
    const response = await app.api('/fixture/staff-only');
    expect(response.status).toBe(401);
    const body = await problemOf(response);
    expect(JSON.stringify(body)).not.toContain('never shown');
  });

  test('500 is a problem with a request id and nothing of the error inside', async () => {
    for (const path of ['/fixture/crash', '/fixture/sql-error']) {
      const response = await app.api(path);
      expect(response.status).toBe(500);
      const text = await response.clone().text();
      await problemOf(response);
      for (const leak of ['hunter2', 'secret', 'stack', 'table_that_does_not_exist', '.ts:', 'at ']) {
        expect(text).not.toContain(leak);
      }
    }
    // The app stays up.
    expect((await app.api('/health')).status).toBe(200);
  });
});

describe('streamed responses', () => {
  test('a large CSV arrives in chunks, complete and in order', async () => {
    const rows = 200_000;
    const response = await app.api(`/fixture/stream/${rows}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let chunks = 0;
    let text = '';
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks++;
      text += decoder.decode(value, { stream: true });
    }
    expect(chunks).toBeGreaterThan(3);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(rows + 1);
    expect(lines[rows]).toBe(`${rows},${rows * rows}`);
  });
});
