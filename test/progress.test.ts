// Module progress and SCORM resume data over HTTP: ownership, ranges, accumulation, the summary of
// every module, and ugly input.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, recordProgress } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let student: TestUser;
let otherStudent: TestUser;
let instructor: TestUser;
let otherInstructor: TestUser;
let admin: TestUser;
let registrar: TestUser;
let finance: TestUser;

interface Fixture {
  programId: string;
  moduleIds: string[];
  enrollmentId: string;
}

let program: Fixture;
let otherProgramModuleId: string;
let otherEnrollmentId: string;

/** A programme with modules of the given clock hours, positions 1..n, codes M1..Mn. */
const programWith = (code: string, hours: number[]) => createProgram(app.db.sql, { code, hours, modulePrefix: 'M' });

const enroll = (user: TestUser, programId: string, status = 'active') =>
  createEnrollment(app.db.sql, user.id, programId, { status });

beforeAll(async () => {
  const sql = app.db.sql;
  ({ student, instructor, admin, registrar, finance } = await createRoleAccounts(sql));
  otherStudent = await createTestUser(sql, { roles: ['student'] });
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  const main = await programWith('PROG-A', [10, 30, 60]);
  program = { ...main, enrollmentId: await enroll(student, main.programId) };
  const other = await programWith('PROG-B', [5]);
  otherProgramModuleId = other.moduleIds[0] as string;
  otherEnrollmentId = await enroll(otherStudent, main.programId);
  await assignInstructor(sql, instructor.id, main.programId);
});

const put = (path: string, user: TestUser | null, body: unknown) => send('PUT', path, { as: user, body });
const get = (path: string, user: TestUser | null) => send('GET', path, { as: user });

const progressPath = (moduleIndex: number, enrollmentId = program.enrollmentId) =>
  `/enrollments/${enrollmentId}/progress/${program.moduleIds[moduleIndex]}`;

interface Progress {
  status: string;
  score: number | null;
  progressPct: number;
  lastScrollPosition: number;
  activeTimeSeconds: number;
  sectionsViewed: string[];
  lastAccessedAt: string | null;
}

const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];

