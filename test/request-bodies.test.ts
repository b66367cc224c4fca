// Request bodies of every size on every route that takes one: chunked and fixed-length bodies of 5 KB,
// 200 KB and 2 MB, anonymous, with a forged token and (over the limit) as a role the route allows. Bodies
// over a route's limit get a 413 problem+json, nothing gets a 5xx, and the host keeps serving.
//
// The requests go to two copies of the app in their own processes (test/fixtures/second-host.ts), so a
// crash shows as a dead process: one hands bodies over through the local host's web stream, the other
// the way Azure's HTTP stream proxy does (the Node IncomingMessage itself), where cancelling a body
// destroys the socket the answer has to go out on.
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import type { Role } from '../lib/access';
import type { DeclaredRoute } from '../lib/endpoint';
import { useTestApp } from './helpers/app';
import { inBatches } from './helpers/routes';
import { createTestUser } from './helpers/users';

const app = useTestApp();

const SIZES = [5 * 1024, 200 * 1024, 2 * 1024 * 1024];
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/** A token with a valid shape and a signature by nobody. */
const FORGED = 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmVkLWJ5LW5vYm9keQ';
/** No single request may take longer than this (generous: the machine may be busy with other tests). */
const REQUEST_TIMEOUT_MS = 20_000;
const CONCURRENCY = 8;

interface Host {
  label: string;
  process: ChildProcess;
  url: string;
  errors: string;
}

async function startSecondHost(label: string, env: Record<string, string>): Promise<Host> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'test', 'fixtures', 'second-host.ts')],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, APP_ENV: 'test', DATABASE_URL: process.env.DATABASE_URL, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const host: Host = { label, process: child, url: '', errors: '' };
  child.stderr?.on('data', (chunk) => {
    host.errors += chunk;
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  host.url = await new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`${label} exited (${code}): ${host.errors}`)));
  });
  return host;
}

interface Sent {
  status: number;
  contentType: string;
  body: string;
}

/**
 * Sends `size` bytes of JSON, chunked or with a Content-Length, and resolves with the answer. After an
 * early answer a chunked sender keeps sending (the host must drop the rest and keep the connection), a
 * fixed-length one hangs up (the host must cope with a client gone mid-body); a connection cut after
 * the answer is not an error. Not the toolkit's `send` (fetch): it can neither pace a chunked body nor
 * keep writing after the answer, which is what these tests are about, so this speaks node:http.
 */
function sendBody(
  agent: http.Agent,
  url: string,
  method: string,
  size: number,
  chunked: boolean,
  authorization: string | undefined,
): Promise<Sent> {
  const target = new URL(url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (!chunked) headers['content-length'] = String(size);
  if (authorization) headers.authorization = authorization;
  const body = Buffer.from(`{"pad":"${'x'.repeat(size - 10)}"}`);
  return new Promise<Sent>((resolve, reject) => {
    let answered = false;
    const request = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method, headers, agent },
      (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          if (!chunked && offset < body.length) request.destroy();
          resolve({
            status: response.statusCode ?? 0,
            contentType: String(response.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString(),
          });
        });
        response.on('error', reject);
      },
    );
    request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error('no answer in time')));
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    // 64 KB pieces: a chunked body arrives in many chunks, as from a browser or a proxy.
    let offset = 0;
    const pump = () => {
      while (offset < body.length && !request.destroyed) {
        const piece = body.subarray(offset, offset + 64 * 1024);
        offset += piece.length;
        if (!request.write(piece)) {
          request.once('drain', pump);
          return;
        }
      }
      if (!request.destroyed) request.end();
    };
    pump();
  });
}

/** A URL of the route with every parameter filled (a random uuid, or a real role name). */
function pathOf(route: string): string {
  return route.replace(/\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g, (_whole, name: string) =>
    name === 'role' ? 'student' : crypto.randomUUID(),
  );
}

interface Case {
  route: DeclaredRoute;
  method: string;
  size: number;
  chunked: boolean;
  caller: 'anonymous' | 'forged token' | 'allowed role';
}

let bodyRoutes: { route: DeclaredRoute; method: string }[] = [];
let limitOf: (route: DeclaredRoute) => number;
const tokens = new Map<Role, string>();
const hosts: Host[] = [];

beforeAll(async () => {
  const endpoint = await import('../lib/endpoint');
  limitOf = endpoint.bodyLimitOf;
  bodyRoutes = endpoint
    .declaredRoutes()
    .flatMap((route) =>
      route.methods.filter((method) => BODY_METHODS.has(method)).map((method) => ({ route, method })),
    );
  for (const { route } of bodyRoutes) {
    const role = route.access === 'public' ? undefined : route.access[0];
    if (role && !tokens.has(role)) tokens.set(role, (await createTestUser(app.db.sql, { roles: [role] })).token);
  }
  hosts.push(await startSecondHost('local host', {}));
  hosts.push(await startSecondHost('Azure-style stream proxy', { AZURE_STREAM_PROXY_BODIES: '1' }));
});

