// The load scenarios and the main SQL query behind each one, in one place.
//
// A scenario is one request shape driven by autocannon (or, for the roster, walked page by page).
// Its main query is what EXPLAIN (ANALYZE, BUFFERS) shows for the index comparison: built with the
// API's own builders where lib/ exports them (the student list, a user by id), so the plan is the
// plan of the exact SQL the route sends; written out here only where the query still lives inside a
// function module (the sign-in lookup), since importing a function module would register its routes.
// Such a copy must follow the route: it names the function it mirrors.
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { auditPageQuery, auditSummaryQuery } from '../lib/audit-trail';
import { emailBlindIndex } from '../lib/crypto';
import { enrollmentPageQuery } from '../lib/enrollments';
import { problemType, ROUTE_NOT_FOUND_SLUG } from '../lib/errors';
import { cataloguePageQuery } from '../lib/programs';
import { studentPageQuery } from '../lib/students';
import { NameSearchInput, userColumns } from '../lib/users';
import { drive, type LoadResult, walkPages } from './load';
import { BENCH_DOMAIN, BENCH_NAME_PREFIX } from './school';

/** What the scenarios need to know about the running app and the data (filled in by bench/run.ts). */
export interface BenchContext {
  /** Base URL with the route prefix: http://127.0.0.1:PORT/api */
  api: string;
  /** Authorization headers of a signed-in admin and of a signed-in student. */
  admin?: Record<string, string>;
  student?: { id: string; headers: Record<string, string> };
  /** A signed-in finance clerk (posts payments). */
  finance?: Record<string, string>;
  /** A student with enrollments (for the enrollments scenario). */
  enrolledStudentId?: string;
  studentsDeep?: DeepCursor;
  auditDeep?: DeepCursor;
  catalogueEtag?: string;
  /** Active accounts to sign in as, in turn, and their password. */
  signIn?: { emails: string[]; password: string };
}

export interface DeepCursor {
  cursor: string;
  /** Rows before the page it opens. */
  depth: number;
}

type Sql = postgres.Sql;
// Any row type: the queries are only EXPLAINed, never read.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Query = postgres.PendingQuery<any>;

interface RequestShape {
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  nextBody?: () => string;
  nextHeaders?: () => Record<string, string>;
  alsoExpected?: readonly number[];
}

export interface Scenario {
  key: string;
  title: string;
  /** Run again with the seed's indexes dropped, then rebuilt. */
  indexSensitive: boolean;
  /** Walked page by page, one request at a time, instead of driven by autocannon. */
  sequential?: boolean;
  /** The request, or the reason it cannot be made with this context. */
  request(ctx: BenchContext): RequestShape | string;
  /** The SQL the route runs for that request (EXPLAINed before and after the index change). */
  mainQuery?(sql: Sql, ctx: BenchContext): Query | null;
}

const ALL = { kind: 'all' } as const;
const STUDENT_PAGE = 50;
/** The roster is read with the largest page the API allows. */
const ROSTER_PAGE = 200;

const needsAdmin = (ctx: BenchContext) => ctx.admin ?? 'no admin token (sign-in unavailable)';
const decodeCursor = <T>(cursor: string) => JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as T;

