// What the host used to answer on its own, now answered by the app (lib/endpoint.ts) so Azure and the
// local host answer alike: 404 problem+json for an unknown route, 405 with Allow for a known template
// and a wrong method, HEAD wherever GET is served, 414 for an over-long URL; each audited under a
// template or a fixed marker, never the raw path. The sweeps run on two hosts of the same app: the
// local host's default routing (ASP.NET precedence) and Azure's (first function by name, no precedence).
import http from 'node:http';
import type { HttpMethod } from '@azure/functions';
import { describe, expect, test } from 'vitest';
import { type HostUnderTest, useAzureOrderedHost, useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const app = useTestApp();
const azure = useAzureOrderedHost();
const HOSTS: [string, HostUnderTest][] = [
  ['local precedence', app],
  ['Azure function-name order', azure],
];

const METHODS: HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** A URL of the template with every parameter filled (a uuid, or a real role name). */
function pathOf(route: string): string {
  return route.replace(/\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g, (_whole, name: string) =>
    name === 'role' ? 'student' : crypto.randomUUID(),
  );
}

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body.status).toBe(response.status);
  return body;
}

async function auditRowOf(requestId: string | null) {
  const rows = await app.db.sql<
    { route: string; method: string; status: number; resource_ids: unknown; event: string | null }[]
  >`
    select route, method, status, resource_ids, event from audit_log where request_id = ${requestId}`;
  return rows[0];
}

/** The routes (template → methods) of the route table. */
async function templates(): Promise<Map<string, Set<string>>> {
  const { declaredRoutes } = await import('../lib/endpoint');
  const byTemplate = new Map<string, Set<string>>();
  for (const route of declaredRoutes()) {
    const methods = byTemplate.get(route.route) ?? new Set<string>();
    for (const method of route.methods) methods.add(method);
    byTemplate.set(route.route, methods);
  }
  return byTemplate;
}

describe('unknown routes', () => {
  test.each(HOSTS)('get a 404 problem+json, audited under a fixed marker, never the path (%s)', async (_name, host) => {
    const secret = 'jane.doe@example.test';
    for (const method of METHODS) {
      const response = await host.api(`/no/such/${encodeURIComponent(secret)}`, {
        method,
        ...(method === 'GET' ? {} : { headers: { 'Content-Type': 'application/json' }, body: '{}' }),
      });
      expect(response.status, method).toBe(404);
      expect((await problemOf(response)).type).toBe('urn:aada:problem:route-not-found');
      const row = await auditRowOf(response.headers.get('x-request-id'));
      expect(row).toMatchObject({ route: '(unknown route)', method, status: 404, event: 'unknown_route' });
      expect(JSON.stringify(row)).not.toContain('jane');
    }
  });
});