afterAll(async () => {
  for (const host of hosts) {
    if (host.process.exitCode !== null) continue;
    const exited = new Promise((resolve) => host.process.once('exit', resolve));
    host.process.kill('SIGTERM');
    await exited;
  }
});

function casesFor(): Case[] {
  const cases: Case[] = [];
  for (const { route, method } of bodyRoutes) {
    for (const size of SIZES) {
      for (const chunked of [true, false]) {
        cases.push({ route, method, size, chunked, caller: 'anonymous' });
        cases.push({ route, method, size, chunked, caller: 'forged token' });
        // Only bodies the route refuses before its handler runs: a valid small body would change data.
        if (route.access !== 'public' && size > limitOf(route)) {
          cases.push({ route, method, size, chunked, caller: 'allowed role' });
        }
      }
    }
  }
  return cases;
}

function authorizationFor(test: Case): string | undefined {
  if (test.caller === 'anonymous') return undefined;
  if (test.caller === 'forged token') return FORGED;
  return `Bearer ${tokens.get((test.route.access as readonly Role[])[0] as Role)}`;
}

/** What a user must get: 413 once the body is read past the limit; 401 when the token is refused first. */
function expectedStatus(test: Case): number | 'not 5xx, not 413' {
  const overLimit = test.size > limitOf(test.route);
  if (!reachesBody(test)) return 401;
  return overLimit ? 413 : 'not 5xx, not 413';
}

const reachesBody = (test: Case) => test.route.access === 'public' || test.caller === 'allowed role';

/**
 * Under the Azure-style proxy a cross-section: on public routes every size and framing with the forged
 * token (the finding's request), on protected ones a 2 MB chunked body as a role the route allows (read up
 * to the limit) and as anonymous (never read). The full matrix runs on the local host; the wrapper's code
 * path is the same on every route, and the pair stays bounded on a busy machine.
 */
const LARGEST = SIZES.at(-1) as number;
const azureCase = (test: Case) =>
  test.route.access === 'public'
    ? test.caller === 'forged token'
    : test.chunked && test.size === LARGEST && test.caller !== 'forged token';

describe.each([
  { hostIndex: 0, label: 'the local host', select: (_test: Case) => true },
  { hostIndex: 1, label: 'the Azure-style stream proxy', select: azureCase },
])('bodies of every size on every body route, through $label', ({ hostIndex, select }) => {
  test('over the limit a 413 problem+json, never a 5xx, and the process keeps serving', async () => {
    const host = hosts[hostIndex] as Host;
    expect(bodyRoutes.length).toBeGreaterThan(20); // the route table, not a hand-made list
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const cases = casesFor().filter(select);
    const started = performance.now();
    const results = await inBatches(
      cases.map((test) => async () => {
        const label = `${host.label}: ${test.method} ${test.route.route} ${test.size} B ${test.chunked ? 'chunked' : 'fixed-length'} as ${test.caller}`;
        try {
          const sent = await sendBody(
            agent,
            `${host.url}/${pathOf(test.route.route)}`,
            test.method,
            test.size,
            test.chunked,
            authorizationFor(test),
          );
          return { test, label, sent };
        } catch (error) {
          return { test, label, sent: { status: 0, contentType: '', body: String(error) } };
        }
      }),
      CONCURRENCY,
    );
    agent.destroy();
    const seconds = (performance.now() - started) / 1000;
    console.log(`${host.label}: ${cases.length} requests in ${seconds.toFixed(1)} s`);

    const wrong = results
      .filter(({ test, sent }) => {
        const expected = expectedStatus(test);
        if (expected === 'not 5xx, not 413') return sent.status === 0 || sent.status >= 500 || sent.status === 413;
        return sent.status !== expected;
      })
      .map(
        ({ test, label, sent }) =>
          `${label} → ${sent.status} (expected ${expectedStatus(test)}) ${sent.body.slice(0, 120)}`,
      );
    expect(wrong).toEqual([]);
    for (const { sent } of results.filter((result) => result.sent.status === 413)) {
      expect(sent.contentType).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(sent.body)).toMatchObject({ status: 413, type: 'urn:aada:problem:payload-too-large' });
    }
    expect(host.process.exitCode).toBeNull();
    expect((await fetch(`${host.url}/health`)).status).toBe(200);
    expect(host.errors).toBe('');
  }, 180_000);
});
