// Enrollments over HTTP on a real database: creation rules (a student, an active programme, one
// open enrollment per programme even under concurrency), the status life cycle, dates, paging and
// who may see which enrollment.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
const sql = () => app.db.sql;

interface Enrollment {
  id: string;
  student: { id: string; firstName: string; lastName: string };
  program: { id: string; code: string; name: string };
  status: string;
  startDate: string;
  expectedEndDate: string | null;
  statusChangedAt: string;
  statusChangedBy: string | null;
}
interface EnrollmentPage {
  items: Enrollment[];
  next: string | null;
}
interface Problem {
  type: string;
  detail: string;
  errors?: { field: string; message: string }[];
}

async function enroll(as: TestUser, body: Record<string, unknown>, expected = 201): Promise<Enrollment & Problem> {
  const response = await send('POST', '/enrollments', { as, body: { startDate: '2026-01-05', ...body } });
  expect(response.status, JSON.stringify(await response.clone().json())).toBe(expected);
  return (await response.json()) as Enrollment & Problem;
}

async function transition(id: string, to: string, as: TestUser, expected = 200): Promise<Enrollment & Problem> {
  const response = await send('POST', `/enrollments/${id}/transitions`, { as, body: { to } });
  expect(response.status, `→ ${to}`).toBe(expected);
  return (await response.json()) as Enrollment & Problem;
}

/** Withdraws (or, when pending, cancels) through the withdrawal route, the one way out with a refund. */
async function withdraw(id: string, as: TestUser): Promise<void> {
  const response = await send('POST', `/enrollments/${id}/withdrawal`, { as, body: { kind: 'official' } });
  expect(response.status, await response.clone().text()).toBe(201);
}

async function get<T>(path: string, as: TestUser, expected = 200): Promise<T> {
  const response = await send('GET', path, { as });
  expect(response.status, path).toBe(expected);
  return (await response.json()) as T;
}

let admin: TestUser;
let staff: TestUser;
let registrar: TestUser;
let instructor: TestUser;
let finance: TestUser;
let ana: TestUser;
let ben: TestUser;
let programA: string;
let programB: string;
let retired: string;

beforeAll(async () => {
  ({ admin, staff, registrar, instructor, finance } = await createRoleAccounts(sql()));
  ana = await createTestUser(sql(), { roles: ['student'], firstName: 'Ana', lastName: 'Álvarez' });
  ben = await createTestUser(sql(), { roles: ['student'], firstName: 'Ben', lastName: 'Brooks' });
  programA = (await createProgram(sql(), { code: 'EA' })).programId;
  programB = (await createProgram(sql(), { code: 'EB' })).programId;
  retired = (await createProgram(sql(), { code: 'EOLD', status: 'retired' })).programId;
  await assignInstructor(sql(), instructor.id, programA);
});