describe('a known route with a wrong method', () => {
  test.each(HOSTS)(
    'gets a 405 problem+json whose Allow lists what the path serves, on every template (%s)',
    async (_name, host) => {
      const wrong: string[] = [];
      const all = await templates();
      const { templatesMatchingPath } = await import('../lib/endpoint');
      for (const template of all.keys()) {
        const path = pathOf(template);
        // Every template on the path counts (`students/search` is also `students/{id}`): Allow is their union.
        const served = new Set(templatesMatchingPath(path).flatMap((other) => [...(all.get(other) ?? [])]));
        const expected = new Set([...served, ...(served.has('GET') ? ['HEAD'] : []), 'OPTIONS']);
        for (const method of METHODS.filter((m) => !served.has(m))) {
          const response = await host.api(`/${path}`, {
            method,
            ...(method === 'GET' ? {} : { headers: { 'Content-Type': 'application/json' }, body: '{}' }),
          });
          const allow = new Set((response.headers.get('allow') ?? '').split(',').map((m) => m.trim()));
          const type = response.status === 405 ? (await problemOf(response)).type : await response.text();
          const sameAllow = allow.size === expected.size && [...expected].every((m) => allow.has(m));
          if (response.status !== 405 || type !== 'urn:aada:problem:method-not-allowed' || !sameAllow) {
            wrong.push(`${method} ${template} → ${response.status} Allow: ${[...allow].join(',')}`);
          }
        }
      }
      expect(wrong).toEqual([]);
    },
  );

  test('is audited under the template, not the path', async () => {
    const id = crypto.randomUUID();
    const response = await app.api(`/students/${id}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(405);
    const row = await auditRowOf(response.headers.get('x-request-id'));
    expect(row).toMatchObject({ method: 'PUT', status: 405, event: 'method_not_allowed' });
    expect(row?.route).toMatch(/^students\/\{id/);
    expect(JSON.stringify(row)).not.toContain(id);
  });
});

describe('HEAD', () => {
  test.each(HOSTS)(
    'answers wherever GET does, with the same status and headers and no body (%s)',
    async (_name, host) => {
      const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
      const wrong: string[] = [];
      for (const [template, methods] of await templates()) {
        if (!methods.has('GET')) continue;
        const path = `/${pathOf(template)}`;
        for (const headers of [{}, admin.headers]) {
          const get = await host.api(path, { headers });
          await get.arrayBuffer();
          const head = await host.api(path, { method: 'HEAD', headers });
          const body = await head.arrayBuffer();
          // Content-Length by presence: a body that changes between two calls (the audit log grows) may differ.
          const differs = ['content-type', 'cache-control', 'etag', 'vary'].filter(
            (name) => get.headers.get(name) !== head.headers.get(name),
          );
          if (get.headers.has('content-length') !== head.headers.has('content-length')) differs.push('content-length');
          if (head.status !== get.status || differs.length > 0 || body.byteLength > 0) {
            wrong.push(`HEAD ${template}: ${head.status} vs GET ${get.status}, differs in ${differs.join(', ')}`);
          }
        }
      }
      expect(wrong).toEqual([]);
    },
  );
});

/** Sends a raw GET of `path` and resolves with the status (fetch would refuse such a URL client-side in places). */
function rawGet(path: string): Promise<{ status: number; contentType: string; body: string }> {
  const target = new URL(app.url);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: target.hostname, port: target.port, path, method: 'GET', agent: false },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: String(response.headers['content-type'] ?? ''),
            body,
          }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

describe('over-long URLs', () => {
  test('get a 414 problem+json from the app past 4 KB, on known and unknown routes', async () => {
    const { MAX_URL_BYTES } = await import('../lib/endpoint');
    const filler = 'x'.repeat(MAX_URL_BYTES);
    for (const path of [`/api/programs?q=${filler}`, `/api/no/such/${filler}`, `/api/auth/me?${filler}`]) {
      const answer = await rawGet(path);
      expect(answer.status, path.slice(0, 20)).toBe(414);
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(answer.body)).toMatchObject({ status: 414, type: 'urn:aada:problem:uri-too-long' });
    }
    // Just under the bound: served as usual.
    const under = await rawGet(`/api/programs?q=${'x'.repeat(MAX_URL_BYTES - 40)}`);
    expect(under.status).not.toBe(414);
  });

  test('get a 414 from the local host past Node’s 16 KB header limit (the app never sees them)', async () => {
    const answer = await rawGet(`/api/programs?q=${'x'.repeat(20 * 1024)}`);
    expect(answer.status).toBe(414);
    expect((await app.api('/health')).status).toBe(200);
  });
});

describe('the fallback function', () => {
  test('sorts after every other function by name, as Azure maps routes in that order', async () => {
    const { FALLBACK_FUNCTION } = await import('../lib/endpoint');
    const { registeredRoutes } = await import('../dev/functions-host');
    const names = registeredRoutes().map((route) => route.name);
    expect(names).toContain(FALLBACK_FUNCTION);
    // FunctionMetadataManager orders by name with StringComparer.OrdinalIgnoreCase.
    const ordinalIgnoreCase = (a: string, b: string) => {
      const x = a.toUpperCase();
      const y = b.toUpperCase();
      return x < y ? -1 : x > y ? 1 : 0;
    };
    expect([...names].sort(ordinalIgnoreCase).at(-1)).toBe(FALLBACK_FUNCTION);
  });

  test('every request of the route table reaches the same function under Azure’s order as under precedence', async () => {
    const { compareOrdinalIgnoreCase, registeredRoutes } = await import('../dev/functions-host');
    const { comparePrecedence, compileTemplate, matchTemplate } = await import('../lib/route-templates');
    const functions = registeredRoutes().map((route) => ({
      ...route,
      template: compileTemplate(route.route, route.name),
    }));
    const byPrecedence = [...functions].sort((a, b) => comparePrecedence(a.template.precedence, b.template.precedence));
    const byName = [...functions].sort((a, b) => compareOrdinalIgnoreCase(a.name, b.name));
    const pick = (order: typeof functions, method: string, segments: string[]) =>
      order.find((fn) => fn.methods.includes(method) && matchTemplate(fn.template, segments) !== null)?.name;
    const differ: string[] = [];
    for (const template of (await templates()).keys()) {
      const segments = pathOf(template).split('/');
      // OPTIONS is left out: every function takes it, and its answer depends on the path alone.
      for (const method of [...METHODS, 'HEAD']) {
        const [azureFn, localFn] = [pick(byName, method, segments), pick(byPrecedence, method, segments)];
        if (azureFn !== localFn)
          differ.push(`${method} ${template}: Azure calls ${azureFn}, the local host ${localFn}`);
      }
    }
    // A difference is a route Azure would serve with the wrong function: name the specific function so it
    // sorts first, or constrain the general template.
    expect(differ).toEqual([]);
  });

  test('is left out of the OpenAPI document', async () => {
    const document = (await (await app.api('/openapi.json')).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(document.paths).filter((path) => path.includes('{path}'))).toEqual([]);
  });
});
