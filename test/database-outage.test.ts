// The database outage drill (issue 9, finding 5): the app runs on a PostgreSQL of this file's own, under
// bounded concurrent reads and writes; the server is stopped as a crash stops it (immediate shutdown), kept
// down for a few seconds and started again on the same data. Every request must be answered: while the
// database is down within DB_CONNECT_TIMEOUT_SECONDS + 1 s with a 503 problem+json and Retry-After, and
// with a 2xx again within 2 s of the server accepting connections. Every acknowledged (2xx) write, and the
// audit row of every 2xx answer, must be there afterwards. The figures are printed with the result.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { describe, expect, test } from 'vitest';
import {
  answers,
  freePort,
  prepareDatabase,
  REPO_ROOT,
  type RunningServer,
  startEmbeddedPostgres,
} from '../dev/database';
import { useTestApp } from './helpers/app';
import type { TestDatabase } from './helpers/database';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const CONNECT_TIMEOUT_SECONDS = 2;
/** The promise under test: no answer during the outage takes longer than this. */
const OUTAGE_ANSWER_BOUND_MS = (CONNECT_TIMEOUT_SECONDS + 1) * 1000;
/** And a 2xx comes this soon after the server accepts connections again. */
const RECOVERY_BOUND_MS = 2000;
const WARM_UP_MS = 1500;
const OUTAGE_MS = 4000;
/** Load goes on this long after the server is back, so the recovery and what follows are seen. */
const AFTER_RECOVERY_MS = 3000;
/** A request still unanswered after this counts as unanswered (the outage finding saw some at 15 s). */
const UNANSWERED_AFTER_MS = 15_000;
const READERS = 3;
const WRITERS = 3;

/** The file's own server: the one the drill stops (then undefined) and starts again. */
let server: RunningServer | undefined;
let serverPort = 0;
let dataDir = '';
const password = randomBytes(12).toString('hex');
let databaseAdminUrl = '';

function startServer(): Promise<RunningServer> {
  // Durable like Azure (fsync on): an acknowledged commit must survive the crash for real.
  return startEmbeddedPostgres({ dataDir, port: serverPort, persistent: true, durable: true, password });
}

