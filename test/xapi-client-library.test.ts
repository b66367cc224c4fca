// A real xAPI client library against the LRS, unmodified, as course content uses it: @xapi/xapi (npm,
// exact-pinned devDependency) with its default HTTP adapter, authenticated with what the app issues — a
// student's access token from POST /auth/login, and an LRS credential an admin created for a course tool.
// The library sends, queries, pages and voids statements (1.0.3 and 2.0.0), sends an attachment, and reads
// and writes State and Activity Profile documents with their ETags; a completed statement it sends moves
// the student's module progress (lib/xapi-progress.ts).
import { createHash, randomUUID } from 'node:crypto';
import XAPI, { type Agent, type Statement } from '@xapi/xapi';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;
let student: TestUser;
/** The student's agent: their LMS account (docs/xapi.md). */
let me: Agent;
/** The library as a course package running for the student: their sign-in token. */
let learner: XAPI;
/** The same with the library's fetch adapter, and speaking 2.0.0. */
let learnerFetch: XAPI;
let learner2: XAPI;
/** The library as a course tool: an LRS credential with activities_profile. */
let tool: XAPI;

const course = `https://content.example.org/${randomUUID()}`;

/** What the library throws for a refused request (axios, its default adapter): the HTTP status. */
async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    return (error as { response?: { status?: number } }).response?.status ?? -1;
  }
}

const completed = (activity: string): Statement => ({
  actor: me,
  verb: XAPI.Verbs.COMPLETED,
  object: { objectType: 'Activity', id: activity, definition: { name: { 'en-US': 'Lesson' } } },
});

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  student = await createTestUser(app.db.sql, { roles: ['student'] });
  const login = await app.api('/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: student.email, password: TEST_PASSWORD, client: 'tool' }),
  });
  expect(login.status).toBe(200);
  const { accessToken } = (await login.json()) as { accessToken: string };
  me = { objectType: 'Agent', account: { homePage: 'http://localhost:5173', name: student.id } };
  learner = new XAPI({ endpoint: `${app.url}/xapi`, auth: `Bearer ${accessToken}`, version: '1.0.3' });
  learnerFetch = new XAPI({ endpoint: `${app.url}/xapi`, auth: `Bearer ${accessToken}`, adapter: 'fetch' });
  // The library's types list 1.0.x only; it sends whatever version it is given in the header.
  learner2 = new XAPI({ endpoint: `${app.url}/xapi`, auth: `Bearer ${accessToken}`, version: '2.0.0' as never });
  const created = await send('POST', '/lrs-credentials', {
    as: roles.admin,
    body: { label: 'Course authoring tool', scopes: ['activities_profile', 'statements/read/mine'] },
  });
  expect(created.status).toBe(201);
  const { key, secret } = (await created.json()) as { key: string; secret: string };
  tool = new XAPI({ endpoint: `${app.url}/xapi`, auth: XAPI.toBasicAuth(key, secret) });
});

