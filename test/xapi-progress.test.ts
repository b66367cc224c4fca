// Statements into module progress over HTTP (issue 13 item 6, lib/xapi-progress.ts): a module's editors
// list its activity IRIs; a completed/passed statement a student sends about themselves completes the
// module, visible through GET enrollments/{id}/progress with the last xAPI activity, audited in the
// statement's transaction; a replay changes nothing; voiding undoes it; someone else's account, an LRS
// credential, an unknown activity or a programme the student is not in change nothing.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, recordProgress } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;
let credential: { key: string; secret: string };

const VERBS = 'http://adlnet.gov/expapi/verbs/';
/** The agent of an LMS account (docs/xapi.md): homePage APP_PUBLIC_URL of the test app, name the user id. */
const agentOf = (user: TestUser) => ({
  objectType: 'Agent',
  account: { homePage: 'http://localhost:5173', name: user.id },
});

interface ModuleView {
  moduleId: string;
  status: string;
  progressPct: number;
  score: number | null;
  lastAccessedAt: string | null;
  updatedAt: string | null;
  lastXapiActivity: { statementId: string; activityId: string; verb: string; stored: string } | null;
}

interface Course {
  programId: string;
  moduleIds: string[];
  /** One activity IRI per module, mapped through the route. */
  iris: string[];
  student: TestUser;
  enrollmentId: string;
}

