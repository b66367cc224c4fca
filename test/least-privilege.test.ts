// The five least-privilege decisions of docs/access-policy.md, each from both sides: the role that
// lost a grant is refused (403, and the answer carries none of the record), and the roles that need
// it for their job still get the real record.
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import type { Role } from '../lib/access';
import { useTestApp } from './helpers/app';
import { createEnrollment, createProgram, type TestProgram } from './helpers/records';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

const people = {} as Record<Role, TestUser>;
let learner: TestUser;
let program: TestProgram;
let enrollmentId: string;
let credentialId: string;

async function call(method: string, path: string, who: TestUser, body?: unknown) {
  const response = await app.api(path, {
    method,
    headers: { ...who.headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, text: await response.text() };
}
const get = (path: string, who: TestUser) => call('GET', path, who);

beforeAll(async () => {
  const sql = app.db.sql;
  for (const role of ['admin', 'staff', 'instructor', 'registrar', 'finance', 'student'] as const) {
    people[role] = await createTestUser(sql, { roles: [role] });
  }
  people.admissions_counselor = await createTestUser(sql, { roles: ['admissions_counselor'] });
  people.admissions_manager = await createTestUser(sql, { roles: ['admissions_manager'] });
  learner = people.student;
  program = await createProgram(sql, { code: `LP-${randomBytes(3).toString('hex')}`, hours: [5], modulePrefix: 'L' });
  await sql`insert into instructor_assignments (instructor_id, program_id)
            values (${people.instructor.id}, ${program.programId})`;
  enrollmentId = await createEnrollment(sql, learner.id, program.programId);
  const moduleId = program.moduleIds[0] as string;
  expect((await call('PUT', `/scorm/${moduleId}`, learner, { suspendData: 'q1=b;q2=a' })).status).toBe(200);
  const graded = await call('PUT', `/enrollments/${enrollmentId}/progress/${moduleId}`, people.instructor, {
    status: 'passed',
    score: 88,
  });
  expect(graded.status).toBe(200);
  const issued = await call('POST', '/credentials', people.registrar, {
    studentId: learner.id,
    programId: program.programId,
  });
  expect(issued.status).toBe(201);
  credentialId = (JSON.parse(issued.text) as { id: string }).id;
});

describe('decision 1: the role catalogue is for admin and staff', () => {
  test('admin and staff read it', async () => {
    for (const who of [people.admin, people.staff]) {
      const answer = await get('/roles', who);
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('admissions_counselor');
    }
  });

  test('every other role is refused, and learns no role description', async () => {
    for (const role of ['instructor', 'registrar', 'finance', 'student', 'admissions_counselor'] as const) {
      const answer = await get('/roles', people[role]);
      expect(answer.status, role).toBe(403);
      expect(answer.text).not.toContain('Full administration');
    }
  });

  test('a role is still granted by name, so admins need nothing more', async () => {
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    expect((await call('PUT', `/users/${someone.id}/roles/finance`, people.admin)).status).toBe(204);
  });
});

describe('decision 2: every student’s credentials are for the registrar and admins', () => {
  test('staff are refused the list, with or without a student named', async () => {
    for (const path of ['/credentials', `/credentials?studentId=${learner.id}`]) {
      const answer = await get(path, people.staff);
      expect(answer.status, path).toBe(403);
      expect(answer.text).not.toContain(credentialId);
    }
  });

  test('the registrar and admins list them; the student lists their own', async () => {
    for (const who of [people.registrar, people.admin, learner]) {
      const answer = await get(`/credentials?studentId=${learner.id}`, who);
      expect(answer.status).toBe(200);
      expect(answer.text).toContain(credentialId);
    }
  });
});

describe('decision 3: progress is for the student, their instructors, admins and the registrar', () => {
  test('staff are refused', async () => {
    const answer = await get(`/enrollments/${enrollmentId}/progress`, people.staff);
    expect(answer.status).toBe(403);
    expect(answer.text).not.toContain('passed');
  });

  test('the registrar (who certifies from it), the instructor, an admin and the student read it', async () => {
    for (const who of [people.registrar, people.instructor, people.admin, learner]) {
      const answer = await get(`/enrollments/${enrollmentId}/progress`, who);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.text)).toMatchObject({ completedModules: 1, modules: [{ status: 'passed' }] });
    }
  });
});

describe('decision 4: a learner’s SCORM answers are for their instructors only', () => {
  const path = () => `/scorm/${program.moduleIds[0]}/users/${learner.id}`;

  test('an admin is refused, and sees none of the answers', async () => {
    const answer = await get(path(), people.admin);
    expect(answer.status).toBe(403);
    expect(answer.text).not.toContain('q1=b');
  });

  test('the instructor of the programme reads them', async () => {
    const answer = await get(path(), people.instructor);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ userId: learner.id, suspendData: 'q1=b;q2=a' });
  });
});

describe('decision 5: the management view of programmes is for those who manage, teach or record them', () => {
  const retiredCode = `LR-${randomBytes(3).toString('hex')}`;
  let retiredId: string;
  beforeAll(async () => {
    const [row] = await app.db.sql<{ id: string }[]>`
      insert into programs (code, name, credential_level, total_clock_hours, status)
      values (${retiredCode}, 'Retired programme', 'certificate', 0, 'retired') returning id`;
    retiredId = (row as { id: string }).id;
  });

  test('finance and both admissions roles are refused, list and single programme', async () => {
    for (const role of ['finance', 'admissions_counselor', 'admissions_manager'] as const) {
      const list = await get('/manage/programs?limit=200', people[role]);
      expect(list.status, role).toBe(403);
      expect(list.text).not.toContain(retiredCode);
      expect((await get(`/manage/programs/${program.programId}`, people[role])).status, role).toBe(403);
    }
  });

  test('they still find every active programme in the public catalogue', async () => {
    for (const role of ['finance', 'admissions_counselor'] as const) {
      const answer = await get(`/programs/${program.programId}`, people[role]);
      expect(answer.status, role).toBe(200);
      expect(answer.text).toContain(program.moduleIds[0]);
    }
  });

  test('admin, staff, the instructor and the registrar read it, retired programmes included', async () => {
    for (const who of [people.admin, people.staff, people.instructor, people.registrar]) {
      const list = await get('/manage/programs?status=retired&limit=200', who);
      expect(list.status).toBe(200);
      expect(list.text).toContain(retiredCode);
      expect((await get(`/manage/programs/${retiredId}`, who)).status).toBe(200);
    }
  });
});