describe('statements through @xapi/xapi with the student sign-in token', () => {
  test('About answers both versions', async () => {
    const about = await learner.getAbout();
    expect(about.data.version).toEqual(['1.0.3', '2.0.0']);
    expect(about.headers['x-experience-api-version']).toBe('1.0.3');
  });

  test('sends one and a batch, gets one by id, queries by agent, verb, activity and since, pages with more', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const activity = `${course}/query-${randomUUID()}`;
    const one = await learner.sendStatement({ statement: completed(activity) });
    const [id] = one.data;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const batch = await learner.sendStatements({
      statements: [1, 2, 3].map(() => ({ ...completed(activity), verb: XAPI.Verbs.PROGRESSED })),
    });
    expect(batch.data).toHaveLength(3);
    const got = await learner.getStatement({ statementId: id as string });
    expect(got.data).toMatchObject({ id, actor: me, verb: { id: XAPI.Verbs.COMPLETED.id }, object: { id: activity } });
    expect(got.data.authority).toMatchObject({ account: { name: student.id } });

    const mine = await learner.getStatements({ agent: me, activity, since });
    expect(mine.data.statements.map((s) => s.id).sort()).toEqual([id, ...batch.data].sort());
    expect(mine.headers['x-experience-api-consistent-through']).toBeTruthy();
    const progressed = await learner.getStatements({ agent: me, verb: XAPI.Verbs.PROGRESSED.id, activity });
    expect(progressed.data.statements.map((s) => s.id).sort()).toEqual([...batch.data].sort());

    const first = await learner.getStatements({ agent: me, activity, limit: 3, ascending: true });
    expect(first.data.statements.map((s) => s.id)).toEqual([id, batch.data[0], batch.data[1]]);
    expect(first.data.more).toBeTruthy();
    const rest = await learner.getMoreStatements({ more: first.data.more as string });
    expect((rest.data as { statements: Statement[] }).statements.map((s) => s.id)).toEqual([batch.data[2]]);
  });

  test('voids a statement: gone from queries, found by voidedStatementId', async () => {
    const activity = `${course}/void-${randomUUID()}`;
    const [id] = (await learner.sendStatement({ statement: completed(activity) })).data;
    const [voidingId] = (await learner.voidStatement({ actor: me, statementId: id as string })).data;
    expect(voidingId).toBeTruthy();
    expect(await statusOf(learner.getStatement({ statementId: id as string }))).toBe(404);
    const voided = await learner.getVoidedStatement({ voidedStatementId: id as string });
    expect(voided.data.id).toBe(id);
    // What is left matching the filter is the voiding statement: it targets a statement that matches it.
    const left = await learner.getStatements({ agent: me, activity });
    expect(left.data.statements.map((s) => s.id)).toEqual([voidingId]);
  });

  // With the fetch adapter (what browser content uses): under Node, axios replaces the multipart/mixed
  // Content-Type the library sets on its Blob body with application/octet-stream, which the LRS refuses (400),
  // as the specification requires of anything but JSON or multipart/mixed.
  test('sends an attachment as multipart/mixed (fetch adapter) and gets its bytes back', async () => {
    const bytes = `certificate ${randomUUID()}`;
    const statement: Statement = {
      ...completed(`${course}/certificate`),
      attachments: [
        {
          usageType: XAPI.AttachmentUsages.CERTIFICATE_OF_COMPLETION,
          display: { 'en-US': 'Certificate' },
          contentType: 'text/plain',
          length: Buffer.byteLength(bytes),
          sha2: createHash('sha256').update(bytes).digest('hex'),
        },
      ],
    };
    const body = new TextEncoder().encode(bytes).buffer as ArrayBuffer;
    const [id] = (await learnerFetch.sendStatement({ statement, attachments: [body] })).data;
    const got = await learnerFetch.getStatement({ statementId: id as string, attachments: true });
    const parts = got.data as unknown as [Statement, string];
    expect(parts[0].id).toBe(id);
    expect(parts[1]).toBe(bytes);
  });

  test('speaks 2.0.0 too; statements about someone else are refused', async () => {
    const [id] = (await learner2.sendStatement({ statement: completed(`${course}/v2`) })).data;
    const got = await learner2.getStatement({ statementId: id as string });
    expect(got.headers['x-experience-api-version']).toBe('2.0.0');
    expect(got.data.version).toBe('2.0.0');
    const other = { objectType: 'Agent', account: { homePage: 'http://localhost:5173', name: roles.student.id } };
    expect(
      await statusOf(learner.sendStatement({ statement: { ...completed(course), actor: other } as Statement })),
    ).toBe(403);
    expect(await statusOf(learner.getStatements({ agent: other as Agent }))).toBe(200);
    expect((await learner.getStatements({ agent: other as Agent })).data.statements).toEqual([]);
  });

  test('a completed statement from the library moves the module the activity belongs to', async () => {
    const { programId, moduleIds } = await createProgram(app.db.sql, { hours: [5] });
    const moduleId = moduleIds[0] as string;
    const activity = `${course}/module-${randomUUID()}`;
    const mapped = await send('PUT', `/modules/${moduleId}/xapi-activities`, {
      as: roles.admin,
      body: { activities: [activity] },
    });
    expect(mapped.status).toBe(200);
    const enrollmentId = await createEnrollment(app.db.sql, student.id, programId);
    const [id] = (await learner.sendStatement({ statement: completed(activity) })).data;
    const progress = await send('GET', `/enrollments/${enrollmentId}/progress`, { as: student });
    const body = (await progress.json()) as { modules: { status: string; lastXapiActivity: unknown }[] };
    expect(body.modules[0]).toMatchObject({
      status: 'completed',
      lastXapiActivity: { statementId: id, verb: 'completed' },
    });
  });
});

describe('documents through @xapi/xapi', () => {
  test('State: set, merge, read, list, a stale ETag refused, delete', async () => {
    const activityId = `${course}/state`;
    const stateId = `bookmark-${randomUUID()}`;
    await learner.setState({ agent: me, activityId, stateId, state: { page: 3 } });
    await learner.createState({ agent: me, activityId, stateId, state: { score: 7 } });
    const read = await learner.getState({ agent: me, activityId, stateId });
    expect(read.data).toEqual({ page: 3, score: 7 });
    const etag = String(read.headers.etag);
    expect(etag).toMatch(/^"[0-9a-f]{40}"$/);
    const ids = await learner.getStates({ agent: me, activityId });
    expect(ids.data).toContain(stateId);
    await learner.setState({ agent: me, activityId, stateId, state: { page: 4 }, etag, matchHeader: 'If-Match' });
    expect(
      await statusOf(
        learner.setState({ agent: me, activityId, stateId, state: { page: 5 }, etag, matchHeader: 'If-Match' }),
      ),
    ).toBe(412);
    expect((await learner.getState({ agent: me, activityId, stateId })).data).toEqual({ page: 4 });
    await learner.deleteState({ agent: me, activityId, stateId });
    expect(await statusOf(learner.getState({ agent: me, activityId, stateId }))).toBe(404);
    const other = { objectType: 'Agent', account: { homePage: 'http://localhost:5173', name: roles.student.id } };
    expect(await statusOf(learner.setState({ agent: other as Agent, activityId, stateId, state: { x: 1 } }))).toBe(403);
  });

  test('Activity Profile: the tool writes it (If-None-Match, then If-Match), the student reads it and cannot write', async () => {
    const activityId = `${course}/profile-${randomUUID()}`;
    const profileId = 'settings';
    await tool.setActivityProfile({
      activityId,
      profileId,
      profile: { passMark: 80 },
      etag: '*',
      matchHeader: 'If-None-Match',
    });
    const read = await learner.getActivityProfile({ activityId, profileId });
    expect(read.data).toEqual({ passMark: 80 });
    await tool.setActivityProfile({
      activityId,
      profileId,
      profile: { passMark: 75 },
      etag: String(read.headers.etag),
      matchHeader: 'If-Match',
    });
    expect((await learner.getActivityProfile({ activityId, profileId })).data).toEqual({ passMark: 75 });
    expect((await learner.getActivityProfiles({ activityId })).data).toEqual([profileId]);
    expect(
      await statusOf(
        tool.setActivityProfile({ activityId, profileId, profile: {}, etag: '*', matchHeader: 'If-None-Match' }),
      ),
    ).toBe(412);
    expect(
      await statusOf(
        learner.setActivityProfile({ activityId, profileId, profile: {}, etag: '*', matchHeader: 'If-None-Match' }),
      ),
    ).toBe(403);
  });
});
