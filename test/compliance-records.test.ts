// Skills check-offs, externships and complaints over HTTP: each life cycle and its 409s, evaluators,
// derived externship hours, the complaint workflow with its appeal window, who may read and write
// each record, and ugly input.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let staff: TestUser;
let registrar: TestUser;
let instructor: TestUser;
let otherInstructor: TestUser;
let student: TestUser;
let otherStudent: TestUser;
let program: { programId: string; moduleIds: string[] };
let enrollmentId: string;

beforeAll(async () => {
  const sql = app.db.sql;
  ({ staff, registrar, instructor, student } = await createRoleAccounts(sql));
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  otherStudent = await createTestUser(sql, { roles: ['student'] });
  program = await createProgram(sql, { hours: [4, 4] });
  const other = await createProgram(sql, { hours: [4] });
  await assignInstructor(sql, instructor.id, program.programId);
  await assignInstructor(sql, otherInstructor.id, other.programId);
  enrollmentId = await createEnrollment(sql, student.id, program.programId);
  // The other student is enrolled too, in a programme this test's instructor does not teach.
  await createEnrollment(sql, otherStudent.id, other.programId);
});

const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];

async function ok<T>(response: Promise<Response>, status = 201): Promise<T> {
  const answer = await response;
  const text = await answer.text();
  expect(answer.status, text).toBe(status);
  return JSON.parse(text) as T;
}

interface Checkoff {
  id: string;
  attempt: number;
  status: string;
  decides: string | null;
  signedAt: string | null;
  evaluator: { userId: string | null; name: string; licenseNumber: string } | null;
  evidenceRef: string | null;
}

describe('skills check-offs', () => {
  const attempt = (body: Record<string, unknown>, as: TestUser = instructor) =>
    send('POST', '/skills/checkoffs', {
      as,
      body: { studentId: student.id, moduleId: program.moduleIds[0], skillCode: 'PPE_DON_DOFF', ...body },
    });

  test('pending, rejected by an instructor, then approved on the spot by an external evaluator; then closed', async () => {
    const first = await ok<Checkoff>(attempt({ status: 'pending', evidenceRef: 'video/ppe-1.mp4' }));
    expect(first).toMatchObject({ attempt: 1, status: 'pending', signedAt: null, evaluator: null });
    // Another attempt while one is pending: 409.
    expect((await attempt({ status: 'pending' })).status).toBe(409);

    const decided = await ok<Checkoff>(
      send('POST', `/skills/checkoffs/${first.id}/decision`, {
        as: instructor,
        body: { status: 'rejected', evaluator: { userId: instructor.id, licenseNumber: 'GA-RDA-1001' } },
      }),
    );
    expect(decided).toMatchObject({ attempt: 1, status: 'rejected', decides: first.id });
    expect(decided.evaluator).toEqual({
      userId: instructor.id,
      name: `${instructor.firstName} ${instructor.lastName}`,
      licenseNumber: 'GA-RDA-1001',
    });
    expect(Date.now() - Date.parse(decided.signedAt as string)).toBeLessThan(60_000);
    // Decided once only.
    const again = send('POST', `/skills/checkoffs/${first.id}/decision`, {
      as: staff,
      body: { status: 'approved', evaluator: { name: 'Dr. Ada Ext', licenseNumber: 'GA-DDS-9' } },
    });
    expect((await again).status).toBe(409);

    const second = await ok<Checkoff>(
      attempt({ status: 'approved', evaluator: { name: 'Dr. Ada Ext', licenseNumber: 'GA-DDS-9' } }, staff),
    );
    expect(second).toMatchObject({ attempt: 2, status: 'approved', evaluator: { userId: null, name: 'Dr. Ada Ext' } });
    expect((await attempt({ status: 'pending' })).status).toBe(409);

    const list = await ok<{ items: Checkoff[] }>(send('GET', '/skills/checkoffs', { as: student }), 200);
    expect(list.items.map((item) => [item.attempt, item.status])).toEqual([
      [1, 'pending'],
      [1, 'rejected'],
      [2, 'approved'],
    ]);
    expect(list.items[0]?.evidenceRef).toBe('video/ppe-1.mp4');
    const [stored] = await app.db.sql<{ name: string }[]>`
      select evaluator_name_ciphertext as name from skills_checkoffs where id = ${second.id}`;
    expect(stored?.name).toMatch(/^v1\./);
  });

  test('a decision needs a licensed evaluator who may evaluate; bad input names the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ status: 'approved' }, 'body.evaluator'],
      [{ status: 'approved', evaluator: { name: 'No Licence' } }, 'body.evaluator'],
      [{ status: 'approved', evaluator: { userId: registrar.id, licenseNumber: 'X1' } }, 'body.evaluator.userId'],
      [{ status: 'pending', skillCode: 'ppe' }, 'body.skillCode'],
      [{ status: 'pending', skillCode: 'PPE\u0000' }, 'body.skillCode'],
      [{ status: 'done' }, 'body.status'],
      [{ status: 'pending', studentId: otherStudent.id }, 'body.studentId'],
      [{ status: 'pending', moduleId: 'x' }, 'body.moduleId'],
    ];
    for (const [body, field] of cases) {
      const response = await attempt({ skillCode: 'SUCTION', ...body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(await fieldsOf(response), JSON.stringify(body)).toContain(field);
    }
  });

  test('only the office and the programme’s instructors record; students read their own only', async () => {
    const body = { status: 'pending', skillCode: 'XRAY' };
    expect((await attempt(body, otherInstructor)).status).toBe(400);
    expect((await attempt(body, registrar)).status).toBe(403);
    expect((await attempt(body, student)).status).toBe(403);
    const mine = await ok<{ items: Checkoff[] }>(
      send('GET', `/skills/checkoffs?studentId=${student.id}`, { as: otherStudent }),
      200,
    );
    expect(mine.items).toEqual([]);
    const theirs = await ok<{ items: Checkoff[] }>(send('GET', '/skills/checkoffs', { as: otherInstructor }), 200);
    expect(theirs.items).toEqual([]);
  });
});