describe('creating an enrollment', () => {
  test('a registrar enrolls a student: 201 with the programme and the student’s name, who and when', async () => {
    const response = await send('POST', '/enrollments', {
      as: registrar,
      body: {
        studentId: ana.id,
        programId: programA,
        startDate: '2026-01-05',
        expectedEndDate: '2026-05-22',
      },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const enrollment = (await response.json()) as Enrollment;
    expect(response.headers.get('location')).toBe(`/api/enrollments/${enrollment.id}`);
    expect(enrollment).toMatchObject({
      student: { id: ana.id, firstName: 'Ana', lastName: 'Álvarez' },
      program: { id: programA, code: 'EA', name: 'Programme EA' },
      status: 'active',
      startDate: '2026-01-05',
      expectedEndDate: '2026-05-22',
      statusChangedBy: registrar.id,
    });
  });

  test('anonymous 401; instructor, finance and students 403', async () => {
    const body = { studentId: ben.id, programId: programB, startDate: '2026-01-05' };
    expect((await send('POST', '/enrollments', { body: body })).status).toBe(401);
    for (const who of [instructor, finance, ben]) {
      expect((await send('POST', '/enrollments', { as: who, body: body })).status).toBe(403);
    }
  });

  test('the student must be a student, the programme must exist and be active', async () => {
    const notStudent = await enroll(staff, { studentId: instructor.id, programId: programB }, 400);
    expect(notStudent.errors?.map((e) => e.field)).toEqual(['body.studentId']);
    const unknown = await enroll(staff, { studentId: ben.id, programId: '00000000-0000-4000-8000-000000000000' }, 400);
    expect(unknown.errors?.map((e) => e.field)).toEqual(['body.programId']);
    const old = await enroll(staff, { studentId: ben.id, programId: retired }, 409);
    expect(old.detail).toMatch(/retired/);
    const gone = await createTestUser(sql(), { roles: ['student'] });
    await sql()`update users set status = 'inactive' where id = ${gone.id}`;
    expect((await enroll(staff, { studentId: gone.id, programId: programB }, 409)).detail).toMatch(/deactivated/);
  });

  test('rejects bad bodies naming the field', async () => {
    for (const [body, field] of [
      [{ studentId: ben.id, programId: programB, startDate: '2026-02-30' }, 'body.startDate'],
      [{ studentId: ben.id, programId: programB, startDate: '05/01/2026' }, 'body.startDate'],
      [
        { studentId: ben.id, programId: programB, startDate: '2026-03-01', expectedEndDate: '2026-02-01' },
        'body.expectedEndDate',
      ],
      [{ studentId: ben.id, programId: programB, startDate: '2026-03-01', status: 'completed' }, 'body.status'],
      [{ studentId: "1' or '1'='1", programId: programB, startDate: '2026-03-01' }, 'body.studentId'],
      [{ studentId: ben.id, programId: programB, startDate: '2026-03-01', userId: admin.id }, 'body'],
    ] as const) {
      const response = await send('POST', '/enrollments', { as: staff, body: body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      const problem = (await response.json()) as Problem;
      expect(
        problem.errors?.map((e) => e.field),
        JSON.stringify(body),
      ).toContain(field);
    }
  });

  test('one open enrollment per student and programme: 10 concurrent requests make exactly one', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        send('POST', '/enrollments', {
          as: registrar,
          body: {
            studentId: student.id,
            programId: programB,
            startDate: '2026-01-05',
          },
        }),
      ),
    );
    expect(responses.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)]);
    const [row] = await sql()`select count(*)::int as n from enrollments where user_id = ${student.id}`;
    expect(row?.n).toBe(1);
    // Pending counts as open too; a closed enrollment does not: the student may enroll again.
    const [first] = await sql()`select id from enrollments where user_id = ${student.id}`;
    await withdraw(first?.id, registrar);
    await enroll(registrar, { studentId: student.id, programId: programB, status: 'pending' });
    await enroll(registrar, { studentId: student.id, programId: programB }, 409);
  });
});

