// The local Functions host (dev/functions-host.ts): real HTTP with fetch against a host on a free port.

import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type HostLogEntry,
  installFunctionsCoreStandIn,
  loadFunctionModules,
  registeredRoutes,
  type StartedHost,
  serializeCookie,
  startHost,
} from '../dev/functions-host';

// The stand-in must be in place before the fixture calls app.http(...): @azure/functions caches the lookup.
installFunctionsCoreStandIn();

type FixtureModule = typeof import('./fixtures/host-fixture-functions');
let fixture: FixtureModule['fixtureState'];
let host: StartedHost;
const logs: HostLogEntry[] = [];

beforeAll(async () => {
  await loadFunctionModules([path.join(__dirname, 'fixtures', 'host-fixture-functions.ts')]);
  // Same module instance as the one loadFunctionModules ran (vitest caches it).
  fixture = ((await import('./fixtures/host-fixture-functions')) as FixtureModule).fixtureState;
  host = await startHost({ port: 0, onLog: (entry) => logs.push(entry) });
});

afterAll(async () => {
  await host?.close();
});

const get = (p: string, init?: RequestInit) => fetch(`${host.url}${p}`, init);
const origin = () => `http://127.0.0.1:${host.port}`;

describe('stand-in for @azure/functions-core', () => {
  it('is what @azure/functions resolves under vitest (external dependency loaded by Node require)', () => {
    const req = createRequire(__filename);
    const core = req('@azure/functions-core') as Record<string, unknown>;
    for (const fn of ['registerFunction', 'registerHook', 'setProgrammingModel', 'getProgrammingModel', 'log']) {
      expect(typeof core[fn]).toBe('function');
    }
    expect((core.getProgrammingModel as () => { name: string })().name).toBe('@azure/functions');
    // And the library did register through it (not "test mode").
    const names = registeredRoutes().map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining(['hello', 'studentById', 'studentSearch', 'upload', 'stream']));
    expect(names).not.toContain('nightly'); // timer: registered, not an HTTP route
  });

  it('lists routes with the prefix, default methods and the function name as default route', () => {
    const byName = new Map(host.routes.map((r) => [r.name, r]));
    expect(byName.get('studentById')).toMatchObject({
      methods: ['GET'],
      route: 'students/{id}',
      url: '/api/students/{id}',
    });
    expect(byName.get('defaultsFn')).toMatchObject({
      methods: ['GET', 'POST'],
      route: 'defaultsFn',
      authLevel: 'anonymous',
    });
    expect(host.url).toBe(`http://127.0.0.1:${host.port}/api`);
  });

  it('ran the appStart hook before serving', () => {
    expect(fixture.appStartCalls).toBeGreaterThanOrEqual(1);
  });
});

