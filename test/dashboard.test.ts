// The dashboard: each role's counts equal the counts of the lists they summarise (read through the same
// API, page by page), it is cached privately with an ETag, and roles without a home screen get a 403.
import { beforeAll, describe, expect, test } from 'vitest';
import { publishTemplate, SCHOOL_PART, signAs, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger } from './helpers/ledger';
import {
  assignInstructor,
  createComplianceRecords,
  createEnrollment,
  createProgram,
  recordAttendance,
} from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let admin: TestUser;
let staff: TestUser;
let instructor: TestUser;
let finance: TestUser;
let registrar: TestUser;
let student: TestUser;
let weekDay: string;

interface SchoolView {
  view: string;
  activeStudents: number;
  enrollmentsByStatus: Record<string, number>;
  clockHoursThisWeek: number;
  belowAttendanceThreshold: number;
  openComplaints?: number;
  refundsDue?: {
    withinDays: number;
    comingDue: { count: number; amountCents: number };
    overdue: { count: number; amountCents: number };
  };
  agreementsAwaitingSignature?: { signer: number; counterSignature: number };
}

/**
 * Agreements in every state the count separates: two sent (one of them opened: viewed), one signed by the
 * student awaiting the school, one voided (awaiting nobody).
 */
async function createAgreements(sql: typeof app.db.sql) {
  await publishTemplate(admin, { counterSign: true });
  const sendTo = async (who: TestUser) => {
    const response = await send('POST', '/agreements', {
      as: registrar,
      body: { recipient: { studentId: who.id }, prefill: SCHOOL_PART },
    });
    expect(response.status, await response.clone().text()).toBe(201);
    return ((await response.json()) as { id: string }).id;
  };
  // Names a typed signature accepts (letters only; the default test names carry digits).
  const [signer, viewer, voided] = await Promise.all(
    ['Ada', 'Bea', 'Cy'].map((firstName) =>
      createTestUser(sql, { roles: ['student'], firstName, lastName: 'Dashwood' }),
    ),
  );
  await sendTo(signer as TestUser);
  const signed = await signAs(await signingTokenFor(sql, (signer as TestUser).email), signer as TestUser);
  expect(signed.status, await signed.clone().text()).toBe(200);
  await sendTo(viewer as TestUser);
  const opened = await send('POST', '/agreements/signing/open', {
    body: { token: await signingTokenFor(sql, (viewer as TestUser).email) },
  });
  expect(opened.status).toBe(200);
  await sendTo(student);
  const toVoid = await sendTo(voided as TestUser);
  const voiding = await send('POST', `/agreements/${toVoid}/void`, {
    as: registrar,
    body: { reason: 'Sent to the wrong student' },
  });
  expect(voiding.status, await voiding.clone().text()).toBe(200);
}

/**
 * Refunds of withdrawals noticed `daysAgo` days ago (due 45 days after): 50 and 55 days ago are overdue,
 * 40 is due in 5 days (within 10), 20 in 25 days (not yet); the one remitted and the one owing nothing
 * are not due at all. Each in a programme nobody teaches, by a student with nothing else.
 */
async function createRefunds(sql: typeof app.db.sql) {
  const { programId } = await createProgram(sql, { code: 'DASH-R', hours: [20] });
  for (const [daysAgo, paid, remit] of [
    [50, 120_000, false],
    [55, 30_000, false],
    [40, 70_000, false],
    [20, 90_000, false],
    [50, 50_000, true],
    [50, 0, false],
  ] as const) {
    const who = await createTestUser(sql, { roles: ['student'] });
    const enrollmentId = await createEnrollment(sql, who.id, programId, { status: 'active' });
    await sql`update enrollments set created_at = now() - interval '60 days' where id = ${enrollmentId}`;
    await insertLedger(
      sql,
      [
        { studentId: who.id, enrollmentId, kind: 'charge', amountCents: 200_000 },
        ...(paid ? [{ studentId: who.id, enrollmentId, kind: 'payment' as const, amountCents: paid }] : []),
      ],
      finance.id,
    );
    const notifiedAt = new Date(Date.now() - daysAgo * 86_400_000).toISOString();
    const withdrawn = await send('POST', `/enrollments/${enrollmentId}/withdrawal`, {
      as: registrar,
      body: { kind: 'official', notifiedAt },
    });
    expect(withdrawn.status, await withdrawn.clone().text()).toBe(201);
    if (!remit) continue;
    const { refund } = (await withdrawn.json()) as { refund: { id: string } };
    for (const [action, body] of [
      ['approval', {}],
      ['remittance', { reference: 'CHK 9' }],
    ] as const) {
      const answer = await send('POST', `/ledger/refunds/${refund.id}/${action}`, { as: finance, body });
      expect(answer.status, action).toBe(200);
    }
  }
}