async function ownDatabase(): Promise<TestDatabase & { appUrl: string }> {
  dataDir = path.join(REPO_ROOT, '.data', `outage-postgres-${process.pid}`);
  await rm(dataDir, { recursive: true, force: true });
  serverPort = await freePort();
  server = await startServer();
  const name = `aada_outage_${randomBytes(6).toString('hex')}`;
  const prepared = await prepareDatabase(server.adminUrl, name);
  databaseAdminUrl = prepared.adminUrl;
  const sql = postgres(databaseAdminUrl, { max: 2, onnotice: () => {} });
  return {
    name,
    url: databaseAdminUrl,
    sql,
    appUrl: prepared.appUrl,
    // The server goes with the database: nothing else uses it.
    drop: async () => {
      await sql.end({ timeout: 1 });
      await server?.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

const app = useTestApp({
  env: { DB_CONNECT_TIMEOUT_SECONDS: String(CONNECT_TIMEOUT_SECONDS), DB_POOL_MAX: '4' },
  database: ownDatabase,
  fixtures: ['outage-routes.ts'],
  bootTimeoutMs: 120_000,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stops the server as a crash would: SIGQUIT to the postmaster is `pg_ctl stop -m immediate`. */
async function crashServer(): Promise<void> {
  const pid = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  process.kill(pid, 'SIGQUIT');
  // Its stop() would wait for an exit that already happened.
  server = undefined;
  for (let waited = 0; await answers(serverPort, 200); waited += 50) {
    if (waited > 10_000) throw new Error('the server still accepts connections 10 s after SIGQUIT');
    await sleep(50);
  }
}

interface Answer {
  kind: 'read' | 'write';
  /** ms on performance.now()'s clock. */
  started: number;
  ended: number;
  /** 0: no answer (a network error or no answer within UNANSWERED_AFTER_MS). */
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  requestId: string | null;
  /** The student a 2xx write created. */
  createdId?: string;
}

async function call(kind: Answer['kind'], pathAndQuery: string, init: RequestInit): Promise<Answer> {
  const started = performance.now();
  try {
    const response = await app.api(pathAndQuery, { ...init, signal: AbortSignal.timeout(UNANSWERED_AFTER_MS) });
    const text = await response.text();
    const answer: Answer = {
      kind,
      started,
      ended: performance.now(),
      status: response.status,
      contentType: response.headers.get('content-type'),
      retryAfter: response.headers.get('retry-after'),
      requestId: response.headers.get('x-request-id'),
    };
    if (kind === 'write' && response.status === 201) answer.createdId = (JSON.parse(text) as { id: string }).id;
    return answer;
  } catch {
    return { kind, started, ended: performance.now(), status: 0, contentType: null, retryAfter: null, requestId: null };
  }
}

/** Reads and writes in a loop until `running()` says stop; each worker waits for its answer before the next. */
async function drive(accounts: RoleAccounts, student: TestUser, running: () => boolean): Promise<Answer[]> {
  const answers: Answer[] = [];
  let writes = 0;
  const reader = async () => {
    while (running()) {
      const answer = await call('read', `/students/${student.id}`, { headers: accounts.staff.headers });
      answers.push(answer);
      // A failure answers fast: pace the retries as a client honouring Retry-After at its shortest would.
      if (answer.status !== 200) await sleep(25);
    }
  };
  const writer = async () => {
    while (running()) {
      const n = writes++;
      const body = JSON.stringify({
        email: `outage-${n}@example.test`,
        firstName: 'Outage',
        lastName: `Writer ${letters(n)}`,
      });
      const headers = { ...accounts.registrar.headers, 'Content-Type': 'application/json' };
      const answer = await call('write', '/students', { method: 'POST', headers, body });
      answers.push(answer);
      if (answer.status !== 201) await sleep(25);
    }
  };
  await Promise.all([...Array.from({ length: READERS }, reader), ...Array.from({ length: WRITERS }, writer)]);
  return answers;
}

const ms = (value: number) => Math.round(value);
/** 0 → a, 25 → z, 26 → ba …: names take letters only. */
const letters = (n: number): string =>
  n.toString(26).replace(/./g, (digit) => String.fromCharCode(97 + parseInt(digit, 26)));

describe('a connection lost under an open transaction', () => {
  // porsager/postgres#1208: postgres.js then sends its ROLLBACK to the closed socket from setImmediate, an
  // uncaught TypeError that ends the process (dev/patch-postgres.cjs guards it). Here the process lives on.
  test('answers 503, and the instance keeps serving', async () => {
    const pending = app.api('/fixture/transaction-sleep/10000', { method: 'POST' });
    let terminated = 0;
    for (let waited = 0; terminated === 0; waited += 50) {
      if (waited > 10_000) throw new Error('the sleeping transaction never showed in pg_stat_activity');
      await sleep(50);
      const [row] = await app.db.sql<{ n: number }[]>`
        select count(*)::int as n from (
          select pg_terminate_backend(pid) from pg_stat_activity
           where query like '%fixture_transaction_sleep%' and pid <> pg_backend_pid()) t`;
      terminated = row?.n ?? 0;
    }
    const response = await pending;
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    // Time for the immediate that crashed the process to run; then the same pool serves a change again.
    await sleep(200);
    const next = await app.api('/fixture/transaction-sleep/1', { method: 'POST' });
    expect(next.status).toBe(200);
  });
});

describe('a database outage under load', () => {
  test('every request is answered fast, service resumes within 2 s of the server, no acknowledged write is lost', async () => {
    const accounts = await createRoleAccounts(app.db.sql);
    const student = await createTestUser(app.db.sql, { roles: ['student'] });

    let loading = true;
    const load = drive(accounts, student, () => loading);
    await sleep(WARM_UP_MS);
    const crashAt = performance.now();
    await crashServer();
    const downAt = performance.now();
    await sleep(OUTAGE_MS);
    server = await startServer();
    // The server said "ready to accept connections": from here the app has 2 s to answer 2xx again.
    const acceptingAt = performance.now();
    await sleep(AFTER_RECOVERY_MS);
    loading = false;
    const all = await load;

    const unanswered = all.filter((answer) => answer.status === 0);
    const ok = all.filter((answer) => answer.status >= 200 && answer.status < 300);
    const refused = all.filter((answer) => answer.status === 503);
    const duringOutage = all.filter((answer) => answer.ended > crashAt && answer.started < acceptingAt);
    const slowest = Math.max(...duringOutage.map((answer) => answer.ended - answer.started));
    const firstOkAfter = Math.min(...ok.filter((answer) => answer.started > downAt).map((answer) => answer.ended));
    const acknowledged = ok.flatMap((answer) => (answer.createdId ? [answer.createdId] : []));

    // Read back on a connection of its own: the test's admin pool saw its server die too.
    const check = postgres(databaseAdminUrl, { max: 1, onnotice: () => {} });
    let stored: Set<string>;
    let audited: Set<string>;
    try {
      const ids = await check<{ id: string }[]>`select id from users where id = any(${acknowledged}::uuid[])`;
      stored = new Set(ids.map((row) => row.id));
      const requestIds = ok.flatMap((answer) => (answer.requestId ? [answer.requestId] : []));
      const rows = await check<{ request_id: string }[]>`
        select request_id from audit_log where request_id = any(${requestIds}::text[])`;
      audited = new Set(rows.map((row) => row.request_id));
    } finally {
      await check.end();
    }
    const lost = acknowledged.filter((id) => !stored.has(id));
    const unaudited = ok.filter((answer) => !answer.requestId || !audited.has(answer.requestId));

    console.info(
      `outage drill: ${all.length} requests (${ok.length} 2xx, ${refused.length} 503, ${unanswered.length} unanswered); ` +
        `${duringOutage.length} answered during the outage, slowest ${ms(slowest)} ms (bound ${OUTAGE_ANSWER_BOUND_MS}); ` +
        `first 2xx ${ms(firstOkAfter - acceptingAt)} ms after the server accepted connections (bound ${RECOVERY_BOUND_MS}); ` +
        `${acknowledged.length} acknowledged writes, ${lost.length} lost; ${unaudited.length} 2xx without an audit row`,
    );

    expect(unanswered).toEqual([]);
    // Load ran on both sides of the outage, and the outage was seen.
    expect(ok.filter((answer) => answer.ended < crashAt).length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    // Nothing but successes and 503s that say when to come back, as problem+json.
    expect(all.filter((answer) => answer.status !== 503 && (answer.status < 200 || answer.status >= 300))).toEqual([]);
    for (const answer of refused) {
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
      expect(answer.retryAfter).toMatch(/^\d+$/);
    }
    expect(slowest).toBeLessThanOrEqual(OUTAGE_ANSWER_BOUND_MS);
    expect(firstOkAfter - acceptingAt).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
    // Once back, it stays back: no 503 for a request sent half a second after the first success.
    expect(refused.filter((answer) => answer.started > firstOkAfter + 500)).toEqual([]);
    expect(lost).toEqual([]);
    // A 2xx left only once its audit row was durable (a PHI read) or committed with the change (a write).
    expect(unaudited).toEqual([]);
  }, 60_000);
});