describe('routing', () => {
  it('serves a literal route and runs preInvocation hooks', async () => {
    const res = await get('/hello');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello world');
    expect(res.headers.get('content-length')).toBe('11');
    expect(fixture.preInvocationSeen).toContain('hello');
    expect(logs.some((l) => l.category === 'user' && l.functionName === 'hello' && l.message === 'hello called')).toBe(
      true,
    );
  });

  it('passes decoded route parameters', async () => {
    const res = await get('/students/J%C3%BCrgen%20X');
    expect(await res.json()).toEqual({ fn: 'studentById', id: 'Jürgen X' });
  });

  it('prefers more literal segments regardless of registration order', async () => {
    expect(await (await get('/students/search?q=ann')).json()).toEqual({ fn: 'studentSearch', q: 'ann' });
    expect(await (await get('/students/searching')).json()).toEqual({ fn: 'studentById', id: 'searching' });
  });

  it('matches literal segments and the prefix case-insensitively, and ignores one trailing slash', async () => {
    const res = await fetch(`${origin()}/API/Students/SEARCH/?q=x`);
    expect(await res.json()).toEqual({ fn: 'studentSearch', q: 'x' });
  });

  it('applies constraints: guid', async () => {
    const id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    expect(await (await get(`/items/${id}`)).json()).toEqual({ fn: 'itemByGuid', id });
    const bad = await get('/items/not-a-guid');
    expect(bad.status).toBe(404);
    expect(await bad.text()).toBe('');
  });

  it('applies constraints: int vs alpha+minlength pick different functions', async () => {
    expect(await (await get('/numbers/42')).json()).toEqual({ fn: 'numberInt', n: '42' });
    expect(await (await get('/numbers/-7')).json()).toEqual({ fn: 'numberInt', n: '-7' });
    expect(await (await get('/numbers/abc')).json()).toEqual({ fn: 'numberAlpha', word: 'abc' });
    expect((await get('/numbers/a')).status).toBe(404); // too short for minlength(2)
    expect((await get('/numbers/99999999999')).status).toBe(404); // out of int range
    expect((await get('/numbers/4x')).status).toBe(404);
  });

  it('applies constraints: long, bool, regex', async () => {
    expect(await (await get('/long/99999999999')).json()).toEqual({ n: '99999999999' });
    expect((await get('/long/99999999999999999999')).status).toBe(404);
    expect(await (await get('/flags/TRUE')).json()).toEqual({ on: 'TRUE' });
    expect((await get('/flags/yes')).status).toBe(404);
    expect(await (await get('/codes/ab123')).json()).toEqual({ code: 'ab123' });
    expect(await (await get('/codes/AB1')).json()).toEqual({ code: 'AB1' }); // regex constraints ignore case
    expect((await get('/codes/abc1')).status).toBe(404);
  });

  it('supports optional parameters', async () => {
    expect(await (await get('/greet/ann')).json()).toEqual({ name: 'ann' });
    expect(await (await get('/greet')).json()).toEqual({ name: null });
    expect((await get('/greet/ann/extra')).status).toBe(404);
  });

  it('supports catch-all parameters and complex segments', async () => {
    expect(await (await get('/files/a/b/c.txt')).json()).toEqual({ path: 'a/b/c.txt' });
    expect(await (await get('/files')).json()).toEqual({ path: null });
    expect(await (await get('/downloads/report.final.pdf')).json()).toEqual({ name: 'report.final', ext: 'pdf' });
  });

  it('dispatches the same route to different functions by method', async () => {
    expect(await (await get('/things/5')).json()).toEqual({ fn: 'thingGet', id: '5' });
    expect(await (await get('/things/5', { method: 'DELETE' })).json()).toEqual({ fn: 'thingDelete', id: '5' });
  });

  it('defaults to GET and POST when no methods are declared', async () => {
    expect(await (await get('/defaultsFn')).json()).toEqual({ method: 'GET' });
    expect(await (await get('/defaultsFn', { method: 'POST' })).json()).toEqual({ method: 'POST' });
    expect((await get('/defaultsFn', { method: 'PUT' })).status).toBe(404);
  });

  it('answers 404 with an empty body for an unknown path, a wrong method, and outside the prefix', async () => {
    for (const [p, method] of [
      ['/api/nope', 'GET'],
      ['/api/hello', 'POST'],
      ['/api/hello', 'DELETE'],
      ['/hello', 'GET'],
      ['/', 'GET'],
    ] as const) {
      const res = await fetch(`${origin()}${p}`, { method });
      expect(res.status, `${method} ${p}`).toBe(404);
      expect(await res.text()).toBe('');
    }
  });

  it('passes the query string (repeated keys, decoding) and overwrites x-forwarded-for with the socket address', async () => {
    const res = await get('/echo?x=1&x=2&y=%20z', { headers: { 'x-forwarded-for': '203.0.113.9', 'x-custom': 'v' } });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.query).toEqual({ x: ['1', '2'], y: [' z'] });
    expect(body.xForwardedFor).toBe('127.0.0.1');
    expect(body.custom).toBe('v');
    expect(body.url).toBe(`${origin()}/api/echo?x=1&x=2&y=%20z`);
  });

  it('passes a small request body', async () => {
    const res = await get('/echo', { method: 'PUT', body: 'héllo', headers: { 'content-type': 'text/plain' } });
    expect(((await res.json()) as { body: string }).body).toBe('héllo');
  });
});