beforeAll(async () => {
  const sql = app.db.sql;
  ({ admin, staff, instructor, finance, registrar, student } = await createRoleAccounts(sql));
  const taught = await createProgram(sql, { code: 'DASH-A', hours: [20] });
  const other = await createProgram(sql, { code: 'DASH-B', hours: [20] });
  await assignInstructor(sql, instructor.id, taught.programId);
  const [week] = await sql<{ start: Date }[]>`
    select date_trunc('week', now() at time zone 'America/New_York') at time zone 'America/New_York' as start`;
  const weekStart = (week as { start: Date }).start.getTime();
  weekDay = new Date(weekStart).toISOString().slice(0, 10);
  // A session an hour into this week (when the week is that old), else one last week.
  const thisWeek = Date.now() - weekStart > 2 * 3_600_000;
  const startsAt = new Date(thisWeek ? weekStart + 3_600_000 : weekStart - 86_400_000).toISOString();
  const students = [
    student,
    ...(await Promise.all([1, 2, 3, 4].map(() => createTestUser(sql, { roles: ['student'] })))),
  ];
  const statuses = ['active', 'active', 'on_hold', 'completed', 'active'];
  const lines = {
    taught: [] as Parameters<typeof recordAttendance>[1]['lines'],
    other: [] as Parameters<typeof recordAttendance>[1]['lines'],
  };
  for (const [i, who] of students.entries()) {
    const program = i % 2 === 0 ? taught : other;
    const enrollmentId = await createEnrollment(sql, who.id, program.programId, { status: statuses[i] as string });
    if (statuses[i] === 'completed') continue;
    (i % 2 === 0 ? lines.taught : lines.other).push({
      userId: who.id,
      enrollmentId,
      status: i < 2 ? 'present' : 'absent',
    });
    await createComplianceRecords(sql, {
      userId: who.id,
      enrollmentId,
      moduleId: program.moduleIds[0] as string,
      by: staff.id,
    });
  }
  await recordAttendance(sql, {
    moduleId: taught.moduleIds[0] as string,
    recordedBy: staff.id,
    startsAt,
    lines: lines.taught,
  });
  await recordAttendance(sql, {
    moduleId: other.moduleIds[0] as string,
    recordedBy: staff.id,
    startsAt,
    lines: lines.other,
  });
  await createRefunds(sql);
  await createAgreements(sql);
});

/** Every item of a list, following `next`. */
async function all<T>(path: string, as: TestUser): Promise<T[]> {
  const items: T[] = [];
  let url = `${path}${path.includes('?') ? '&' : '?'}limit=200`;
  for (;;) {
    const response = await send('GET', url, { as });
    expect(response.status, url).toBe(200);
    const page = (await response.json()) as { items: T[]; next: string | null };
    items.push(...page.items);
    if (!page.next) return items;
    url = `${path}${path.includes('?') ? '&' : '?'}limit=200&cursor=${page.next}`;
  }
}

async function expectCountsOfLists(as: TestUser, view: SchoolView) {
  const enrollments = await all<{ status: string; student: { id: string } }>('/enrollments', as);
  const active = new Set(enrollments.filter((e) => e.status === 'active').map((e) => e.student.id));
  expect(view.activeStudents).toBe(active.size);
  for (const [status, count] of Object.entries(view.enrollmentsByStatus)) {
    expect(count, status).toBe(enrollments.filter((e) => e.status === status).length);
  }
  const below = await all('/attendance/below-threshold', as);
  expect(view.belowAttendanceThreshold).toBe(below.length);
  const week = await all<{ minutesAttended: number }>(`/attendance/records?from=${weekDay}`, as);
  const minutes = week.reduce((sum, line) => sum + line.minutesAttended, 0);
  expect(view.clockHoursThisWeek).toBe(Math.floor((minutes * 100) / 50) / 100);
}