export const SCENARIOS: readonly Scenario[] = [
  {
    key: 'ping',
    title: 'ceiling: select 1',
    indexSensitive: false,
    request: () => ({ path: '/bench/ping' }),
    mainQuery: (sql) => sql`select 1`,
  },
  {
    key: 'ping-audited',
    title: 'ceiling: signed in, one indexed read, its audit row',
    indexSensitive: false,
    request: (ctx) =>
      ctx.student ? { path: '/bench/ping-audited', headers: ctx.student.headers } : 'no student token',
    mainQuery: (sql, ctx) => (ctx.student ? sql`select 1 as ok from users where id = ${ctx.student.id}` : null),
  },
  {
    key: 'me',
    title: 'GET auth/me',
    indexSensitive: true,
    request: (ctx) => (ctx.student ? { path: '/auth/me', headers: ctx.student.headers } : 'no student token'),
    // lib/users findUserById
    mainQuery: (sql, ctx) =>
      ctx.student ? sql`select ${userColumns(sql)} from users u where u.id = ${ctx.student.id}` : null,
  },
  {
    key: 'catalogue',
    title: 'GET programs',
    indexSensitive: false,
    request: () => ({ path: '/programs' }),
    mainQuery: (sql) => cataloguePageQuery(sql, undefined, STUDENT_PAGE),
  },
  {
    key: 'catalogue-304',
    title: 'GET programs + If-None-Match',
    indexSensitive: false,
    request: (ctx) =>
      ctx.catalogueEtag
        ? { path: '/programs', headers: { 'If-None-Match': ctx.catalogueEtag }, alsoExpected: [304] }
        : 'the catalogue gave no ETag',
  },
  {
    key: 'students-first',
    title: 'GET students?limit=50',
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string' ? admin : { path: `/students?limit=${STUDENT_PAGE}`, headers: admin };
    },
    mainQuery: (sql) => studentPageQuery(sql, {}, ALL, undefined, STUDENT_PAGE),
  },
  {
    key: 'students-deep',
    title: 'GET students, deep cursor',
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      if (typeof admin === 'string') return admin;
      if (!ctx.studentsDeep) return 'no deep cursor (the student list could not be walked)';
      return { path: `/students?limit=${STUDENT_PAGE}&cursor=${ctx.studentsDeep.cursor}`, headers: admin };
    },
    mainQuery: (sql, ctx) =>
      ctx.studentsDeep
        ? studentPageQuery(sql, {}, ALL, decodeCursor<[string, string]>(ctx.studentsDeep.cursor), STUDENT_PAGE)
        : null,
  },
  {
    key: 'students-search',
    title: `GET students?name=${BENCH_NAME_PREFIX}`,
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string'
        ? admin
        : { path: `/students?limit=${STUDENT_PAGE}&name=${BENCH_NAME_PREFIX}`, headers: admin };
    },
    mainQuery: (sql) =>
      studentPageQuery(sql, { name: NameSearchInput.parse(BENCH_NAME_PREFIX) }, ALL, undefined, STUDENT_PAGE),
  },
  {
    key: 'roster',
    title: `whole roster, pages of ${ROSTER_PAGE}`,
    indexSensitive: true,
    sequential: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string' ? admin : { path: `/students?limit=${ROSTER_PAGE}`, headers: admin };
    },
    // Every page runs the students-deep query with a cursor; its plan is printed there.
  },
  {
    key: 'enrollments',
    title: 'GET enrollments?studentId=',
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      if (typeof admin === 'string') return admin;
      if (!ctx.enrolledStudentId) return 'no enrolled student found';
      return { path: `/enrollments?studentId=${ctx.enrolledStudentId}`, headers: admin };
    },
    // As an admin (scope: all), first page of 50.
    mainQuery: (sql, ctx) =>
      ctx.enrolledStudentId
        ? enrollmentPageQuery(sql, { studentId: ctx.enrolledStudentId }, ALL, undefined, STUDENT_PAGE)
        : null,
  },
  {
    key: 'audit-first',
    title: 'GET audit/logs?limit=50',
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string' ? admin : { path: `/audit/logs?limit=${STUDENT_PAGE}`, headers: admin };
    },
    mainQuery: (sql) => auditPage(sql, undefined),
  },
  {
    key: 'audit-deep',
    title: 'GET audit/logs, deep cursor',
    indexSensitive: true,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      if (typeof admin === 'string') return admin;
      if (!ctx.auditDeep) return 'no deep cursor (the audit log could not be walked)';
      return { path: `/audit/logs?limit=${STUDENT_PAGE}&cursor=${ctx.auditDeep.cursor}`, headers: admin };
    },
    mainQuery: (sql, ctx) =>
      ctx.auditDeep ? auditPage(sql, decodeCursor<[string, string]>(ctx.auditDeep.cursor)) : null,
  },
  {
    key: 'audit-summary',
    title: 'GET audit/summary?days=366 (closed days rolled up)',
    indexSensitive: false,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string' ? admin : { path: '/audit/summary?days=366', headers: admin };
    },
    mainQuery: (sql) => auditSummaryQuery(sql, 366),
  },
  {
    key: 'payment-post',
    title: 'POST students/{id}/payments (finance, a fresh Idempotency-Key each)',
    indexSensitive: false,
    request: (ctx) => {
      if (!ctx.finance || !ctx.student) return 'no finance or student token';
      return {
        path: `/students/${ctx.student.id}/payments`,
        method: 'POST',
        headers: { ...ctx.finance, 'Content-Type': 'application/json' },
        body: JSON.stringify({ method: 'cash', amountCents: 1_000 }),
        nextHeaders: () => ({ 'Idempotency-Key': randomUUID() }),
      };
    },
  },
  {
    key: 'payment-replay',
    title: 'POST students/{id}/payments (finance, one Idempotency-Key replayed: the stored answer)',
    indexSensitive: false,
    request: (ctx) => {
      if (!ctx.finance || !ctx.student) return 'no finance or student token';
      // The probe posts the payment; every measured request is its replay (same key, same body).
      return {
        path: `/students/${ctx.student.id}/payments`,
        method: 'POST',
        headers: { ...ctx.finance, 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID() },
        body: JSON.stringify({ method: 'cash', amountCents: 1_000 }),
      };
    },
  },
  {
    key: 'ledger-history',
    title: 'GET students/{id}/ledger (finance: one student’s history, first page)',
    indexSensitive: false,
    request: (ctx) =>
      ctx.finance && ctx.student
        ? { path: `/students/${ctx.student.id}/ledger?limit=50`, headers: ctx.finance }
        : 'no finance or student token',
  },
  {
    key: 'balances-page',
    title: 'GET ledger/balances?limit=50 (finance: a page of students’ balances)',
    indexSensitive: false,
    request: (ctx) => (ctx.finance ? { path: '/ledger/balances?limit=50', headers: ctx.finance } : 'no finance token'),
  },
  {
    key: 'statement',
    title: 'GET students/{id}/statement (a student, their own, JSON)',
    indexSensitive: false,
    request: (ctx) =>
      ctx.student
        ? { path: `/students/${ctx.student.id}/statement`, headers: ctx.student.headers }
        : 'no student token',
  },
  {
    key: 'dashboard',
    title: 'GET dashboard (the office: every count in one statement)',
    indexSensitive: false,
    request: (ctx) => {
      const admin = needsAdmin(ctx);
      return typeof admin === 'string' ? admin : { path: '/dashboard', headers: admin };
    },
  },
  {
    key: 'login',
    title: 'POST auth/login',
    indexSensitive: false,
    request: (ctx) => {
      const signIn = ctx.signIn;
      if (!signIn || signIn.emails.length === 0) return 'no accounts to sign in as';
      let turn = 0;
      // A different account each time, as at the start of a school day.
      const nextBody = () =>
        JSON.stringify({
          email: signIn.emails[turn++ % signIn.emails.length],
          password: signIn.password,
          client: 'tool',
        });
      return { path: '/auth/login', method: 'POST', headers: { 'Content-Type': 'application/json' }, nextBody };
    },
    // functions/auth.ts findAccount (the Argon2id verification that follows costs far more)
    mainQuery: (sql, ctx) =>
      ctx.signIn?.emails[0]
        ? sql`select ${userColumns(sql)}, u.password_hash from users u
               where u.email_blind_index = ${emailBlindIndex(ctx.signIn.emails[0])}`
        : null,
  },
  {
    key: 'login-unknown',
    title: 'POST auth/login, unknown email',
    indexSensitive: false,
    // An unknown address must cost what a real sign-in costs (a decoy Argon2id verification), or its
    // timing would tell who has an account. Never the same address twice: no lockout kicks in.
    request: () => {
      let turn = 0;
      const nextBody = () =>
        JSON.stringify({ email: `nobody${turn++}@${BENCH_DOMAIN}`, password: 'Not-The-Password-1', client: 'tool' });
      return {
        path: '/auth/login',
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        nextBody,
        alsoExpected: [401],
      };
    },
  },
];

