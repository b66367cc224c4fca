// The authorization matrix, checked against the school's policy (docs/access-policy.md), never
// against the routes' own `access` declarations: a role granted by mistake in a functions/*.ts file
// fails here. Every route the local host serves, every method, is called as anonymous, with forged
// tokens and as each of the eight roles; then the policy's object rules are probed with real records:
// "own" (a student with another student's ids) and "taught" (an instructor with the ids of a
// programme they do not teach, and of one they do).
//
// The routes come from what the host actually serves, so a route added in any functions/*.ts file
// fails this file until the policy has a row for it. The only tables here are dummy values, for
// inputs a random uuid or `{}` cannot stand for.
//
// Function modules and lib/endpoint are imported after the app booted: a static import would call
// app.* before the local host's stand-in exists (see dev/functions-host.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, test } from 'vitest';
import { keyOf, mayCall, type PolicyRow, readPolicy } from '../dev/access-policy';
import { ROLES, type Role } from '../lib/access';
import { AUDIENCE, ISSUER } from '../lib/auth';
import type { DeclaredRoute } from '../lib/endpoint';
import { insertCompletedAgreement } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { inBatches, paramNames, pathOf } from './helpers/routes';
import { createTestUser, type TestUser } from './helpers/users';
import { minimalH5p } from './helpers/zip';

const app = useTestApp();

/** Requests in flight at once: fast, without queueing the whole matrix on the pool. */
const CONCURRENCY = 8;

/**
 * Valid bodies for `METHOD route`, where the handler's answer matters (a student writing to another
 * student's record must meet the ownership check, not a 400 for an empty body). Routes not listed
 * get `{}`: validation answers 400, which is neither 401 nor 403, so the role checks still hold.
 */
const DUMMY_BODIES: Record<string, unknown> = {
  'PUT enrollments/{enrollmentId}/progress/{moduleId}': { progressPct: 10 }, // a student's own report
  'PATCH programs/{id}': { description: 'Changed by the matrix' }, // an instructor's content change
  'PATCH programs/{id}/modules/{moduleId}': { title: 'Changed by the matrix' },
};

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

interface RouteUnderTest {
  name: string;
  method: string;
  route: string;
  /** undefined: served by the host but not declared through endpoint(), so not behind the wrapper. */
  declared: DeclaredRoute | undefined;
  /** undefined: served but the policy has no row for it (a failure of its own below). */
  policy: PolicyRow | undefined;
}

interface Caller {
  label: string;
  role: Role | null;
  headers: Record<string, string>;
}

interface Outcome {
  target: RouteUnderTest;
  caller: Caller;
  path: string;
  status: number;
  body: string;
}

/** The records one student's ids name, for the object-level probes. */
interface RecordsOf {
  userId: string;
  programId: string;
  enrollmentId: string;
  moduleId: string;
  transcriptId: string;
  credentialId: string;
  agreementId: string;
  /** A class session the student was recorded in, and the student's line of it. */
  sessionId: string;
  attendanceRecordId: string;
  externshipId: string;
  complaintId: string;
  /** A payment on the student's ledger (its receipt). */
  paymentId: string;
}

/** Parameters a random uuid cannot stand for; everything else meets the route's own 400/404. */
const randomIds = (name: string) => (name === 'role' ? 'student' : randomUUID());

/** Which of `records` a parameter names: by its name, else by the collection the segment before it names. */
const idsOf =
  (records: RecordsOf) =>
  (name: string, segmentBefore: string | undefined): string => {
    if (name === 'role') return 'student';
    if (name === 'enrollmentId' || (name === 'id' && segmentBefore === 'enrollments')) return records.enrollmentId;
    if (name === 'transcriptId' || (name === 'id' && segmentBefore === 'transcripts')) return records.transcriptId;
    if (name === 'id' && segmentBefore === 'credentials') return records.credentialId;
    if (name === 'id' && segmentBefore === 'agreements') return records.agreementId;
    if (name === 'id' && segmentBefore === 'programs') return records.programId;
    if (name === 'id' && segmentBefore === 'payments') return records.paymentId;
    if (name === 'moduleId') return records.moduleId;
    if (name === 'sessionId') return records.sessionId;
    if (name === 'recordId') return records.attendanceRecordId;
    if (name === 'externshipId') return records.externshipId;
    if (name === 'complaintId') return records.complaintId;
    // A module's lesson versions are numbered from 1; the school below saves one in each module.
    if (name === 'version') return '1';
    // …and uploads one file of this name.
    if (name === 'name') return 'matrix.pdf';
    // …and one H5P activity of this key.
    if (name === 'activityKey') return 'matrix-quiz';
    return records.userId;
  };