describe('the dashboard', () => {
  test('the office’s counts are those of the lists; cached privately with an ETag', async () => {
    const response = await send('GET', '/dashboard', { as: staff });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('private, max-age=300');
    const etag = response.headers.get('etag') as string;
    const view = (await response.json()) as SchoolView;
    expect(view.view).toBe('school');
    expect(view.activeStudents).toBe(3);
    await expectCountsOfLists(staff, view);
    const complaints = await all<{ status: string }>('/complaints', staff);
    const open = complaints.filter((c) => ['submitted', 'in_review', 'appealed'].includes(c.status));
    expect(view.openComplaints).toBe(open.length);
    // Refunds due: those of the finance list within the timer's 10 days, split by overdue.
    const due = await all<{ overdue: boolean; refundCents: number }>('/ledger/refunds-due?withinDays=10', finance);
    const sum = (items: typeof due) => items.reduce((cents, item) => cents + item.refundCents, 0);
    const overdue = due.filter((item) => item.overdue);
    const coming = due.filter((item) => !item.overdue);
    expect(view.refundsDue).toEqual({
      withinDays: 10,
      comingDue: { count: coming.length, amountCents: sum(coming) },
      overdue: { count: overdue.length, amountCents: sum(overdue) },
    });
    // By hand: 0 % completed, so each refund is what was paid.
    expect(view.refundsDue).toEqual({
      withinDays: 10,
      comingDue: { count: 1, amountCents: 70_000 },
      overdue: { count: 2, amountCents: 150_000 },
    });
    const again = await send('GET', '/dashboard', { as: staff, headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
  });

  test('agreements awaiting a signature are those of the agreements list, for those who read agreements', async () => {
    const response = await send('GET', '/dashboard', { as: registrar });
    expect(response.status).toBe(200);
    const view = (await response.json()) as SchoolView;
    const count = async (status: string) => (await all(`/agreements?status=${status}`, registrar)).length;
    expect(view.agreementsAwaitingSignature).toEqual({
      signer: (await count('pending')) + (await count('viewed')),
      counterSignature: await count('student_signed'),
    });
    // By hand: the pending one and the viewed one; the signed one; the voided one is in neither.
    expect(view.agreementsAwaitingSignature).toEqual({ signer: 2, counterSignature: 1 });
    expect(await count('viewed')).toBe(1);
    const adminView = (await (await send('GET', '/dashboard', { as: admin })).json()) as SchoolView;
    expect(adminView.agreementsAwaitingSignature).toEqual(view.agreementsAwaitingSignature);
    // Staff do not read agreements (docs/access-policy.md): no agreement counts on their screen.
    const staffView = (await (await send('GET', '/dashboard', { as: staff })).json()) as SchoolView;
    expect(staffView.agreementsAwaitingSignature).toBeUndefined();
    expect((await send('GET', '/agreements', { as: staff })).status).toBe(403);
  });

  test('an instructor counts the programmes they teach, without complaints', async () => {
    const view = (await (await send('GET', '/dashboard', { as: instructor })).json()) as SchoolView;
    expect(view.view).toBe('programmes taught');
    expect(view.openComplaints).toBeUndefined();
    expect(view.refundsDue).toBeUndefined();
    expect(view.agreementsAwaitingSignature).toBeUndefined();
    expect(view.activeStudents).toBe(2);
    await expectCountsOfLists(instructor, view);
  });

  test('a student sees their own hours against required and what needs them, no names', async () => {
    const response = await send('GET', '/dashboard', { as: student });
    const view = (await response.json()) as {
      view: string;
      enrollments: {
        enrollmentId: string;
        requiredClockHours: number;
        clockHoursAttended: number;
        pendingSkillCheckoffs: number;
      }[];
    };
    expect(view.view).toBe('student');
    expect(view.enrollments).toHaveLength(1);
    const [mine] = view.enrollments;
    const rollup = await send('GET', `/enrollments/${mine?.enrollmentId}/attendance`, { as: student });
    const hours = (await rollup.json()) as { clockHoursAttended: number; requiredClockHours: number };
    expect(mine).toMatchObject({
      requiredClockHours: hours.requiredClockHours,
      clockHoursAttended: hours.clockHoursAttended,
      pendingSkillCheckoffs: 1,
    });
    expect(JSON.stringify(view)).not.toContain(student.lastName);
    expect((await send('GET', '/dashboard', { as: finance })).status).toBe(403);
    expect((await send('GET', '/dashboard', { as: null })).status).toBe(401);
  });
});