interface Externship {
  id: string;
  totalHours: number;
  approvedMinutes: number;
  pendingMinutes: number;
  supervisor: { name: string; email: string | null; phone: string | null };
  verification: { verifiedAt: string; verifiedBy: string; documentRef: string } | null;
  hours: { id: string; workDate: string; minutes: number; approval: { by: string } | null }[];
}

describe('externships', () => {
  test('placement, a log the student keeps, approvals, a derived total, and verification that closes the log', async () => {
    const placed = await ok<Externship>(
      send('POST', '/externships', {
        as: staff,
        body: {
          enrollmentId,
          siteName: 'Peachtree Family Dentistry',
          siteAddress: '1 Peachtree St, Atlanta, GA',
          supervisor: { name: 'Dr. Renée Smile', email: 'renee@example.test', phone: '+1 404 555 0101' },
          startDate: '2026-01-05',
          endDate: '2026-02-27',
        },
      }),
    );
    expect(placed).toMatchObject({ totalHours: 0, verification: null, supervisor: { name: 'Dr. Renée Smile' } });
    const path = `/externships/${placed.id}`;
    await ok(send('POST', `${path}/hours`, { as: student, body: { workDate: '2026-01-05', minutes: 480 } }));
    await ok(
      send('POST', `${path}/hours`, { as: staff, body: { workDate: '2026-01-06', minutes: 270, note: 'Half day' } }),
    );
    // One entry per day; inside the placement only.
    expect(
      (await send('POST', `${path}/hours`, { as: student, body: { workDate: '2026-01-05', minutes: 60 } })).status,
    ).toBe(409);
    const outside = await send('POST', `${path}/hours`, { as: student, body: { workDate: '2026-03-02', minutes: 60 } });
    expect(await fieldsOf(outside)).toEqual(['body.workDate']);
    expect(
      (await send('POST', `${path}/hours`, { as: otherStudent, body: { workDate: '2026-01-07', minutes: 60 } })).status,
    ).toBe(404);

    const logged = await ok<Externship>(send('GET', path, { as: student }), 200);
    expect(logged).toMatchObject({ totalHours: 0, pendingMinutes: 750 });
    const [monday, tuesday] = logged.hours;
    // Verification waits for every entry's approval.
    expect((await send('POST', `${path}/verification`, { as: staff, body: { documentRef: 'doc-1' } })).status).toBe(
      409,
    );
    await ok(send('POST', `${path}/hours/${monday?.id}/approval`, { as: staff, body: { by: 'staff' } }), 200);
    expect(
      (await send('POST', `${path}/hours/${monday?.id}/approval`, { as: staff, body: { by: 'staff' } })).status,
    ).toBe(409);
    const missingRef = await send('POST', `${path}/hours/${tuesday?.id}/approval`, {
      as: staff,
      body: { by: 'supervisor' },
    });
    expect(missingRef.status).toBe(400);
    const approved = await ok<Externship>(
      send('POST', `${path}/hours/${tuesday?.id}/approval`, {
        as: staff,
        body: { by: 'supervisor', confirmationRef: 'timesheet-2026-01-06.pdf' },
      }),
      200,
    );
    // 480 + 270 = 750 minutes = 12.5 hours, from the log.
    expect(approved).toMatchObject({ approvedMinutes: 750, totalHours: 12.5, pendingMinutes: 0 });
    expect(
      (await send('POST', `${path}/hours/${tuesday?.id}/approval`, { as: student, body: { by: 'staff' } })).status,
    ).toBe(403);

    const verified = await ok<Externship>(
      send('POST', `${path}/verification`, { as: staff, body: { documentRef: 'verification/peachtree.pdf' } }),
      200,
    );
    expect(verified.verification).toMatchObject({ verifiedBy: staff.id, documentRef: 'verification/peachtree.pdf' });
    expect((await send('POST', `${path}/verification`, { as: staff, body: { documentRef: 'again' } })).status).toBe(
      409,
    );
    expect(
      (await send('POST', `${path}/hours`, { as: student, body: { workDate: '2026-01-08', minutes: 60 } })).status,
    ).toBe(409);

    expect((await send('GET', path, { as: instructor })).status).toBe(200);
    expect((await send('GET', path, { as: otherInstructor })).status).toBe(404);
    expect((await send('GET', path, { as: otherStudent })).status).toBe(404);
    const stored = await app.db.sql<{ name: string; email: string }[]>`
      select supervisor_name_ciphertext as name, supervisor_email_ciphertext as email from externships where id = ${placed.id}`;
    expect(stored[0]?.name).toMatch(/^v1\./);
    expect(stored[0]?.email).toMatch(/^v1\./);
  });

  test('bad placements are a 400 naming the field; the office places, nobody else', async () => {
    const base = { enrollmentId, siteName: 'Site', supervisor: { name: 'S' }, startDate: '2026-01-05' };
    const cases: [Record<string, unknown>, string][] = [
      [{ endDate: '2026-01-01' }, 'body.endDate'],
      [{ supervisor: { name: 'S', email: 'not-an-email' } }, 'body.supervisor.email'],
      [{ supervisor: { name: 'S', phone: 'call me' } }, 'body.supervisor.phone'],
      [{ siteName: 'Tab\there' }, 'body.siteName'],
      // An enrollment that does not exist (a fresh random id: editing a digit of a real one could hit it).
      [{ enrollmentId: randomUUID() }, 'body.enrollmentId'],
      [{ startDate: '2026-02-30' }, 'body.startDate'],
    ];
    for (const [extra, field] of cases) {
      const response = await send('POST', '/externships', { as: staff, body: { ...base, ...extra } });
      expect(response.status, JSON.stringify(extra)).toBe(400);
      expect(await fieldsOf(response), JSON.stringify(extra)).toContain(field);
    }
    expect((await send('POST', '/externships', { as: instructor, body: base })).status).toBe(403);
    expect((await send('POST', '/externships', { as: student, body: base })).status).toBe(403);
  });
});