// The audit list's own query without filters (admin: newest first, keyset on (occurred_at, id)).
function auditPage(sql: Sql, after: [string, string] | undefined): Query {
  return auditPageQuery(sql, { limit: STUDENT_PAGE, cursor: after });
}

export function scenario(key: string): Scenario {
  const found = SCENARIOS.find((one) => one.key === key);
  if (!found) throw new Error(`no scenario ${key}`);
  return found;
}

export interface ScenarioOutcome {
  key: string;
  title: string;
  /** Why it did not run ("route not available yet", a missing token, …). */
  skipped?: string;
  result?: LoadResult;
  /** For the roster: how many rows the walk read. */
  itemsRead?: number;
}

/**
 * One request first: the app's route-not-found problem (a 404 that is not a missing record) says no
 * function serves this route (yet); so does an empty 404, the host's own answer before the app had one.
 */
async function probe(url: string, shape: RequestShape): Promise<string | null> {
  const response = await fetch(url, {
    method: shape.method ?? 'GET',
    headers: { ...shape.headers, ...shape.nextHeaders?.() },
    body: shape.nextBody ? shape.nextBody() : shape.body,
  });
  const text = await response.text();
  if (response.status !== 404) return null;
  return text === '' || problemTypeOf(text) === problemType(ROUTE_NOT_FOUND_SLUG)
    ? 'route not available yet (404)'
    : null;
}