describe('the life cycle', () => {
  test('pending → active → on_hold → active → completed, recording who and when', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const created = await enroll(staff, { studentId: student.id, programId: programA, status: 'pending' });
    expect(created.status).toBe('pending');
    let previous = created.statusChangedAt;
    for (const to of ['active', 'on_hold', 'active', 'completed']) {
      const moved = await transition(created.id, to, registrar);
      expect(moved).toMatchObject({ status: to, statusChangedBy: registrar.id });
      expect(moved.statusChangedAt >= previous).toBe(true);
      previous = moved.statusChangedAt;
    }
    const [audit] = await sql()`
      select event, phi from audit_log where route = 'enrollments/{id}/transitions' and status = 200
       order by id desc limit 1`;
    expect(audit).toEqual({ event: 'enrollment_completed', phi: true });
  });

  test('every transition is kept in the history with its reason, encrypted at rest, visible to its student', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const other = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA });
    const reason = 'Medical leave: surgery <script>x</script>';
    const response = await send('POST', `/enrollments/${enrollment.id}/transitions`, {
      as: registrar,
      body: {
        to: 'on_hold',
        reason,
      },
    });
    expect(response.status).toBe(200);
    await transition(enrollment.id, 'active', registrar);
    const history = await get<{ items: { from: string; to: string; reason: string | null; changedBy: string }[] }>(
      `/enrollments/${enrollment.id}/history`,
      student,
    );
    expect(history.items).toEqual([
      expect.objectContaining({ from: 'active', to: 'on_hold', reason, changedBy: registrar.id }),
      expect.objectContaining({ from: 'on_hold', to: 'active', reason: null }),
    ]);
    const [stored] = await sql()`
      select count(*)::int as n from enrollment_status_changes where reason_ciphertext ilike ${'%surgery%'}`;
    expect(stored?.n).toBe(0);
    await get(`/enrollments/${enrollment.id}/history`, other, 404);
  });

  test('an illegal transition is a 409 naming from and to; a final status stays final', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA, status: 'pending' });
    const skip = await transition(enrollment.id, 'completed', registrar, 409);
    expect(skip.type).toBe('urn:aada:problem:illegal-transition');
    expect(skip.detail).toMatch(/pending.*active or cancelled.*not completed/);
    expect(skip.errors?.[0]?.field).toBe('body.to');
    await transition(enrollment.id, 'pending', registrar, 409);
    await withdraw(enrollment.id, registrar);
    for (const to of ['active', 'pending', 'completed']) {
      const refused = await transition(enrollment.id, to, registrar, 409);
      expect(refused.detail).toMatch(/cancelled is final/);
    }
    const [row] = await sql()`select status from enrollments where id = ${enrollment.id}`;
    expect(row?.status).toBe('cancelled');
  });

  test('withdrawn and cancelled are refused (422) naming the withdrawal route; nothing changes', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const active = await enroll(staff, { studentId: student.id, programId: programA });
    const pending = await enroll(staff, { studentId: student.id, programId: programB, status: 'pending' });
    for (const [enrollment, to] of [
      [active, 'withdrawn'],
      [active, 'cancelled'],
      [pending, 'cancelled'],
      [pending, 'withdrawn'],
    ] as const) {
      const response = await send('POST', `/enrollments/${enrollment.id}/transitions`, {
        as: registrar,
        body: { to, reason: 'Moving away' },
      });
      expect(response.status, `${enrollment.status} → ${to}`).toBe(422);
      const route = `/api/enrollments/${enrollment.id}/withdrawal`;
      expect(response.headers.get('link')).toBe(`<${route}>; rel="related"`);
      const problem = (await response.json()) as Problem;
      expect(problem.type).toBe('urn:aada:problem:withdrawal-required');
      expect(problem.errors).toEqual([{ field: 'body.to', message: expect.stringContaining(`POST ${route}`) }]);
    }
    const rows = await sql()`
      select e.status, (select count(*)::int from enrollment_status_changes c where c.enrollment_id = e.id) as changes,
             (select count(*)::int from withdrawals w where w.enrollment_id = e.id) as withdrawals
        from enrollments e where e.user_id = ${student.id} order by e.status`;
    expect(rows).toEqual([
      { status: 'active', changes: 0, withdrawals: 0 },
      { status: 'pending', changes: 0, withdrawals: 0 },
    ]);
    // The route it names withdraws and records the withdrawal with its refund calculation.
    await withdraw(active.id, registrar);
    const recorded = await get<{ withdrawal: { kind: string } | null; refund: { status: string } | null }>(
      `/enrollments/${active.id}/withdrawal`,
      registrar,
    );
    expect(recorded).toMatchObject({ withdrawal: { kind: 'official' }, refund: { status: 'calculated' } });
    expect((await get<Enrollment>(`/enrollments/${active.id}`, registrar)).status).toBe('withdrawn');
  });

  test('of concurrent transitions that exclude each other exactly one applies', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA });
    // Both leave only from active, and neither may follow the other.
    const targets = ['completed', 'on_hold', 'completed', 'on_hold'];
    const statuses = await Promise.all(
      targets.map((to) =>
        send('POST', `/enrollments/${enrollment.id}/transitions`, { as: registrar, body: { to } }).then(
          (r) => r.status,
        ),
      ),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(3);
    // The enrollment ends where the one accepted request put it, and its history holds that one move.
    const winner = targets[statuses.indexOf(200)];
    const [row] = await sql()`select status from enrollments where id = ${enrollment.id}`;
    expect(row?.status).toBe(winner);
    const history = await get<{ items: { from: string; to: string }[] }>(
      `/enrollments/${enrollment.id}/history`,
      student,
    );
    expect(history.items.map(({ from, to }) => ({ from, to }))).toEqual([{ from: 'active', to: winner }]);
  });

  test('only managers move statuses; unknown ids and targets are refused', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA });
    expect(
      (await send('POST', `/enrollments/${enrollment.id}/transitions`, { as: student, body: { to: 'withdrawn' } }))
        .status,
    ).toBe(403);
    expect(
      (await send('POST', `/enrollments/${enrollment.id}/transitions`, { as: instructor, body: { to: 'on_hold' } }))
        .status,
    ).toBe(403);
    await transition('00000000-0000-4000-8000-000000000000', 'active', registrar, 404);
    const unknown = await send('POST', `/enrollments/${enrollment.id}/transitions`, {
      as: registrar,
      body: { to: 'graduated' },
    });
    expect(unknown.status).toBe(400);
    const long = await send('POST', `/enrollments/${enrollment.id}/transitions`, {
      as: registrar,
      body: {
        to: 'on_hold',
        reason: 'x'.repeat(501),
      },
    });
    expect(long.status).toBe(400);
  });
});

