// The authorization matrix, generated from the route table: every route the app registers, every
// method, called as anonymous, with forged tokens and as each of the eight roles; and every route a
// student may call with a record id, called by one student with another student's ids.
//
// Nothing here lists routes: they come from declaredRoutes() (lib/endpoint) and from what the local
// host actually serves, so a route added in any functions/*.ts file is checked the day it lands. The
// only tables are the dummy values below, for inputs a random uuid or `{}` cannot stand for.
//
// Function modules and lib/endpoint are imported after the app booted: a static import would call
// app.* before the local host's stand-in exists (see dev/functions-host.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, test } from 'vitest';
import { ROLES, type Role } from '../lib/access';
import { AUDIENCE, ISSUER } from '../lib/auth';
import type { DeclaredRoute } from '../lib/endpoint';
import { useTestApp } from './helpers/app';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

/** Requests in flight at once: fast, without queueing the whole matrix on the pool. */
const CONCURRENCY = 8;

/**
 * Path parameters a random uuid cannot stand for, by name. Everything else gets a fresh uuid, so a
 * caller who passes the role check meets the route's own 400/404, never someone's real record.
 */
const DUMMY_PARAMS: Record<string, string> = {
  role: 'student', // users/{id}/roles/{role}: a real role name, so "no such user" answers
};

/**
 * Valid bodies for `METHOD route`, where the handler's answer matters (a student writing to another
 * student's record must meet the ownership check, not a 400 for an empty body). Routes not listed
 * get `{}`: validation answers 400, which is neither 401 nor 403, so the role checks still hold.
 */
const DUMMY_BODIES: Record<string, unknown> = {
  'PUT enrollments/{enrollmentId}/progress/{moduleId}': { progressPct: 10 }, // a student's own report
};

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

interface RouteUnderTest {
  name: string;
  method: string;
  route: string;
  /** undefined: served by the host but not declared through endpoint(), so not behind the wrapper. */
  declared: DeclaredRoute | undefined;
}

interface Caller {
  label: string;
  role: Role | null;
  headers: Record<string, string>;
}

interface Outcome {
  target: RouteUnderTest;
  caller: Caller;
  status: number;
}

const PARAM = /\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g;

function paramNames(route: string): string[] {
  return [...route.matchAll(PARAM)].map((match) => match[1] as string);
}

/** The URL of a route template with its parameters filled in by `valueFor(name, literal before it)`. */
function pathOf(route: string, valueFor: (name: string, segmentBefore: string | undefined) => string): string {
  const segments = route.split('/');
  return `/${segments
    .map((segment, index) =>
      segment.replace(PARAM, (_whole, name: string) => encodeURIComponent(valueFor(name, segments[index - 1]))),
    )
    .join('/')}`;
}

const describeCall = (outcome: Outcome) =>
  `${outcome.target.method} ${outcome.target.route} as ${outcome.caller.label} → ${outcome.status}`;

async function inBatches<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await (tasks[index] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return results;
}

async function call(target: RouteUnderTest, caller: Caller, path: string): Promise<number> {
  const hasBody = BODY_METHODS.has(target.method);
  const body = DUMMY_BODIES[`${target.method} ${target.route}`] ?? {};
  const response = await app.api(path, {
    method: target.method,
    headers: { ...caller.headers, ...(hasBody ? { 'Content-Type': 'application/json' } : {}) },
    ...(hasBody ? { body: JSON.stringify(body) } : {}),
  });
  await response.arrayBuffer();
  return response.status;
}