describe('bodies', () => {
  it('streams a response body: each chunk reaches the client before the producer writes the next', async () => {
    const res = await get('/stream');
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const reads: string[] = [];
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      reads.push(decoder.decode(value));
      fixture.streamChunksRead++;
    }
    // The producer is blocked until we read, so a buffering host would deliver nothing (the producer
    // would wait its 10 s per chunk) or everything at once; a streaming one delivers chunk by chunk.
    expect(reads).toEqual(['chunk-0\n', 'chunk-1\n', 'chunk-2\n', 'chunk-3\n']);
    expect(fixture.streamFinishedAt).toBeGreaterThan(0);
  });

  it('streams an AsyncIterable body', async () => {
    const res = await get('/iterable');
    expect(await res.text()).toBe('part-0;part-1;part-2;');
  });

  it('streams a 20 MB request body into the handler without buffering it', async () => {
    const total = 20 * 1024 * 1024;
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let sent = 0;
    let clientDoneAt = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) {
          clientDoneAt = performance.now();
          controller.close();
          return;
        }
        controller.enqueue(chunk);
        sent += chunk.byteLength;
      },
    });
    const res = await get('/upload', { method: 'POST', body, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(200);
    const result = (await res.json()) as { bytes: number; chunks: number; largestChunk: number };
    expect(result.bytes).toBe(total);
    expect(result.chunks).toBeGreaterThan(10);
    expect(result.largestChunk).toBeLessThan(total / 4);
    // The handler was running before the client had produced the whole body: nothing waited for it.
    expect(fixture.uploadHandlerStartedAt).toBeGreaterThan(0);
    expect(fixture.uploadHandlerStartedAt).toBeLessThan(clientDoneAt);
  });

  it('rejects a declared Content-Length over 100 MB with an empty 413', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: host.port,
          path: '/api/upload',
          method: 'POST',
          headers: { 'content-length': String(100 * 1024 * 1024 + 1) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            text += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.write('x'.repeat(1024)); // only a little of the announced body
    });
    expect(status).toBe(413);
    expect(body).toBe('');
  });

  it('copes with handlers that stop reading a body: answers, drops the rest, keeps the connection and serves on', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const body = Buffer.alloc(2 * 1024 * 1024, 'x');
    const post = (p: string, chunked: boolean) =>
      new Promise<{ status: number; socket: unknown }>((resolve, reject) => {
        const headers: Record<string, string> = chunked ? {} : { 'content-length': String(body.length) };
        const req = http.request(
          { host: '127.0.0.1', port: host.port, path: p, method: 'POST', headers, agent },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, socket: req.socket }));
          },
        );
        req.on('error', reject);
        // in pieces, so a chunked body arrives as many chunks
        for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
        req.end();
      });
    try {
      const sockets = new Set<unknown>();
      for (const p of ['/api/stopsReading', '/api/cancelsBody']) {
        for (const chunked of [true, false]) {
          const answer = await post(p, chunked);
          expect(answer.status, `${p} ${chunked ? 'chunked' : 'fixed-length'}`).toBe(200);
          sockets.add(answer.socket);
        }
      }
      expect(sockets.size).toBe(1); // the rest was read and dropped: one connection carried all four
    } finally {
      agent.destroy();
    }
    expect((await get('/hello')).status).toBe(200);
  });

  it('writes several Set-Cookie headers with all attributes', async () => {
    const res = await get('/cookies');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-extra')).toBe('yes');
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.getSetCookie()).toEqual([
      'session=abc%20123; Max-Age=3600; Path=/; HttpOnly; SameSite=Strict; Secure',
      'theme=dark; Domain=example.test; Expires=Tue, 01 Jan 2030 00:00:00 GMT; SameSite=Lax',
      'gone=; Max-Age=0; SameSite=None; Secure',
    ]);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('maps an undefined result to 204 and keeps status and headers of a plain init object (minus hop-by-hop headers)', async () => {
    const none = await get('/nothing');
    expect(none.status).toBe(204);
    expect(await none.text()).toBe('');
    const created = await get('/created', { method: 'POST' });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/things/1');
    expect(await created.json()).toEqual({ id: 1 });
  });

  it('answers 500 with an empty body when a handler throws, logs it, and keeps serving', async () => {
    const res = await get('/boom');
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('');
    expect(logs.some((l) => l.level === 'error' && l.functionName === 'boom' && l.message.includes('kaboom'))).toBe(
      true,
    );
    expect((await get('/hello')).status).toBe(200);
  });
});