describe('dates', () => {
  test('PATCH moves the dates; the end never precedes the start, stored or sent', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA, startDate: '2026-03-02' });
    const moved = await send('PATCH', `/enrollments/${enrollment.id}`, {
      as: registrar,
      body: { expectedEndDate: '2026-08-28' },
    });
    expect(moved.status).toBe(200);
    expect(await moved.json()).toMatchObject({ startDate: '2026-03-02', expectedEndDate: '2026-08-28' });
    const before = await send('PATCH', `/enrollments/${enrollment.id}`, {
      as: registrar,
      body: { expectedEndDate: '2026-03-01' },
    });
    expect(before.status).toBe(400);
    expect(((await before.json()) as Problem).errors?.[0]?.field).toBe('body.expectedEndDate');
    const after = await send('PATCH', `/enrollments/${enrollment.id}`, {
      as: registrar,
      body: { startDate: '2026-09-01' },
    });
    expect(after.status).toBe(400);
    expect(((await after.json()) as Problem).errors?.[0]?.field).toBe('body.startDate');
    const cleared = await send('PATCH', `/enrollments/${enrollment.id}`, {
      as: registrar,
      body: { expectedEndDate: null },
    });
    expect(((await cleared.json()) as Enrollment).expectedEndDate).toBeNull();
    expect((await send('PATCH', `/enrollments/${enrollment.id}`, { as: registrar, body: {} })).status).toBe(400);
    expect(
      (await send('PATCH', `/enrollments/${enrollment.id}`, { as: registrar, body: { status: 'completed' } })).status,
    ).toBe(400);
  });

  test('a closed enrollment’s dates are final; no DELETE exists', async () => {
    const student = await createTestUser(sql(), { roles: ['student'] });
    const enrollment = await enroll(staff, { studentId: student.id, programId: programA });
    await withdraw(enrollment.id, registrar);
    const response = await send('PATCH', `/enrollments/${enrollment.id}`, {
      as: registrar,
      body: { startDate: '2026-01-01' },
    });
    expect(response.status).toBe(409);
    expect(
      (
        await send('PATCH', '/enrollments/00000000-0000-4000-8000-000000000000', {
          as: registrar,
          body: { startDate: '2026-01-01' },
        })
      ).status,
    ).toBe(404);
    // An enrollment is withdrawn, never deleted: DELETE is no method of the route.
    const deleted = await send('DELETE', `/enrollments/${enrollment.id}`, { as: admin });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get('allow')).toBe('GET, HEAD, PATCH, OPTIONS');
    const [row] = await sql()`select status from enrollments where id = ${enrollment.id}`;
    expect(row?.status).toBe('withdrawn');
  });
});