/** Parameters that name a person's record: the routes the "own" and "taught" rules speak of. */
const RECORD_PARAMS = new Set([
  'id',
  'userId',
  'studentId',
  'enrollmentId',
  'transcriptId',
  'sessionId',
  'recordId',
  'externshipId',
  'complaintId',
  // Course content is the programme's: a module names it (and the SCORM data of a learner in it).
  'moduleId',
]);
const namesRecord = (target: RouteUnderTest) => paramNames(target.route).some((name) => RECORD_PARAMS.has(name));

const describeCall = (outcome: Outcome) =>
  `${outcome.target.method} ${outcome.path} (${outcome.target.route}) as ${outcome.caller.label} → ${outcome.status}`;

async function call(target: RouteUnderTest, caller: Caller, path: string, body?: unknown): Promise<Outcome> {
  const hasBody = BODY_METHODS.has(target.method);
  const payload = body ?? DUMMY_BODIES[keyOf(target)] ?? {};
  const response = await send(target.method, path, { headers: caller.headers, body: hasBody ? payload : undefined });
  return { target, caller, path, status: response.status, body: await response.text() };
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

let policy: PolicyRow[] = [];
let targets: RouteUnderTest[] = [];
let outcomes: Outcome[] = [];
const users = new Map<Role, TestUser>();
const as = (role: Role): Caller => ({ label: role, role, headers: (users.get(role) as TestUser).headers });

beforeAll(async () => {
  policy = readPolicy();
  const byKey = new Map(policy.map((row) => [keyOf(row), row]));
  const { declaredRoutes } = await import('../lib/endpoint');
  const { registeredRoutes } = await import('../dev/functions-host');
  const declared = new Map(declaredRoutes().map((route) => [route.name, route]));
  // What the host serves is the truth: a function registered with app.http directly is served
  // too, without the wrapper, and must not escape the matrix.
  const { FALLBACK_FUNCTION } = await import('../lib/endpoint');
  // The fallback answers 404/405 for what no route serves: it is no route of the policy.
  targets = registeredRoutes()
    .filter((served) => served.name !== FALLBACK_FUNCTION)
    .flatMap((served) =>
      served.methods
        .filter((method) => method !== 'OPTIONS' && method !== 'HEAD')
        .map((method) => ({
          name: served.name,
          method,
          route: served.route,
          declared: declared.get(served.name),
          policy: byKey.get(`${method} ${served.route}`),
        })),
    );

  const accounts = await createRoleAccounts(app.db.sql);
  for (const role of ROLES) users.set(role, accounts[role]);
  const callers: Caller[] = [
    { label: 'anonymous', role: null, headers: {} },
    ...(await forgedTokens((users.get('admin') as TestUser).id)),
    ...ROLES.map(as),
  ];
  const tasks = targets.flatMap((target) =>
    callers.map((caller) => () => call(target, caller, pathOf(target.route, randomIds))),
  );
  outcomes = await inBatches(tasks, CONCURRENCY);
}, 120_000);

describe('the routes and the policy', () => {
  test('every route the host serves has a row in docs/access-policy.md', () => {
    expect(targets.length).toBeGreaterThan(0);
    const missing = targets.filter((target) => !target.policy).map((target) => `${keyOf(target)} (${target.name})`);
    expect(missing, 'add a row for each of these routes to docs/access-policy.md').toEqual([]);
  });

  test('every row of docs/access-policy.md names a route the host serves', () => {
    const served = new Set(targets.map(keyOf));
    const stale = policy.filter((row) => !served.has(keyOf(row))).map((row) => `${keyOf(row)} (line ${row.line})`);
    expect(stale, 'these rows name routes nobody serves: remove or correct them').toEqual([]);
  });

  test('every function the host serves is declared through endpoint() (behind the wrapper)', () => {
    const undeclared = targets.filter((target) => !target.declared).map((target) => `${keyOf(target)}`);
    expect(undeclared).toEqual([]);
  });
});

describe('the authorization matrix, against the policy', () => {
  const refusedAnonymously = (target: RouteUnderTest) => target.policy?.anonymous === false;

  test('anonymous callers and forged tokens get 401 wherever the policy refuses anonymous callers', () => {
    const violations = outcomes
      .filter((o) => o.caller.role === null && refusedAnonymously(o.target) && o.status !== 401)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  // On a route open to anonymous callers the access token plays no part: nobody may get a 403 there.
  // A 401 there comes from the route's own credential (a refresh or registration token), which the
  // dummy bodies do not carry and the policy does not speak of.
  test('nobody is refused (403) where the policy lets anonymous callers in', () => {
    const violations = outcomes
      .filter((o) => o.target.policy?.anonymous === true && o.status === 403)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('a role the policy refuses gets 403', () => {
    const violations = outcomes
      .filter((o) => o.caller.role !== null && o.target.policy && !mayCall(o.target.policy, o.caller.role))
      .filter((o) => o.status !== 403)
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  // `own` and `taught` cells let the role through the route's door; a random id is nobody's record,
  // so the object rule may then answer 403 or 404 (its other side is probed with real records below).
  test('a role the policy lets in is never turned away at the door (yes: no 401 or 403; own, taught: no 401)', () => {
    const violations = outcomes
      .filter((o) => o.caller.role !== null && o.target.policy?.anonymous === false)
      .filter((o) => {
        const grant = o.target.policy?.grants[o.caller.role as Role];
        if (grant === 'yes') return o.status === 401 || o.status === 403;
        return grant !== 'no' && o.status === 401;
      })
      .map(describeCall);
    expect(violations).toEqual([]);
  });

  test('no route crashes on dummy input, whoever calls it', () => {
    expect(outcomes.filter((o) => o.status >= 500).map(describeCall)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// "own" and "taught": probed with real records
// ---------------------------------------------------------------------------------------------------

/**
 * Programme P (taught by the instructor) with students A and B; programme Q (not taught) with
 * student C. B and C each have progress (passed), SCORM data, a transcript and a credential, all made
 * through the API as the school would make them.
 */
async function createSchool(): Promise<{
  a: TestUser;
  b: RecordsOf & { user: TestUser };
  c: RecordsOf & { user: TestUser };
}> {
  const sql = app.db.sql;
  const suffix = randomBytes(3).toString('hex');
  const p = await createProgram(sql, { code: `MXP-${suffix}`, hours: [10], modulePrefix: 'P' });
  const q = await createProgram(sql, { code: `MXQ-${suffix}`, hours: [10], modulePrefix: 'Q' });
  const instructor = users.get('instructor') as TestUser;
  await assignInstructor(sql, instructor.id, p.programId);
  const a = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, a.id, p.programId);
  const studentIn = async (program: { programId: string; moduleIds: string[] }, grader: Caller) => {
    const user = await createTestUser(sql, { roles: ['student'] });
    const enrollmentId = await createEnrollment(sql, user.id, program.programId);
    const moduleId = program.moduleIds[0] as string;
    const self: Caller = { label: 'the student', role: 'student', headers: user.headers };
    const made = async (method: string, path: string, caller: Caller, body: unknown) => {
      const response = await send(method, path, { headers: caller.headers, body });
      const text = await response.text();
      if (!response.ok) throw new Error(`setting up: ${method} ${path} → ${response.status} ${text}`);
      return JSON.parse(text) as { id: string };
    };
    await made('PUT', `/scorm/${moduleId}`, self, { lessonStatus: 'incomplete', suspendData: 'resume here' });
    await made('PUT', `/enrollments/${enrollmentId}/progress/${moduleId}`, grader, { status: 'passed', score: 90 });
    // An absence: the student has attendance lines and is below the attendance threshold.
    const hourAgo = Date.now() - 3_600_000;
    const session = (await made('POST', '/attendance/sessions', grader, {
      moduleId,
      sessionType: 'live',
      startsAt: new Date(hourAgo).toISOString(),
      endsAt: new Date(hourAgo + 1_800_000).toISOString(),
      lines: [{ studentId: user.id, status: 'absent' }],
    })) as { id: string; lines: { id: string }[] };
    await made('POST', '/skills/checkoffs', grader, {
      studentId: user.id,
      moduleId,
      skillCode: 'PPE',
      status: 'pending',
    });
    const externship = await made('POST', '/externships', as('staff'), {
      enrollmentId,
      siteName: 'Matrix Dental',
      supervisor: { name: 'Dr. Matrix' },
      startDate: '2026-01-05',
    });
    const complaint = await made('POST', '/complaints', self, { category: 'other', details: 'Matrix complaint' });
    const payment = await send('POST', `/students/${user.id}/payments`, {
      headers: { ...as('finance').headers, 'Idempotency-Key': randomUUID() },
      body: { method: 'cash', amountCents: 1_000 },
    });
    if (payment.status !== 201) throw new Error(`setting up: a payment → ${payment.status}`);
    // A published lesson in the module, written by whoever teaches or runs the programme.
    await made('POST', `/modules/${moduleId}/lesson/versions`, grader, { title: 'Matrix lesson', markdown: '# Hi' });
    await made('POST', `/modules/${moduleId}/lesson/publication`, grader, { version: 1 });
    const upload = await send('PUT', `/modules/${moduleId}/files/matrix.pdf`, {
      headers: { ...grader.headers, 'Content-Type': 'application/pdf' },
      body: '%PDF-1.4\n%%EOF\n',
    });
    if (upload.status !== 201) throw new Error(`setting up: a content file → ${upload.status}`);
    const activity = await app.api(`/modules/${moduleId}/h5p/matrix-quiz`, {
      method: 'PUT',
      headers: { ...grader.headers, 'Content-Type': 'application/zip' },
      body: minimalH5p(),
    });
    if (activity.status !== 201) throw new Error(`setting up: an H5P activity → ${activity.status}`);
    const registrar = as('registrar');
    const body = { studentId: user.id, programId: program.programId };
    const transcript = await made('POST', '/transcripts', registrar, body);
    const credential = await made('POST', '/credentials', registrar, body);
    return {
      user,
      userId: user.id,
      programId: program.programId,
      enrollmentId,
      moduleId,
      transcriptId: transcript.id,
      credentialId: credential.id,
      agreementId: await insertCompletedAgreement(app.db.sql, user.id),
      sessionId: session.id,
      attendanceRecordId: session.lines[0]?.id as string,
      externshipId: externship.id,
      complaintId: complaint.id,
      paymentId: ((await payment.json()) as { id: string }).id,
    };
  };
  // The instructor grades in P; an admin grades in Q, which nobody here teaches.
  const b = await studentIn(p, as('instructor'));
  const c = await studentIn(q, as('admin'));
  return { a, b, c };
}

let school: Awaited<ReturnType<typeof createSchool>>;
beforeAll(async () => {
  school = await createSchool();
}, 60_000);

const withGrant = (role: Role, grant: 'own' | 'taught' | 'enrolled') => (target: RouteUnderTest) =>
  target.policy?.grants[role] === grant;

/** A refusal: 403 or 404, or the 400 of a `{}` body on a route whose answer to a valid body we did not ask. */
const refused = (o: Outcome) =>
  o.status === 403 ||
  o.status === 404 ||
  (o.status === 400 && BODY_METHODS.has(o.target.method) && !(keyOf(o.target) in DUMMY_BODIES));

/** Lists (no record in the path) the rule applies to, called plainly and asking for `other`'s records. */
function listProbes(targetsOfRule: RouteUnderTest[], caller: Caller, other: RecordsOf): (() => Promise<Outcome>)[] {
  return targetsOfRule
    .filter((target) => !namesRecord(target) && (target.method === 'GET' || target.route.endsWith('/search')))
    .flatMap((target) =>
      target.method === 'GET'
        ? [
            () => call(target, caller, `/${target.route}`),
            () => call(target, caller, `/${target.route}?studentId=${other.userId}`),
          ]
        : [() => call(target, caller, `/${target.route}`, {})],
    );
}

/** An answer that shows none of `other`'s records: refused, or a success that never names them. */
const showsNothingOf = (other: RecordsOf) => (o: Outcome) =>
  o.status < 300
    ? ![other.userId, other.enrollmentId, other.transcriptId, other.credentialId, other.agreementId].some((id) =>
        o.body.includes(id),
      )
    : o.status >= 400 && o.status < 500 && o.status !== 401;

describe('"own": a student reaches their own records only', () => {
  const ownRoutes = () => targets.filter(withGrant('student', 'own'));

  test('every route that names a record answers 403 or 404 to a student using another student’s ids', async () => {
    const candidates = ownRoutes().filter(namesRecord);
    // students/{id} (at least) is such a route: the check below is never empty.
    expect(candidates.length).toBeGreaterThan(0);
    const a: Caller = { label: 'student A with B’s ids', role: 'student', headers: school.a.headers };
    const results = await inBatches(
      candidates.map((target) => () => call(target, a, pathOf(target.route, idsOf(school.b)))),
      CONCURRENCY,
    );
    expect(results.filter((o) => !refused(o)).map(describeCall)).toEqual([]);
  });

  test('every list shows a student none of another student’s records', async () => {
    const a: Caller = { label: 'student A', role: 'student', headers: school.a.headers };
    const probes = listProbes(ownRoutes(), a, school.b);
    expect(probes.length).toBeGreaterThan(0);
    const results = await inBatches(probes, CONCURRENCY);
    expect(results.filter((o) => !showsNothingOf(school.b)(o)).map(describeCall)).toEqual([]);
  });

  test('the same routes serve student B their own records (the ids above were real)', async () => {
    const b: Caller = { label: 'student B', role: 'student', headers: school.b.user.headers };
    const reads = ownRoutes().filter((target) => target.method === 'GET' && namesRecord(target));
    expect(reads.length).toBeGreaterThan(0);
    const results = await inBatches(
      reads.map((target) => () => call(target, b, pathOf(target.route, idsOf(school.b)))),
      CONCURRENCY,
    );
    expect(results.filter((o) => o.status !== 200).map(describeCall)).toEqual([]);
  });
});

describe('"taught": an instructor reaches the students of the programmes they teach only', () => {
  const taughtRoutes = () => targets.filter(withGrant('instructor', 'taught'));
  const instructor = () => ({ ...as('instructor'), label: 'instructor of P' });

  test('every route that names a record refuses the records of a programme the instructor does not teach', async () => {
    const candidates = taughtRoutes().filter(namesRecord);
    expect(candidates.length).toBeGreaterThan(0);
    const results = await inBatches(
      candidates.map((target) => () => call(target, instructor(), pathOf(target.route, idsOf(school.c)))),
      CONCURRENCY,
    );
    expect(results.filter((o) => !refused(o)).map(describeCall)).toEqual([]);
    // Nothing of Q changed: the refused PATCH left the programme's description as it was.
    const [q] = await app.db.sql<{ description: string | null }[]>`
      select description from programs where id = ${school.c.programId}`;
    expect(q?.description).toBeNull();
  });

  test('every list shows an instructor none of an untaught programme’s students, and the taught ones', async () => {
    const probes = listProbes(taughtRoutes(), instructor(), school.c);
    expect(probes.length).toBeGreaterThan(0);
    const results = await inBatches(probes, CONCURRENCY);
    expect(results.filter((o) => !showsNothingOf(school.c)(o)).map(describeCall)).toEqual([]);
    const plain = results.filter(
      (o) => !o.path.includes('?') && !(o.status === 200 && o.body.includes(school.b.userId)),
    );
    expect(plain.map(describeCall), 'B studies in a programme the instructor teaches').toEqual([]);
  });

  test('every route that names a record serves the records of a programme the instructor teaches', async () => {
    // Writes only where a valid dummy body exists (a `{}` body would meet validation, not the rule).
    const allowed = taughtRoutes().filter(
      (target) => namesRecord(target) && (target.method === 'GET' || keyOf(target) in DUMMY_BODIES),
    );
    expect(allowed.some((target) => target.method !== 'GET')).toBe(true);
    const results = await inBatches(
      allowed.map((target) => () => call(target, instructor(), pathOf(target.route, idsOf(school.b)))),
      CONCURRENCY,
    );
    expect(results.filter((o) => o.status !== 200).map(describeCall)).toEqual([]);
  });
});

describe('"enrolled": a student reaches the course content of the programmes they study in only', () => {
  const enrolledRoutes = () => targets.filter(withGrant('student', 'enrolled'));

  test('every such route refuses a student enrolled in another programme', async () => {
    const candidates = enrolledRoutes().filter(namesRecord);
    // GET modules/{moduleId}/lesson (at least) is such a route: the check below is never empty.
    expect(candidates.length).toBeGreaterThan(0);
    // C studies in Q; B's ids name P's module.
    const c: Caller = {
      label: 'student C (programme Q) with P’s ids',
      role: 'student',
      headers: school.c.user.headers,
    };
    const results = await inBatches(
      candidates.map((target) => () => call(target, c, pathOf(target.route, idsOf(school.b)))),
      CONCURRENCY,
    );
    expect(results.filter((o) => !refused(o)).map(describeCall)).toEqual([]);
  });

  test('the same routes serve students A and B of programme P (the ids above were real)', async () => {
    const reads = enrolledRoutes().filter((target) => target.method === 'GET' && namesRecord(target));
    expect(reads.length).toBeGreaterThan(0);
    const callers: Caller[] = [
      { label: 'student A', role: 'student', headers: school.a.headers },
      { label: 'student B', role: 'student', headers: school.b.user.headers },
    ];
    const results = await inBatches(
      reads.flatMap((target) =>
        callers.map((caller) => () => call(target, caller, pathOf(target.route, idsOf(school.b)))),
      ),
      CONCURRENCY,
    );
    expect(results.filter((o) => o.status !== 200).map(describeCall)).toEqual([]);
  });
});