describe('recording progress', () => {
  test('active time accumulates across reports and sections are merged without duplicates', async () => {
    const first = await put(progressPath(0), student, {
      activeSecondsDelta: 120,
      sectionsViewed: ['intro', 'a', 'intro'],
      lastScrollPosition: 300,
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const one = (await first.json()) as Progress;
    expect(one).toMatchObject({ status: 'incomplete', activeTimeSeconds: 120, sectionsViewed: ['intro', 'a'] });
    expect(one.lastAccessedAt).not.toBeNull();

    const second = await put(progressPath(0), student, { activeSecondsDelta: 45, sectionsViewed: ['a', 'b'] });
    const two = (await second.json()) as Progress;
    expect(two.activeTimeSeconds).toBe(165);
    expect(two.sectionsViewed).toEqual(['intro', 'a', 'b']);
    expect(two.lastScrollPosition).toBe(300);
  });

  test('concurrent reports all count (one upsert each, no lost update)', async () => {
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        put(progressPath(2), student, { activeSecondsDelta: 10, sectionsViewed: [`s${i}`] }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200));
    const [row] = await app.db.sql`
      select active_time_seconds::int as seconds, jsonb_array_length(sections_viewed) as sections, count(*) over () as rows
        from module_progress where enrollment_id = ${program.enrollmentId} and module_id = ${program.moduleIds[2] as string}`;
    expect(row).toMatchObject({ seconds: 100, sections: 10 });
    expect(Number(row?.rows)).toBe(1);
  });

  test('out-of-range and mistyped values are 400s naming the field, and change nothing', async () => {
    const before = await app.db.sql`select * from module_progress where enrollment_id = ${program.enrollmentId}`;
    for (const [body, field] of [
      [{ score: 101 }, 'body.score'],
      [{ score: -1 }, 'body.score'],
      [{ score: '90' }, 'body.score'],
      [{ progressPct: 100.5 }, 'body.progressPct'],
      [{ progressPct: 101 }, 'body.progressPct'],
      [{ lastScrollPosition: -1 }, 'body.lastScrollPosition'],
      [{ activeSecondsDelta: 3601 }, 'body.activeSecondsDelta'],
      [{ activeSecondsDelta: -5 }, 'body.activeSecondsDelta'],
      [{ status: 'graduated' }, 'body.status'],
      [{ sectionsViewed: Array.from({ length: 201 }, (_, i) => `s${i}`) }, 'body.sectionsViewed'],
      [{ sectionsViewed: ['x'.repeat(101)] }, 'body.sectionsViewed.0'],
      [{}, 'body'],
    ] as const) {
      const response = await put(progressPath(0), instructor, body);
      expect(response.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(await fieldsOf(response)).toContain(field);
    }
    const malformed = await put(progressPath(0), student, '{"activeSecondsDelta": 10');
    expect(malformed.status).toBe(400);
    const after = await app.db.sql`select * from module_progress where enrollment_id = ${program.enrollmentId}`;
    expect(after).toEqual(before);
  });

  test('a student reports activity but cannot grade nor move a module backwards', async () => {
    expect((await put(progressPath(1), student, { score: 90 })).status).toBe(403);
    expect((await put(progressPath(1), student, { status: 'passed' })).status).toBe(403);
    const done = await put(progressPath(1), student, { status: 'completed', progressPct: 80 });
    expect(((await done.json()) as Progress).status).toBe('completed');
    const back = await put(progressPath(1), student, { status: 'incomplete', progressPct: 20 });
    expect(back.status).toBe(200);
    expect((await back.json()) as Progress).toMatchObject({ status: 'completed', progressPct: 80 });
  });

  test('an instructor enrolled as a student cannot grade their own enrollment', async () => {
    const dual = await createTestUser(app.db.sql, { roles: ['student', 'instructor'] });
    const enrollmentId = await enroll(dual, program.programId);
    const path = `/enrollments/${enrollmentId}/progress/${program.moduleIds[0]}`;
    expect((await put(path, dual, { score: 100 })).status).toBe(403);
    expect((await put(path, dual, { status: 'passed' })).status).toBe(403);
    expect((await put(path, dual, { activeSecondsDelta: 30 })).status).toBe(200);
    const [row] = await app.db.sql`select status, score from module_progress where enrollment_id = ${enrollmentId}`;
    expect(row).toEqual({ status: 'incomplete', score: null });
  });

  test('the instructor of the programme grades and corrects; an admin too', async () => {
    const graded = await put(progressPath(1), instructor, { status: 'passed', score: 88 });
    expect(graded.status).toBe(200);
    const body = (await graded.json()) as Progress;
    expect(body).toMatchObject({ status: 'passed', score: 88, progressPct: 80 });
    const corrected = await put(progressPath(1), admin, { progressPct: 50 });
    expect(((await corrected.json()) as Progress).progressPct).toBe(50);
    // A grader's write is not the learner's access.
    const [row] = await app.db.sql`
      select status, score from module_progress
       where enrollment_id = ${program.enrollmentId} and module_id = ${program.moduleIds[1] as string}`;
    expect(row).toEqual({ status: 'passed', score: 88 });
  });

  test("someone else's enrollment, a module of another programme and unknown ids are 404s", async () => {
    expect((await put(progressPath(0, otherEnrollmentId), student, { activeSecondsDelta: 1 })).status).toBe(404);
    expect((await put(progressPath(0), otherInstructor, { score: 50 })).status).toBe(404);
    const foreignModule = `/enrollments/${program.enrollmentId}/progress/${otherProgramModuleId}`;
    expect((await put(foreignModule, instructor, { score: 50 })).status).toBe(404);
    const unknown = `/enrollments/00000000-0000-4000-8000-000000000000/progress/${program.moduleIds[0]}`;
    expect((await put(unknown, admin, { score: 50 })).status).toBe(404);
    expect((await put(`/enrollments/not-a-uuid/progress/${program.moduleIds[0]}`, admin, { score: 1 })).status).toBe(
      400,
    );
    const [row] = await app.db.sql`
      select count(*)::int as n from module_progress where module_id = ${otherProgramModuleId}`;
    expect(row?.n).toBe(0);
  });

  test('anonymous 401; roles that do not record progress 403', async () => {
    expect((await put(progressPath(0), null, { activeSecondsDelta: 1 })).status).toBe(401);
    expect((await put(progressPath(0), finance, { activeSecondsDelta: 1 })).status).toBe(403);
    expect((await put(progressPath(0), registrar, { activeSecondsDelta: 1 })).status).toBe(403);
  });

  test('merged sections stay bounded: a report that would pass 200 is refused and changes nothing', async () => {
    const { programId, moduleIds } = await programWith('PROG-CAP', [1]);
    const enrollmentId = await enroll(student, programId);
    const path = `/enrollments/${enrollmentId}/progress/${moduleIds[0]}`;
    const sections = (from: number, count: number) => Array.from({ length: count }, (_, i) => `s${from + i}`);
    expect((await put(path, student, { sectionsViewed: sections(0, 150), activeSecondsDelta: 5 })).status).toBe(200);
    const over = await put(path, student, { sectionsViewed: sections(100, 120), activeSecondsDelta: 5 });
    expect(over.status).toBe(400);
    expect(await fieldsOf(over)).toContain('body.sectionsViewed');
    const [row] = await app.db.sql`
      select jsonb_array_length(sections_viewed) as sections, active_time_seconds::int as seconds
        from module_progress where enrollment_id = ${enrollmentId}`;
    expect(row).toEqual({ sections: 150, seconds: 5 });
    // Re-reporting sections already stored is fine.
    expect((await put(path, student, { sectionsViewed: sections(100, 100) })).status).toBe(200);
  });

  test('the schema bounds sections viewed too: no writer stores more than 200, or a non-array', async () => {
    const { programId, moduleIds } = await programWith('PROG-CHK', [1]);
    const enrollmentId = await enroll(student, programId);
    const insert = (sections: string[] | Record<string, boolean>) => app.db.sql`
      insert into module_progress (enrollment_id, module_id, sections_viewed)
      values (${enrollmentId}, ${moduleIds[0] as string}, ${app.db.sql.json(sections)})`;
    const many = (count: number) => Array.from({ length: count }, (_, i) => `s${i}`);
    await expect(insert(many(201))).rejects.toMatchObject({ code: '23514' });
    await expect(insert({ s1: true })).rejects.toMatchObject({ code: '23514' });
    await insert(many(200));
    await expect(
      app.db.sql`update module_progress set sections_viewed = sections_viewed || '["one-more"]'::jsonb
                  where enrollment_id = ${enrollmentId}`,
    ).rejects.toMatchObject({ code: '23514' });
  });

  test('a teaching assignment without the instructor role grants nothing', async () => {
    // E.g. a former instructor whose role was withdrawn while the assignment row stayed behind.
    const former = await createTestUser(app.db.sql, { roles: ['student'] });
    await assignInstructor(app.db.sql, former.id, program.programId);
    expect((await put(progressPath(0, otherEnrollmentId), former, { activeSecondsDelta: 1 })).status).toBe(404);
    expect((await put(progressPath(0, otherEnrollmentId), former, { score: 10 })).status).toBe(403);
    expect((await get(`/enrollments/${otherEnrollmentId}/progress`, former)).status).toBe(404);
    const [row] = await app.db.sql`
      select count(*)::int as n from module_progress where enrollment_id = ${otherEnrollmentId}`;
    expect(row?.n).toBe(0);
  });

  test('a withdrawn enrollment takes no more reports', async () => {
    const { programId, moduleIds } = await programWith('PROG-W', [1]);
    const enrollmentId = await enroll(student, programId, 'withdrawn');
    const response = await put(`/enrollments/${enrollmentId}/progress/${moduleIds[0]}`, student, {
      activeSecondsDelta: 5,
    });
    expect(response.status).toBe(409);
  });
});

describe('the progress summary', () => {
  test('lists every module in order, including those not started, with the real programme name', async () => {
    const { programId, moduleIds } = await programWith('PROG-S', [10, 30, 60]);
    const enrollmentId = await enroll(student, programId);
    await recordProgress(app.db.sql, enrollmentId, moduleIds[0] as string, { status: 'passed', score: 92 });
    await recordProgress(app.db.sql, enrollmentId, moduleIds[1] as string, { status: 'incomplete', progressPct: 50 });
    const response = await get(`/enrollments/${enrollmentId}/progress`, student);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const summary = (await response.json()) as {
      program: { code: string; name: string };
      totalModules: number;
      completedModules: number;
      overallPct: number;
      modules: { code: string; status: string; progressPct: number; score: number | null }[];
    };
    expect(summary.program).toMatchObject({ code: 'PROG-S', name: 'Programme PROG-S' });
    expect(summary.totalModules).toBe(3);
    expect(summary.completedModules).toBe(1);
    expect(summary.modules.map((module) => [module.code, module.status, module.progressPct, module.score])).toEqual([
      ['M1', 'passed', 100, 92],
      ['M2', 'incomplete', 50, null],
      ['M3', 'not_started', 0, null],
    ]);
    // Weighted by clock hours: (10 × 1 + 30 × 0.5 + 60 × 0) / 100.
    expect(summary.overallPct).toBe(25);
  });

  test('readable by the student, the instructor of the programme and records staff; a 404 for anyone else', async () => {
    const path = `/enrollments/${program.enrollmentId}/progress`;
    for (const user of [student, instructor, admin, registrar]) {
      expect((await get(path, user)).status, user.roles[0]).toBe(200);
    }
    expect((await get(path, otherStudent)).status).toBe(404);
    expect((await get(path, otherInstructor)).status).toBe(404);
    expect((await get(path, finance)).status).toBe(403);
    expect((await get(path, null)).status).toBe(401);
    const [audit] = await app.db.sql`
      select phi, user_id from audit_log where route = 'enrollments/{enrollmentId}/progress' and status = 200
       order by id desc limit 1`;
    expect(audit?.phi).toBe(true);
  });
});

describe('SCORM resume data', () => {
  const scormPath = (index = 0) => `/scorm/${program.moduleIds[index]}`;

  test('a student saves and resumes; only the fields sent overwrite; script is stored as data', async () => {
    const suspend = `<script>alert("x")</script>'; drop table scorm_records; -- ✓ Zoë`;
    const saved = await put(scormPath(), student, {
      lessonStatus: 'incomplete',
      scoreScaled: 0.5,
      scoreRaw: 42.5,
      sessionTime: 'PT1H5M30S',
      suspendData: suspend,
      interactions: [{ id: 'q1', result: 'correct' }],
    });
    expect(saved.status).toBe(200);
    const again = await put(scormPath(), student, { sessionTime: '0001:05:30.5' });
    expect(again.status).toBe(200);
    const resumed = await get(scormPath(), student);
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get('cache-control')).toBe('no-store');
    expect(await resumed.json()).toMatchObject({
      lessonStatus: 'incomplete',
      scoreScaled: 0.5,
      scoreRaw: 42.5,
      sessionTime: '0001:05:30.5',
      suspendData: suspend,
      interactions: [{ id: 'q1', result: 'correct' }],
    });
    const [row] = await app.db.sql`select count(*)::int as n from scorm_records where user_id = ${student.id}`;
    expect(row?.n).toBe(1);
  });

  test('session times, scores and sizes are validated', async () => {
    for (const sessionTime of ['PT', 'P', '1:5:3', '0001:65:00', 'PT1.5H', 'yesterday', 'PT1H'.repeat(10)]) {
      const response = await put(scormPath(), student, { sessionTime });
      expect(response.status, sessionTime).toBe(400);
      expect(await fieldsOf(response)).toContain('body.sessionTime');
    }
    for (const sessionTime of ['PT0S', 'P1DT2H', 'PT12M3.25S', '00:00:01', '9999:59:59']) {
      expect((await put(scormPath(), student, { sessionTime })).status, sessionTime).toBe(200);
    }
    expect(await fieldsOf(await put(scormPath(), student, { scoreScaled: 1.5 }))).toContain('body.scoreScaled');
    expect(await fieldsOf(await put(scormPath(), student, { scoreRaw: 10_000 }))).toContain('body.scoreRaw');
    const tooLong = await put(scormPath(), student, { suspendData: 'x'.repeat(64_001) });
    expect(tooLong.status).toBe(400);
    expect(await fieldsOf(tooLong)).toContain('body.suspendData');
    const huge = await put(scormPath(), student, { suspendData: 'x'.repeat(600 * 1024) });
    expect(huge.status).toBe(413);
    const manyInteractions = await put(scormPath(), student, {
      interactions: Array.from({ length: 251 }, (_, i) => ({ id: `q${i}` })),
    });
    expect(await fieldsOf(manyInteractions)).toContain('body.interactions');
    expect((await put(scormPath(), student, { interactions: 'all of them' })).status).toBe(400);
  });

  test('only for modules of a programme the student is actively enrolled in', async () => {
    const response = await put(`/scorm/${otherProgramModuleId}`, student, { lessonStatus: 'browsed' });
    expect(response.status).toBe(404);
    expect((await put(scormPath(), instructor, { lessonStatus: 'browsed' })).status).toBe(403);
    expect((await put(scormPath(), null, { lessonStatus: 'browsed' })).status).toBe(401);
  });

  test("an instructor of the programme reads a learner's data; other instructors get a 404, anyone else 403", async () => {
    const path = `/scorm/${program.moduleIds[0]}/users/${student.id}`;
    expect((await get(path, instructor)).status).toBe(200);
    expect((await get(path, admin)).status).toBe(403);
    expect((await get(path, otherInstructor)).status).toBe(404);
    expect((await get(path, otherStudent)).status).toBe(403);
    expect((await get(`/scorm/${program.moduleIds[0]}`, otherStudent)).status).toBe(404);
  });
});