function xapi(method: string, path: string, authorization: string, body?: unknown) {
  return app.api(`/xapi${path}`, {
    method,
    headers: {
      'X-Experience-API-Version': '1.0.3',
      Authorization: authorization,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const bearer = (user: TestUser) => user.headers.Authorization as string;
const basic = (c: { key: string; secret: string }) => `Basic ${Buffer.from(`${c.key}:${c.secret}`).toString('base64')}`;

const statement = (actor: TestUser, verb: string, activity: string, id = randomUUID()) => ({
  id,
  actor: agentOf(actor),
  verb: { id: `${VERBS}${verb}`, display: { 'en-US': verb } },
  object: { objectType: 'Activity', id: activity },
});

const voiding = (actor: TestUser, target: string) => ({
  actor: agentOf(actor),
  verb: { id: `${VERBS}voided`, display: { 'en-US': 'voided' } },
  object: { objectType: 'StatementRef', id: target },
});

/** A programme of `modules` modules, its instructor mapping one fresh activity IRI to each, a student enrolled. */
async function course(modules = 2, student?: TestUser): Promise<Course> {
  const sql = app.db.sql;
  const { programId, moduleIds } = await createProgram(sql, { hours: Array(modules).fill(10) });
  await assignInstructor(sql, roles.instructor.id, programId);
  const iris = moduleIds.map((_, i) => `https://content.example.org/${randomUUID()}/lesson-${i + 1}`);
  for (const [i, moduleId] of moduleIds.entries()) {
    const mapped = await send('PUT', `/modules/${moduleId}/xapi-activities`, {
      as: roles.instructor,
      body: { activities: [iris[i]] },
    });
    expect(mapped.status).toBe(200);
  }
  const learner = student ?? (await createTestUser(sql, { roles: ['student'] }));
  const enrollmentId = await createEnrollment(sql, learner.id, programId);
  return { programId, moduleIds, iris, student: learner, enrollmentId };
}

async function modulesOf(c: Course): Promise<ModuleView[]> {
  const response = await send('GET', `/enrollments/${c.enrollmentId}/progress`, { as: c.student });
  expect(response.status).toBe(200);
  return ((await response.json()) as { modules: ModuleView[] }).modules;
}

async function post(authorization: string, body: unknown): Promise<Response> {
  const response = await xapi('POST', '/statements', authorization, body);
  return response;
}

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  const created = await send('POST', '/lrs-credentials', {
    as: roles.admin,
    body: { label: 'Course package', scopes: ['all'] },
  });
  expect(created.status).toBe(201);
  credential = (await created.json()) as { key: string; secret: string };
});

describe("a student's own statements move their module progress", () => {
  test('a completed statement completes the module; the progress view shows it and its last xAPI activity', async () => {
    const c = await course();
    const sent = statement(c.student, 'completed', c.iris[0] as string);
    const response = await post(bearer(c.student), sent);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual([sent.id]);
    const [first, second] = await modulesOf(c);
    expect(first).toMatchObject({ status: 'completed', progressPct: 100, score: null });
    expect(first?.lastXapiActivity).toMatchObject({ statementId: sent.id, activityId: c.iris[0], verb: 'completed' });
    expect(first?.lastAccessedAt).not.toBeNull();
    expect(second).toMatchObject({ status: 'not_started', progressPct: 0, lastXapiActivity: null });
    const summary = await send('GET', `/enrollments/${c.enrollmentId}/progress`, { as: roles.instructor });
    expect(await summary.json()).toMatchObject({ completedModules: 1, overallPct: 50 });
  });

  test('the audit row of the statement write names the module, committed with the change', async () => {
    const c = await course(1);
    const sent = statement(c.student, 'passed', c.iris[0] as string);
    expect((await post(bearer(c.student), [sent])).status).toBe(200);
    const rows = await app.db.sql`
      select a.event, a.resource_ids, a.user_id, a.status
        from audit_log a
       where a.route = 'xapi/statements' and a.method = 'POST' and a.user_id = ${c.student.id}`;
    expect(rows).toEqual([
      {
        event: 'xapi_progress',
        resource_ids: { enrollmentId: c.enrollmentId, moduleId: c.moduleIds[0] },
        user_id: c.student.id,
        status: 200,
      },
    ]);
    const events = await app.db.sql`
      select enrollment_id, module_id, verb, completes, status_before from xapi_progress_events
       where statement_id = ${sent.id}`;
    expect(events).toEqual([
      {
        enrollment_id: c.enrollmentId,
        module_id: c.moduleIds[0],
        verb: 'passed',
        completes: true,
        status_before: null,
      },
    ]);
  });

  test('passed from content completes the module but does not grade it; a module an instructor graded stays graded', async () => {
    const c = await course(2);
    expect((await post(bearer(c.student), statement(c.student, 'passed', c.iris[0] as string))).status).toBe(200);
    await recordProgress(app.db.sql, c.enrollmentId, c.moduleIds[1] as string, {
      status: 'failed',
      score: 40,
      progressPct: 60,
    });
    expect((await post(bearer(c.student), statement(c.student, 'completed', c.iris[1] as string))).status).toBe(200);
    const [first, second] = await modulesOf(c);
    expect(first).toMatchObject({ status: 'completed', score: null });
    expect(second).toMatchObject({ status: 'failed', score: 40, progressPct: 60 });
    expect(second?.lastXapiActivity?.verb).toBe('completed');
  });

  test('any other statement about the activity marks the module started; the last activity follows the latest', async () => {
    const c = await course(1);
    const iri = c.iris[0] as string;
    expect((await post(bearer(c.student), statement(c.student, 'experienced', iri))).status).toBe(200);
    const [started] = await modulesOf(c);
    expect(started).toMatchObject({ status: 'incomplete', progressPct: 0 });
    expect(started?.lastXapiActivity?.verb).toBe('experienced');
    const custom = { ...statement(c.student, 'x', iri), verb: { id: 'https://w3id.org/xapi/example/verbs/pondered' } };
    expect((await post(bearer(c.student), custom)).status).toBe(200);
    const [later] = await modulesOf(c);
    expect(later).toMatchObject({ status: 'incomplete', lastXapiActivity: { statementId: custom.id, verb: 'other' } });
  });

  test('a replayed statement (same id, same content) stores nothing new and changes nothing', async () => {
    const c = await course(1);
    const sent = statement(c.student, 'completed', c.iris[0] as string);
    expect((await post(bearer(c.student), sent)).status).toBe(200);
    const [before] = await modulesOf(c);
    for (let i = 0; i < 3; i++) {
      expect((await post(bearer(c.student), sent)).status).toBe(200);
      expect((await xapi('PUT', `/statements?statementId=${sent.id}`, bearer(c.student), sent)).status).toBe(204);
    }
    expect((await modulesOf(c))[0]).toEqual(before);
    const [count] = await app.db
      .sql`select count(*)::int as n from xapi_progress_events where statement_id = ${sent.id}`;
    expect(count?.n).toBe(1);
    const audited = await app.db.sql`
      select count(*)::int as n from audit_log
       where route = 'xapi/statements' and user_id = ${c.student.id} and event = 'xapi_progress'`;
    expect(audited[0]?.n).toBe(1);
  });
});

describe('voiding', () => {
  test('voiding the completing statement puts the module back; the voided statement is no longer its last activity', async () => {
    const c = await course(1);
    const iri = c.iris[0] as string;
    const done = statement(c.student, 'completed', iri);
    expect((await post(bearer(c.student), done)).status).toBe(200);
    expect((await modulesOf(c))[0]?.status).toBe('completed');
    expect((await post(bearer(c.student), voiding(c.student, done.id))).status).toBe(200);
    const [after] = await modulesOf(c);
    expect(after).toMatchObject({ status: 'not_started', progressPct: 0, lastXapiActivity: null });
  });

  test('a module started before keeps being started; another live completion keeps it completed', async () => {
    const c = await course(2);
    const [first, second] = c.iris as [string, string];
    expect((await post(bearer(c.student), statement(c.student, 'attempted', first))).status).toBe(200);
    const done = statement(c.student, 'completed', first);
    expect((await post(bearer(c.student), done)).status).toBe(200);
    expect((await post(bearer(c.student), voiding(c.student, done.id))).status).toBe(200);
    const twice = [statement(c.student, 'completed', second), statement(c.student, 'passed', second)];
    expect((await post(bearer(c.student), twice)).status).toBe(200);
    expect((await post(bearer(c.student), voiding(c.student, twice[0]?.id as string))).status).toBe(200);
    const [one, two] = await modulesOf(c);
    expect(one).toMatchObject({ status: 'incomplete', lastXapiActivity: { verb: 'attempted' } });
    expect(two).toMatchObject({ status: 'completed', lastXapiActivity: { statementId: twice[1]?.id } });
  });

  test('a statement whose voiding arrived first never counts; a student cannot void ahead', async () => {
    const c = await course(1);
    const late = statement(c.student, 'completed', c.iris[0] as string);
    expect((await post(bearer(c.student), voiding(c.student, late.id))).status).toBe(403);
    expect((await post(bearer(roles.admin), voiding(roles.admin, late.id))).status).toBe(200);
    expect((await post(bearer(c.student), late)).status).toBe(200);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
  });

  test("an admin's LMS token may void a student's completion; an instructor's grade is never undone", async () => {
    const c = await course(2);
    const done = statement(c.student, 'completed', c.iris[0] as string);
    const graded = statement(c.student, 'completed', c.iris[1] as string);
    expect((await post(bearer(c.student), [done, graded])).status).toBe(200);
    await recordProgress(app.db.sql, c.enrollmentId, c.moduleIds[1] as string, { status: 'passed', score: 91 });
    const voids = [voiding(roles.admin, done.id), voiding(roles.admin, graded.id)];
    expect((await post(bearer(roles.admin), voids)).status).toBe(200);
    const [one, two] = await modulesOf(c);
    expect(one).toMatchObject({ status: 'not_started', lastXapiActivity: null });
    expect(two).toMatchObject({ status: 'passed', score: 91, lastXapiActivity: null });
  });
});

describe("what never moves a student's progress", () => {
  test("another student's account: writing or voiding is refused (403) and the other student's progress stays", async () => {
    const c = await course(1);
    const intruder = await createTestUser(app.db.sql, { roles: ['student'] });
    await createEnrollment(app.db.sql, intruder.id, c.programId);
    const forged = statement(c.student, 'completed', c.iris[0] as string);
    expect((await post(bearer(intruder), forged)).status).toBe(403);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
    // Voiding the other student's statement: refused, and nothing of theirs changes.
    const done = statement(c.student, 'completed', c.iris[0] as string);
    expect((await post(bearer(c.student), done)).status).toBe(200);
    expect((await post(bearer(intruder), voiding(intruder, done.id))).status).toBe(403);
    expect((await xapi('GET', `/statements?statementId=${done.id}`, bearer(c.student))).status).toBe(200);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'completed', lastXapiActivity: { statementId: done.id } });
    // The intruder's own progress in the same programme is untouched by the other's statements.
    const [intruderEnrollment] = await app.db.sql`
      select id from enrollments where user_id = ${intruder.id} and program_id = ${c.programId}`;
    const theirs = await send('GET', `/enrollments/${intruderEnrollment?.id}/progress`, { as: intruder });
    expect(((await theirs.json()) as { modules: ModuleView[] }).modules[0]).toMatchObject({ status: 'not_started' });
  });

  test('statements about a student sent with an LRS credential or an admin token are stored but move nothing', async () => {
    const c = await course(1);
    const viaCredential = statement(c.student, 'completed', c.iris[0] as string);
    expect((await post(basic(credential), viaCredential)).status).toBe(200);
    const viaAdmin = statement(c.student, 'passed', c.iris[0] as string);
    expect((await post(bearer(roles.admin), viaAdmin)).status).toBe(200);
    expect((await xapi('GET', `/statements?statementId=${viaAdmin.id}`, bearer(c.student))).status).toBe(200);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
  });

  test('an unknown activity, an unmapped one that looks alike, or another programme: stored, nothing moves', async () => {
    const c = await course(1);
    const elsewhere = await course(1);
    const iri = c.iris[0] as string;
    const unknown = [
      statement(c.student, 'completed', `https://content.example.org/${randomUUID()}`),
      statement(c.student, 'completed', `${iri}/`),
      statement(c.student, 'completed', iri.toUpperCase()),
      statement(c.student, 'completed', `${iri}?x=1' or '1'='1`.replace(/ /g, '%20')),
      statement(c.student, 'completed', elsewhere.iris[0] as string),
    ];
    const response = await post(bearer(c.student), unknown);
    expect(response.status).toBe(200);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
    expect((await modulesOf(elsewhere))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
    const [count] = await app.db.sql`
      select count(*)::int as n from xapi_progress_events
       where statement_id = any(${unknown.map((s) => s.id)}::uuid[])`;
    expect(count?.n).toBe(0);
  });

  test('an enrollment that is not active is not moved (as a student report would not be)', async () => {
    const c = await course(1);
    await app.db.sql`update enrollments set status = 'on_hold' where id = ${c.enrollmentId}`;
    expect((await post(bearer(c.student), statement(c.student, 'completed', c.iris[0] as string))).status).toBe(200);
    expect((await modulesOf(c))[0]).toMatchObject({ status: 'not_started', lastXapiActivity: null });
  });
});

describe('the activities of a module', () => {
  test("its editors list and replace them; others are refused; a student's statement follows the new list", async () => {
    const c = await course(1);
    const path = `/modules/${c.moduleIds[0]}/xapi-activities`;
    const read = await send('GET', path, { as: roles.staff });
    expect(await read.json()).toEqual({ moduleId: c.moduleIds[0], activities: [c.iris[0]] });
    const next = `https://content.example.org/${randomUUID()}/quiz`;
    const replaced = await send('PUT', path, { as: roles.admin, body: { activities: [next, next] } });
    expect(replaced.status).toBe(200);
    expect(await replaced.json()).toEqual({ moduleId: c.moduleIds[0], activities: [next] });
    expect((await post(bearer(c.student), statement(c.student, 'completed', c.iris[0] as string))).status).toBe(200);
    expect((await modulesOf(c))[0]?.status).toBe('not_started');
    expect((await post(bearer(c.student), statement(c.student, 'completed', next))).status).toBe(200);
    expect((await modulesOf(c))[0]?.status).toBe('completed');
    const outsider = await createTestUser(app.db.sql, { roles: ['instructor'] });
    expect((await send('GET', path, { as: outsider })).status).toBe(404);
    expect((await send('PUT', path, { as: outsider, body: { activities: [] } })).status).toBe(404);
    expect((await send('PUT', path, { as: c.student, body: { activities: [] } })).status).toBe(403);
    expect((await send('GET', `/modules/${randomUUID()}/xapi-activities`, { as: roles.admin })).status).toBe(404);
  });

  test('ugly lists are 400s naming the field', async () => {
    const c = await course(1);
    const path = `/modules/${c.moduleIds[0]}/xapi-activities`;
    for (const activities of [
      ['not an iri'],
      ['relative/path'],
      ["https://x.example/\u0000'; drop table modules; --"],
      ['https://x.example/\u202eevil'],
      [42],
      Array.from({ length: 201 }, (_, i) => `https://x.example/${i}`),
      [`https://x.example/${'a'.repeat(2100)}`],
    ]) {
      const response = await send('PUT', path, { as: roles.admin, body: { activities } });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { errors: { field: string }[] };
      expect(body.errors.some((error) => error.field.startsWith('body.activities'))).toBe(true);
    }
    expect((await send('PUT', path, { as: roles.admin, body: { activities: 'x' } })).status).toBe(400);
    expect((await send('PUT', path, { as: roles.admin, body: { activities: [], extra: 1 } })).status).toBe(400);
    expect((await send('GET', '/modules/not-a-uuid/xapi-activities', { as: roles.admin })).status).toBe(400);
    expect(await (await send('GET', path, { as: roles.admin })).json()).toEqual({
      moduleId: c.moduleIds[0],
      activities: [c.iris[0]],
    });
  });
});