interface Complaint {
  id: string;
  status: string;
  details: string;
  complainant: { userId: string | null; name: string | null };
  resolution: { notes: string; resolvedBy: string } | null;
  appeal: { windowDays: number; deadline: string | null; appealedAt: string | null; information: string };
  transitions?: { from: string | null; to: string; changedBy: string }[];
}

describe('complaints', () => {
  const move = (id: string, as: TestUser, body: Record<string, unknown>) =>
    send('POST', `/complaints/${id}/transitions`, { as, body });

  test('submitted → in_review → resolved → appealed → closed, each change with who and when', async () => {
    const filed = await ok<Complaint>(
      send('POST', '/complaints', {
        as: student,
        body: { category: 'academic', details: 'Grade not recorded\nfor M2' },
      }),
    );
    expect(filed).toMatchObject({ status: 'submitted', complainant: { userId: student.id } });
    expect(filed.appeal.information).toContain('Georgia Nonpublic Postsecondary Education Commission');
    expect(filed.appeal.windowDays).toBe(90);

    // Only the office reviews; skipping a step is a 409 naming body.to.
    expect((await move(filed.id, student, { to: 'in_review' })).status).toBe(403);
    const skip = await move(filed.id, staff, { to: 'resolved', notes: 'Done' });
    expect(skip.status).toBe(409);
    expect(await fieldsOf(skip)).toEqual(['body.to']);
    await ok(move(filed.id, staff, { to: 'in_review' }), 200);
    const noNotes = await move(filed.id, staff, { to: 'resolved' });
    expect(await fieldsOf(noNotes)).toEqual(['body.notes']);
    const resolved = await ok<Complaint>(
      move(filed.id, staff, { to: 'resolved', notes: 'Grade entered on 2 March' }),
      200,
    );
    expect(resolved.resolution).toMatchObject({ notes: 'Grade entered on 2 March', resolvedBy: staff.id });
    const deadline = Date.parse(resolved.appeal.deadline as string);
    expect(Math.abs(deadline - (Date.now() + 90 * 86_400_000))).toBeLessThan(120_000);
    // Closing inside the appeal window would take the student's right away.
    const early = await move(filed.id, staff, { to: 'closed' });
    expect(early.status).toBe(409);

    const appealed = await ok<Complaint>(move(filed.id, student, { to: 'appealed', notes: 'I disagree' }), 200);
    expect(appealed.appeal.appealedAt).not.toBeNull();
    const closed = await ok<Complaint>(move(filed.id, staff, { to: 'closed', notes: 'GNPEC upheld' }), 200);
    expect(closed.transitions?.map((t) => [t.from, t.to, t.changedBy])).toEqual([
      [null, 'submitted', student.id],
      ['submitted', 'in_review', staff.id],
      ['in_review', 'resolved', staff.id],
      ['resolved', 'appealed', student.id],
      ['appealed', 'closed', staff.id],
    ]);
    expect((await move(filed.id, staff, { to: 'in_review' })).status).toBe(409);
    const [stored] = await app.db.sql<{ details: string }[]>`
      select details_ciphertext as details from complaints where id = ${filed.id}`;
    expect(stored?.details).toMatch(/^v1\./);
  });

  test('an appeal after 90 days is a 409; then the office may close', async () => {
    const filed = await ok<Complaint>(
      send('POST', '/complaints', {
        as: staff,
        body: { category: 'facilities', details: 'Parking', onBehalfOf: { name: 'A. Visitor' } },
      }),
    );
    expect(filed.complainant).toEqual({ userId: null, name: 'A. Visitor', contact: null });
    await ok(move(filed.id, staff, { to: 'in_review' }), 200);
    await ok(move(filed.id, staff, { to: 'resolved', notes: 'Spaces marked' }), 200);
    await app.db.sql`update complaints set resolved_at = now() - interval '91 days' where id = ${filed.id}`;
    expect((await move(filed.id, staff, { to: 'appealed' })).status).toBe(409);
    await ok(move(filed.id, staff, { to: 'closed' }), 200);
  });

  test('staff see all, a complainant their own; filing names the complainant; bad input names the field', async () => {
    await ok(
      send('POST', '/complaints', {
        as: staff,
        body: { category: 'conduct', details: 'x', onBehalfOf: { studentId: otherStudent.id } },
      }),
    );
    const mine = await ok<{ items: Complaint[]; appeal: { information: string } }>(
      send('GET', '/complaints', { as: student }),
      200,
    );
    expect(mine.items.every((item) => item.complainant.userId === student.id)).toBe(true);
    expect(mine.appeal.information).toContain('90 days');
    const all = await ok<{ items: Complaint[] }>(send('GET', '/complaints?limit=200', { as: staff }), 200);
    expect(all.items.length).toBeGreaterThan(mine.items.length);
    const theirs = all.items.find((item) => item.complainant.userId === otherStudent.id) as Complaint;
    expect((await send('GET', `/complaints/${theirs.id}`, { as: student })).status).toBe(404);
    expect((await move(theirs.id, student, { to: 'appealed' })).status).toBe(404);
    expect((await send('GET', '/complaints', { as: instructor })).status).toBe(403);
    expect((await send('GET', '/complaints', { as: registrar })).status).toBe(403);

    const cases: [TestUser, Record<string, unknown>, string][] = [
      [staff, { category: 'academic', details: 'x' }, 'body.onBehalfOf'],
      [staff, { category: 'academic', details: 'x', onBehalfOf: { studentId: staff.id } }, 'body.onBehalfOf.studentId'],
      [student, { category: 'gossip', details: 'x' }, 'body.category'],
      [student, { category: 'academic', details: '' }, 'body.details'],
      [student, { category: 'academic', details: 'a\u0000b' }, 'body.details'],
      [student, { category: 'academic', details: 42 }, 'body.details'],
    ];
    for (const [as, body, field] of cases) {
      const response = await send('POST', '/complaints', { as, body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(await fieldsOf(response), JSON.stringify(body)).toContain(field);
    }
    const forOthers = await send('POST', '/complaints', {
      as: student,
      body: { category: 'academic', details: 'x', onBehalfOf: { name: 'Someone' } },
    });
    expect(forOthers.status).toBe(403);
    const tampered = await send('GET', '/complaints?cursor=WyJ4Il0', { as: staff });
    expect(await fieldsOf(tampered)).toEqual(['query.cursor']);
  });
});