describe('host lifecycle', () => {
  it('reads routePrefix from host.json (empty prefix and a custom one) and prints the route table', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'host-json-'));
    const noPrefix = path.join(dir, 'none.json');
    const v1 = path.join(dir, 'v1.json');
    fs.writeFileSync(noPrefix, JSON.stringify({ version: '2.0', extensions: { http: { routePrefix: '' } } }));
    fs.writeFileSync(v1, JSON.stringify({ version: '2.0', extensions: { http: { routePrefix: '/v1/' } } }));
    const printed = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const a = await startHost({ hostJsonPath: noPrefix, printRoutes: true, onLog: () => undefined });
    const b = await startHost({ hostJsonPath: v1, onLog: () => undefined });
    try {
      const table = printed.mock.calls.map((c) => String(c[0])).join('\n');
      expect(table).toContain('Functions:');
      expect(table).toContain(`  hello: [GET] http://localhost:${a.port}/hello`);
      expect(table).toContain(`  defaultsFn: [GET,POST] http://localhost:${a.port}/defaultsFn`);
      expect(table).toContain('  nightly: timerTrigger');
      expect(a.url).toBe(`http://127.0.0.1:${a.port}`);
      expect(await (await fetch(`${a.url}/hello`)).text()).toBe('hello world');
      expect((await fetch(`${a.url}/api/hello`)).status).toBe(404);
      expect(b.url).toBe(`http://127.0.0.1:${b.port}/v1`);
      expect(await (await fetch(`${b.url}/greet/x`)).json()).toEqual({ name: 'x' });
    } finally {
      printed.mockRestore();
      await a.close();
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() waits for in-flight requests, then runs appTerminate hooks', async () => {
    const h = await startHost({ onLog: () => undefined });
    const terminateBefore = fixture.appTerminateCalls;
    const pending = fetch(`${h.url}/slow`).then(async (r) => ({
      status: r.status,
      text: await r.text(),
      at: performance.now(),
    }));
    // wait until the handler runs
    const startedBefore = fixture.slowStarted;
    await vi.waitFor(() => expect(fixture.slowStarted).toBeGreaterThan(startedBefore), { timeout: 2000, interval: 5 });
    const closed = h.close().then(() => performance.now());
    const [response, closedAt] = await Promise.all([pending, closed]);
    expect(response).toMatchObject({ status: 200, text: 'slow done' });
    expect(closedAt).toBeGreaterThanOrEqual(response.at);
    expect(fixture.appTerminateCalls).toBe(terminateBefore + 1);
    // no longer accepting
    await expect(fetch(`${h.url}/hello`)).rejects.toThrow();
    // idempotent
    await h.close();
    expect(fixture.appTerminateCalls).toBe(terminateBefore + 1);
  });
});

describe('cookie serialization', () => {
  it('rejects invalid names and accepts epoch-millisecond expiry', () => {
    expect(() => serializeCookie({ name: 'bad name', value: 'x' })).toThrow(/cookie name/);
    expect(serializeCookie({ name: 'a', value: 'b', expires: 0 })).toBe('a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
  });
});