function problemTypeOf(text: string): unknown {
  try {
    return (JSON.parse(text) as { type?: unknown }).type;
  } catch {
    return undefined;
  }
}

/** Runs one scenario against the app at `ctx.api`: a probe, a short warm-up, then the measured run. */
export async function runScenario(
  one: Scenario,
  ctx: BenchContext,
  load: {
    connections: number;
    durationSeconds: number;
    warmupSeconds?: number;
    /** Called between warm-up and measurement (bench/run.ts waits there for the server to go idle). */
    settle?: () => Promise<void>;
  },
): Promise<ScenarioOutcome> {
  const shape = one.request(ctx);
  if (typeof shape === 'string') return { key: one.key, title: one.title, skipped: shape };
  const url = `${ctx.api}${shape.path}`;
  const missing = await probe(url, shape);
  if (missing) return { key: one.key, title: one.title, skipped: missing };
  if (one.sequential) {
    const walk = await walkPages(url, shape.headers ?? {});
    return { key: one.key, title: one.title, result: walk.result, itemsRead: walk.items };
  }
  const options = {
    url,
    connections: load.connections,
    method: shape.method ?? 'GET',
    headers: shape.headers ?? {},
    ...(shape.body !== undefined ? { body: shape.body } : {}),
    ...(shape.nextBody ? { nextBody: shape.nextBody } : {}),
    ...(shape.nextHeaders ? { nextHeaders: shape.nextHeaders } : {}),
    alsoExpected: shape.alsoExpected ?? [],
  } as const;
  const warmup = load.warmupSeconds ?? 1;
  if (warmup > 0) await drive({ ...options, durationSeconds: warmup });
  await load.settle?.();
  return { key: one.key, title: one.title, result: await drive({ ...options, durationSeconds: load.durationSeconds }) };
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of a query, as text lines: run `runs` times (one execution of a
 * sub-millisecond query is mostly noise) and the plan with the median execution time kept.
 */
export async function explain(sql: Sql, query: () => Query, runs = 3): Promise<string[]> {
  const plans: { lines: string[]; ms: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const rows = await sql<{ 'QUERY PLAN': string }[]>`explain (analyze, buffers) ${query()}`;
    const lines = rows.map((row) => row['QUERY PLAN']);
    const time = lines.find((line) => line.startsWith('Execution Time:'));
    plans.push({ lines, ms: Number(/([\d.]+) ms/.exec(time ?? '')?.[1] ?? 0) });
  }
  plans.sort((a, b) => a.ms - b.ms);
  return plans[Math.floor(plans.length / 2)]?.lines ?? [];
}