describe('reading enrollments', () => {
  let anaInB: string;
  let benInA: string;
  let benInB: string;

  beforeAll(async () => {
    anaInB = (await enroll(registrar, { studentId: ana.id, programId: programB })).id;
    benInA = (await enroll(registrar, { studentId: ben.id, programId: programA })).id;
    benInB = (await enroll(registrar, { studentId: ben.id, programId: programB, status: 'pending' })).id;
  });

  test('lists by student, by programme and by status', async () => {
    const bens = await get<EnrollmentPage>(`/enrollments?studentId=${ben.id}`, staff);
    expect(bens.items.map((e) => e.id).sort()).toEqual([benInA, benInB].sort());
    const inB = await get<EnrollmentPage>(`/enrollments?programId=${programB}&limit=200`, staff);
    expect(inB.items.map((e) => e.id)).toEqual(expect.arrayContaining([anaInB, benInB]));
    expect(inB.items.every((e) => e.program.id === programB)).toBe(true);
    const pendingBen = await get<EnrollmentPage>(`/enrollments?studentId=${ben.id}&status=pending`, staff);
    expect(pendingBen.items.map((e) => e.id)).toEqual([benInB]);
    expect(pendingBen.items[0]?.student).toEqual({ id: ben.id, firstName: 'Ben', lastName: 'Brooks' });
  });

  test('pages by cursor without skipping or repeating while enrollments are added', async () => {
    const all = await get<EnrollmentPage>('/enrollments?limit=200', admin);
    const served: string[] = [];
    let cursor: string | null = null;
    do {
      const path: string = `/enrollments?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const student = await createTestUser(sql(), { roles: ['student'] });
      const [page] = await Promise.all([
        get<EnrollmentPage>(path, admin),
        enroll(registrar, { studentId: student.id, programId: programB }),
      ]);
      served.push(...page.items.map((e) => e.id));
      cursor = page.next;
    } while (cursor);
    expect(new Set(served).size).toBe(served.length);
    for (const e of all.items) expect(served).toContain(e.id);
    const bad = await app.api('/enrollments?cursor=abc', { headers: admin.headers });
    expect(bad.status).toBe(400);
  });

  test('a student lists and reads only their own, whatever the filters say', async () => {
    const own = await get<EnrollmentPage>('/enrollments', ben);
    expect(own.items.map((e) => e.id).sort()).toEqual([benInA, benInB].sort());
    const other = await get<EnrollmentPage>(`/enrollments?studentId=${ana.id}`, ben);
    expect(other.items).toEqual([]);
    const byProgram = await get<EnrollmentPage>(`/enrollments?programId=${programB}`, ben);
    expect(byProgram.items.map((e) => e.id)).toEqual([benInB]);
    expect((await get<Enrollment>(`/enrollments/${benInA}`, ben)).id).toBe(benInA);
    await get(`/enrollments/${anaInB}`, ben, 404);
  });

  test('an instructor sees the enrollments of the programmes they teach only', async () => {
    const seen = await get<EnrollmentPage>('/enrollments?limit=200', instructor);
    expect(seen.items.length).toBeGreaterThan(0);
    expect(seen.items.every((e) => e.program.id === programA)).toBe(true);
    expect((await get<Enrollment>(`/enrollments/${benInA}`, instructor)).id).toBe(benInA);
    await get(`/enrollments/${benInB}`, instructor, 404);
    expect((await get<EnrollmentPage>(`/enrollments?programId=${programB}`, instructor)).items).toEqual([]);
  });

  test('anonymous 401, finance 403, unknown or malformed ids', async () => {
    expect((await app.api('/enrollments')).status).toBe(401);
    expect((await app.api(`/enrollments/${benInA}`)).status).toBe(401);
    expect((await app.api('/enrollments', { headers: finance.headers })).status).toBe(403);
    await get('/enrollments/00000000-0000-4000-8000-000000000000', admin, 404);
    await get('/enrollments/not-a-uuid', admin, 400);
    await get('/enrollments?status=graduated', admin, 400);
    await get('/enrollments?limit=500', admin, 400);
  });
});