/** A token for the admin with every claim right but the signature: none at all, or another key. */
async function forgedTokens(userId: string): Promise<Caller[]> {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: userId, roles: ['admin'], iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 };
  const unsigned = [
    { alg: 'none', typ: 'JWT' },
    { ...claims, jti: randomUUID() },
  ]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
    .join('.');
  const otherKey = await new SignJWT({ roles: ['admin'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(userId)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(randomBytes(32));
  return [
    { label: 'forged admin token (alg none)', role: null, headers: { Authorization: `Bearer ${unsigned}.` } },
    { label: 'forged admin token (other key)', role: null, headers: { Authorization: `Bearer ${otherKey}` } },
    { label: 'garbage token', role: null, headers: { Authorization: 'Bearer not.a.token' } },
  ];
}

let targets: RouteUnderTest[] = [];
let undeclared: RouteUnderTest[] = [];
let outcomes: Outcome[] = [];
const users = new Map<Role, TestUser>();
let studentA: TestUser;
let studentB: TestUser;
/** Records of student B a student-facing route may be asked about, by what names them. */
let ownedByB: { userId: string; enrollmentId: string; moduleId: string; transcriptId: string };

beforeAll(async () => {
  const { declaredRoutes } = await import('../lib/endpoint');
  const { registeredRoutes } = await import('../dev/functions-host');
  const declared = new Map(declaredRoutes().map((route) => [route.name, route]));
  // What the host serves is the truth: a function registered with app.http directly is served
  // too, without the wrapper, and must not escape the matrix.
  targets = registeredRoutes().flatMap((served) =>
    served.methods
      .filter((method) => method !== 'OPTIONS' && method !== 'HEAD')
      .map((method) => ({ name: served.name, method, route: served.route, declared: declared.get(served.name) })),
  );
  undeclared = targets.filter((target) => !target.declared);

  for (const role of ROLES) users.set(role, await createTestUser(app.db.sql, { roles: [role] }));
  studentA = users.get('student') as TestUser;
  studentB = await createTestUser(app.db.sql, { roles: ['student'] });
  ownedByB = await recordsOfStudentB(studentA.id, studentB.id);

  const callers: Caller[] = [
    { label: 'anonymous', role: null, headers: {} },
    ...(await forgedTokens((users.get('admin') as TestUser).id)),
    ...ROLES.map((role) => ({ label: role, role, headers: (users.get(role) as TestUser).headers })),
  ];
  const tasks = targets.flatMap((target) =>
    callers.map((caller) => async (): Promise<Outcome> => {
      const path = pathOf(target.route, (name) => DUMMY_PARAMS[name] ?? randomUUID());
      return { target, caller, status: await call(target, caller, path) };
    }),
  );
  outcomes = await inBatches(tasks, CONCURRENCY);
}, 120_000);

/** Student B's account with an enrollment, a module of its programme and a transcript; A is enrolled too. */
async function recordsOfStudentB(studentAId: string, studentBId: string) {
  const sql = app.db.sql;
  const [program] = await sql<{ id: string }[]>`
    insert into programs (code, name, credential_level, total_clock_hours)
    values (${`MX-${randomBytes(3).toString('hex')}`}, 'Matrix programme', 'certificate', 10) returning id`;
  const [module] = await sql<{ id: string }[]>`
    insert into modules (program_id, code, title, delivery_type, clock_hours, position)
    values (${program?.id as string}, 'M1', 'Module one', 'online', 10, 1) returning id`;
  const enrollments = await sql<{ id: string; user_id: string }[]>`
    insert into enrollments (user_id, program_id, start_date)
    values (${studentAId}, ${program?.id as string}, current_date), (${studentBId}, ${program?.id as string}, current_date)
    returning id, user_id`;
  const [transcript] = await sql<{ id: string }[]>`
    insert into transcripts (user_id, program_id) values (${studentBId}, ${program?.id as string}) returning id`;
  return {
    userId: studentBId,
    enrollmentId: enrollments.find((row) => row.user_id === studentBId)?.id as string,
    moduleId: module?.id as string,
    transcriptId: transcript?.id as string,
  };
}

/**
 * Which of B's records a parameter names: by the parameter's name, else by the collection the
 * segment before it names (`enrollments/{id}`). Unknown collections get B's user id.
 */
function idOfB(name: string, segmentBefore: string | undefined): string {
  if (name === 'enrollmentId' || (name === 'id' && segmentBefore === 'enrollments')) return ownedByB.enrollmentId;
  if (name === 'transcriptId' || (name === 'id' && segmentBefore === 'transcripts')) return ownedByB.transcriptId;
  if (name === 'moduleId') return ownedByB.moduleId;
  return DUMMY_PARAMS[name] ?? ownedByB.userId;
}

const STUDENT_ID_PARAMS = new Set(['id', 'userId', 'studentId', 'enrollmentId', 'transcriptId']);

const isPublic = (target: RouteUnderTest) => target.declared?.access === 'public';
const allows = (target: RouteUnderTest, role: Role) =>
  target.declared !== undefined && target.declared.access !== 'public' && target.declared.access.includes(role);

describe('the authorization matrix', () => {
  test('covers every function the host serves, each declared through endpoint()', () => {
    expect(targets.length).toBeGreaterThan(0);
    // The audit routes are protected, the catalogue public: both kinds are in the table.
    expect(targets.some((target) => target.route === 'audit/logs' && !isPublic(target))).toBe(true);
    expect(targets.some(isPublic)).toBe(true);
    expect(undeclared.map((target) => `${target.method} ${target.route} (${target.name})`)).toEqual([]);
  });

  test('anonymous callers and forged tokens get 401 from every route not declared public', () => {
    const violations = outcomes
      .filter((o) => o.caller.role === null && !isPublic(o.target) && o.status !== 401)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('a role not in a route’s access list gets 403', () => {
    const violations = outcomes
      .filter((o) => o.caller.role !== null && !isPublic(o.target) && !allows(o.target, o.caller.role))
      .filter((o) => o.status !== 403)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('a role in a route’s access list is never turned away (no 401, no 403)', () => {
    const violations = outcomes
      .filter((o) => o.caller.role !== null && allows(o.target, o.caller.role))
      .filter((o) => o.status === 401 || o.status === 403)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('no route crashes on dummy input, whoever calls it', () => {
    expect(outcomes.filter((o) => o.status === 500).map(describeCall)).toEqual([]);
  });
});

describe('a student using another student’s ids', () => {
  test('every student route that takes a record id answers 403 or 404 for another student’s record', async () => {
    const candidates = targets.filter(
      (target) => allows(target, 'student') && paramNames(target.route).some((name) => STUDENT_ID_PARAMS.has(name)),
    );
    // students/{id} (at least) is such a route: the check below is never empty.
    expect(candidates.length).toBeGreaterThan(0);
    const caller: Caller = { label: 'student A with B’s ids', role: 'student', headers: studentA.headers };
    const results = await inBatches(
      candidates.map((target) => async (): Promise<Outcome> => {
        const path = pathOf(target.route, idOfB);
        return { target, caller, status: await call(target, caller, path) };
      }),
      CONCURRENCY,
    );
    // A 400 for the `{}` body of a route without a dummy body never reached B's record either;
    // a route with a valid dummy body must be refused by the ownership check itself.
    const rejectedBody = (o: Outcome) =>
      o.status === 400 &&
      BODY_METHODS.has(o.target.method) &&
      !(`${o.target.method} ${o.target.route}` in DUMMY_BODIES);
    const violations = results
      .filter((o) => !(o.status === 403 || o.status === 404 || rejectedBody(o)))
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('the same routes serve student B their own records (the ids above were real)', async () => {
    const reads = targets.filter(
      (target) =>
        target.method === 'GET' &&
        allows(target, 'student') &&
        paramNames(target.route).some((name) => STUDENT_ID_PARAMS.has(name)),
    );
    const results = await inBatches(
      reads.map((target) => async () => ({
        target: `${target.method} ${target.route}`,
        status: await call(
          target,
          { label: 'student B', role: 'student', headers: studentB.headers },
          pathOf(target.route, idOfB),
        ),
      })),
      CONCURRENCY,
    );
    expect(results.length).toBeGreaterThan(0);
    // At least the student record itself is reachable by its owner; other routes may 404 when B
    // has no such record yet (e.g. no progress), but none may refuse B as a stranger.
    expect(results.filter((r) => r.status === 401 || r.status === 403)).toEqual([]);
    expect(results.some((r) => r.status === 200)).toBe(true);
  });
});
