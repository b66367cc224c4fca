// Attendance in clock hours over HTTP: a whole class session in one request, corrections as new
// versions with their history, the roll-ups checked against figures computed by hand (a session
// crossing midnight, a zero-minute attendance, a student enrolled twice, in-person requirements,
// absences in a row, this week's hours), the threshold list, who may read and write, and ugly input.
import { beforeAll, describe, expect, test } from 'vitest';
import { hoursAttended, lastDateOfAttendance } from '../lib/attendance';
import { resetConfigForTests } from '../lib/config';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let staff: TestUser;
let registrar: TestUser;
let finance: TestUser;
let instructor: TestUser;
let otherInstructor: TestUser;
let students: TestUser[];
let outsider: TestUser;
let program: { programId: string; moduleIds: string[] };
let otherProgram: { programId: string; moduleIds: string[] };
const enrollmentOf = new Map<string, string>();

interface Line {
  id: string;
  sessionId: string;
  studentId: string;
  enrollmentId: string;
  status: string;
  minutesAttended: number;
  clockHours: number;
  version: number;
  supersedes: string | null;
  reason: string | null;
  recordedBy: string;
  recordedAt: string;
}
interface Session {
  id: string;
  minutes: number;
  lines: (Line & { student?: { firstName: string; lastName: string } })[];
}
interface Rollup {
  minutesAttended: number;
  clockHoursAttended: number;
  clockHoursThisWeek: number;
  attendanceRatePercent: number | null;
  consecutiveAbsences: number;
  lastDateOfAttendance: string | null;
  requiredClockHours: number;
  modules: {
    moduleId: string;
    sessions: number;
    absences: number;
    minutesAttended: number;
    inPersonMinutes: number;
    clockHoursCounted: number;
    requirementMet: boolean;
  }[];
}

beforeAll(async () => {
  const sql = app.db.sql;
  ({ staff, registrar, finance, instructor } = await createRoleAccounts(sql));
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  students = await Promise.all(
    ['Zoë', 'Nguyễn', 'Ōtsuka'].map((lastName) => createTestUser(sql, { roles: ['student'], lastName })),
  );
  outsider = await createTestUser(sql, { roles: ['student'] });
  // M1: 2 clock hours, any delivery; M2: 1 clock hour, in person required (hybrid).
  program = await createProgram(sql, { hours: [2, 1] });
  await sql`update modules set delivery_type = 'hybrid', requires_in_person = true where id = ${program.moduleIds[1] as string}`;
  otherProgram = await createProgram(sql, { hours: [5] });
  await sql`update modules set delivery_type = 'in_person' where id = ${otherProgram.moduleIds[0] as string}`;
  await assignInstructor(sql, instructor.id, program.programId);
  await assignInstructor(sql, otherInstructor.id, otherProgram.programId);
  for (const student of students)
    enrollmentOf.set(student.id, await createEnrollment(sql, student.id, program.programId));
  enrollmentOf.set(outsider.id, await createEnrollment(sql, outsider.id, otherProgram.programId));
});

const moduleOf = (index: number) => program.moduleIds[index] as string;
const studentAt = (index: number) => students[index] as TestUser;
const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];

/** A session body for module `index` from `start` (ISO), lasting `minutes`. */
function sessionBody(start: string, minutes: number, lines: unknown[], extra: Record<string, unknown> = {}) {
  const startsAt = new Date(start);
  return {
    moduleId: moduleOf(0),
    sessionType: 'live',
    startsAt: startsAt.toISOString(),
    endsAt: new Date(startsAt.getTime() + minutes * 60_000).toISOString(),
    lines,
    ...extra,
  };
}

async function record(body: unknown, as: TestUser = instructor): Promise<Session> {
  const response = await send('POST', '/attendance/sessions', { as, body });
  const text = await response.text();
  expect(response.status, text).toBe(201);
  return JSON.parse(text) as Session;
}

async function rollupOf(student: TestUser, as: TestUser = registrar): Promise<Rollup> {
  const response = await send('GET', `/enrollments/${enrollmentOf.get(student.id)}/attendance`, { as });
  expect(response.status).toBe(200);
  return (await response.json()) as Rollup;
}

describe('recording a class session', () => {
  test('one request records every student: present is the whole session, late and left early what they say', async () => {
    const session = await record(
      sessionBody('2026-03-02T14:00:00Z', 120, [
        { studentId: studentAt(0).id, status: 'present' },
        { studentId: studentAt(1).id, status: 'late', minutesAttended: 95 },
        { studentId: studentAt(2).id, status: 'absent' },
      ]),
    );
    expect(session.minutes).toBe(120);
    expect(session.lines.map((line) => [line.status, line.minutesAttended, line.version])).toEqual([
      ['present', 120, 1],
      ['late', 95, 1],
      ['absent', 0, 1],
    ]);
    expect(session.lines.every((line) => line.recordedBy === instructor.id)).toBe(true);

    const read = await send('GET', `/attendance/sessions/${session.id}`, { as: registrar });
    expect(read.status).toBe(200);
    expect(read.headers.get('cache-control')).toBe('no-store');
    const names = ((await read.json()) as Session).lines.map((line) => line.student?.lastName).sort();
    expect(names).toEqual(['Nguyễn', 'Zoë', 'Ōtsuka'].sort());

    const audited = await app.db.sql`
      select 1 from audit_log where route = 'attendance/sessions' and status = 201 and phi
         and resource_ids->>'sessionId' = ${session.id}`;
    expect(audited.length).toBe(1);
  });

  test('the same class recorded twice for a student is a 409 and stores nothing', async () => {
    const body = sessionBody('2026-03-03T14:00:00Z', 60, [{ studentId: studentAt(0).id, status: 'present' }]);
    await record(body);
    const again = await send('POST', '/attendance/sessions', { as: staff, body });
    expect(again.status).toBe(409);
    const [count] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from attendance_sessions where starts_at = ${body.startsAt}`;
    expect(count?.n).toBe(1);
  });

  test('bad input is a 400 naming the field, and nothing is stored', async () => {
    const [before] = await app.db.sql<{ n: number }[]>`select count(*)::int as n from attendance_sessions`;
    const one = [{ studentId: studentAt(0).id, status: 'present' }];
    const cases: [unknown, string][] = [
      [{ ...sessionBody('2026-03-04T14:00:00Z', 60, one), endsAt: '2026-03-04T13:00:00Z' }, 'body.endsAt'],
      [sessionBody('2026-03-04T14:00:00Z', 25 * 60, one), 'body.endsAt'],
      [sessionBody(new Date(Date.now() + 86_400_000).toISOString(), 60, one), 'body.startsAt'],
      [sessionBody('2026-03-04T14:00:00Z', 60, [...one, ...one]), 'body.lines.1.studentId'],
      [
        sessionBody('2026-03-04T14:00:00Z', 60, [{ studentId: studentAt(0).id, status: 'late' }]),
        'body.lines.0.minutesAttended',
      ],
      [
        sessionBody('2026-03-04T14:00:00Z', 60, [
          { studentId: studentAt(0).id, status: 'present', minutesAttended: 61 },
        ]),
        'body.lines.0.minutesAttended',
      ],
      [
        sessionBody('2026-03-04T14:00:00Z', 60, [{ studentId: studentAt(0).id, status: 'absent', minutesAttended: 5 }]),
        'body.lines.0.minutesAttended',
      ],
      [
        sessionBody('2026-03-04T14:00:00Z', 60, [
          { studentId: studentAt(0).id, status: 'present', minutesAttended: '30' },
        ]),
        'body.lines.0.minutesAttended',
      ],
      [sessionBody('2026-03-04T14:00:00Z', 60, one, { sessionRef: 'LAB\u0000-7' }), 'body.sessionRef'],
      [sessionBody('2026-03-04T14:00:00Z', 60, one, { sessionType: 'webinar' }), 'body.sessionType'],
      [sessionBody('2026-03-04T14:00:00Z', 60, []), 'body.lines'],
      [
        sessionBody('2026-03-04T14:00:00Z', 60, [...one, { studentId: outsider.id, status: 'present' }]),
        'body.lines.1.studentId',
      ],
      [sessionBody('2026-03-04T14:00:00Z', 60, one, { moduleId: otherProgram.moduleIds[0] }), 'body.moduleId'],
      [sessionBody('2026-03-04T14:00:00Z', 60, one, { startsAt: '4 March 2026' }), 'body.startsAt'],
    ];
    for (const [body, field] of cases) {
      const response = await send('POST', '/attendance/sessions', { as: instructor, body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(await fieldsOf(response), JSON.stringify(body)).toContain(field);
    }
    const [after] = await app.db.sql<{ n: number }[]>`select count(*)::int as n from attendance_sessions`;
    expect(after?.n).toBe(before?.n);
  });

  test('an online session in a module taught in person only is refused', async () => {
    const body = sessionBody('2026-03-04T14:00:00Z', 60, [{ studentId: outsider.id, status: 'present' }], {
      moduleId: otherProgram.moduleIds[0],
      sessionType: 'online',
    });
    const response = await send('POST', '/attendance/sessions', { as: otherInstructor, body });
    expect(response.status).toBe(400);
    expect(await fieldsOf(response)).toEqual(['body.sessionType']);
  });

  test('only the office and the instructors of the programme record attendance', async () => {
    const body = sessionBody('2026-03-05T14:00:00Z', 60, [{ studentId: studentAt(0).id, status: 'present' }]);
    for (const who of [registrar, finance, studentAt(0)]) {
      expect((await send('POST', '/attendance/sessions', { as: who, body })).status).toBe(403);
    }
    expect((await send('POST', '/attendance/sessions', { as: null, body })).status).toBe(401);
    // Another programme's instructor: the module is not one they may record for.
    const elsewhere = await send('POST', '/attendance/sessions', { as: otherInstructor, body });
    expect(elsewhere.status).toBe(400);
    expect(await fieldsOf(elsewhere)).toEqual(['body.moduleId']);
  });
});

describe('corrections', () => {
  test('a correction is a new version with who, when and why; the old one stays readable', async () => {
    const session = await record(
      sessionBody('2026-03-09T14:00:00Z', 90, [{ studentId: studentAt(2).id, status: 'absent' }]),
    );
    const first = session.lines[0] as Line;
    const response = await send('POST', `/attendance/records/${first.id}/corrections`, {
      as: staff,
      body: { status: 'late', minutesAttended: 60, reason: 'Signed in at the front desk at 10:30' },
    });
    expect(response.status).toBe(201);
    const second = (await response.json()) as Line;
    expect(second).toMatchObject({ version: 2, supersedes: first.id, status: 'late', minutesAttended: 60 });
    expect(second.recordedBy).toBe(staff.id);
    expect(second.reason).toBe('Signed in at the front desk at 10:30');

    // The old version cannot be corrected again: the latest one must be.
    const stale = await send('POST', `/attendance/records/${first.id}/corrections`, {
      as: staff,
      body: { status: 'present', reason: 'Again' },
    });
    expect(stale.status).toBe(409);

    const history = await send('GET', `/attendance/records/${second.id}/history`, { as: studentAt(2) });
    expect(history.status).toBe(200);
    const versions = ((await history.json()) as { items: Line[] }).items;
    expect(versions.map((line) => [line.version, line.status, line.minutesAttended, line.reason])).toEqual([
      [1, 'absent', 0, null],
      [2, 'late', 60, 'Signed in at the front desk at 10:30'],
    ]);
    // Stored encrypted, never edited in place.
    const stored = await app.db.sql<{ reason_ciphertext: string | null; status: string }[]>`
      select reason_ciphertext, status from attendance_records where session_id = ${session.id} order by version`;
    expect(stored.map((row) => row.status)).toEqual(['absent', 'late']);
    expect(stored[1]?.reason_ciphertext).toMatch(/^v1\./);
    // The application may not update or delete a line.
    await expect(
      app.db.sql.begin(async (tx) => {
        await tx`set local role aada_app`;
        await tx`update attendance_records set minutes_attended = 90 where id = ${first.id}`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });

  test('a correction needs a reason and minutes that fit; an unknown or unreachable line is a 404', async () => {
    const session = await record(
      sessionBody('2026-03-10T14:00:00Z', 30, [{ studentId: studentAt(0).id, status: 'present' }]),
    );
    const id = (session.lines[0] as Line).id;
    const path = `/attendance/records/${id}/corrections`;
    const missingReason = await send('POST', path, { as: staff, body: { status: 'absent' } });
    expect(await fieldsOf(missingReason)).toEqual(['body.reason']);
    const tooMany = await send('POST', path, {
      as: staff,
      body: { status: 'present', minutesAttended: 31, reason: 'x' },
    });
    expect(tooMany.status).toBe(400);
    expect(await fieldsOf(tooMany)).toEqual(['body.minutesAttended']);
    const control = await send('POST', path, { as: staff, body: { status: 'absent', reason: 'bell\u0007' } });
    expect(await fieldsOf(control)).toEqual(['body.reason']);
    const badId = await send('POST', '/attendance/records/not-a-uuid/corrections', { as: staff, body: {} });
    expect(await fieldsOf(badId)).toContain('params.recordId');
    const body = { status: 'absent', reason: 'Was not there' };
    expect((await send('POST', path, { as: otherInstructor, body })).status).toBe(404);
    expect((await send('GET', `/attendance/records/${id}/history`, { as: otherInstructor })).status).toBe(404);
    expect((await send('GET', `/attendance/records/${id}/history`, { as: studentAt(1) })).status).toBe(404);
    expect((await send('GET', `/attendance/sessions/${session.id}`, { as: otherInstructor })).status).toBe(404);
  });
});

describe('roll-ups, against figures computed by hand', () => {
  let twice: TestUser;
  let oldEnrollment: string;

  beforeAll(async () => {
    const sql = app.db.sql;
    twice = await createTestUser(sql, { roles: ['student'] });
    // Enrolled twice: a withdrawn enrollment with 50 minutes, then the current one.
    oldEnrollment = await createEnrollment(sql, twice.id, program.programId, { status: 'active' });
    await record(sessionBody('2026-01-12T14:00:00Z', 50, [{ studentId: twice.id, status: 'present' }]));
    await sql`update enrollments set status = 'withdrawn' where id = ${oldEnrollment}`;
    enrollmentOf.set(twice.id, await createEnrollment(sql, twice.id, program.programId));
    // 22:30 to 01:00 at the school (America/New_York, EDT on 10 March 2026 is UTC-4): 150 minutes of the 10th.
    await record(sessionBody('2026-03-11T02:30:00Z', 150, [{ studentId: twice.id, status: 'present' }]));
    // A zero-minute attendance (arrived as it ended) and two absences after it.
    await record(
      sessionBody('2026-03-12T14:00:00Z', 60, [{ studentId: twice.id, status: 'late', minutesAttended: 0 }]),
    );
    await record(sessionBody('2026-03-13T14:00:00Z', 60, [{ studentId: twice.id, status: 'absent' }]));
    // In M2 (in person required): 100 minutes online do not count, 50 in a lab do.
    const m2 = { moduleId: moduleOf(1) };
    await record(
      sessionBody('2026-03-14T14:00:00Z', 100, [{ studentId: twice.id, status: 'present' }], {
        ...m2,
        sessionType: 'online',
      }),
    );
    await record(sessionBody('2026-03-15T14:00:00Z', 60, [{ studentId: twice.id, status: 'absent' }], m2));
  });

  test('hours per module and programme, rate, absences in a row and the last day attended', async () => {
    const rollup = await rollupOf(twice);
    // Attended 150 + 0 + 100 = 250 of 150 + 60 + 60 + 100 + 60 = 430 scheduled minutes.
    expect(rollup).toMatchObject({
      minutesAttended: 250,
      clockHoursAttended: 5, // 250 / 50
      attendanceRatePercent: 58.1, // 250 / 430
      consecutiveAbsences: 1, // the M2 absence after the online session
      lastDateOfAttendance: '2026-03-14',
      requiredClockHours: 3,
    });
    const [m1, m2] = rollup.modules;
    expect(m1).toMatchObject({
      sessions: 3,
      absences: 1,
      minutesAttended: 150,
      clockHoursCounted: 3,
      requirementMet: true,
    });
    expect(m2).toMatchObject({
      sessions: 2,
      absences: 1,
      minutesAttended: 100,
      inPersonMinutes: 0,
      clockHoursCounted: 0,
      requirementMet: false,
    });
    // The first enrollment keeps its own 50 minutes.
    const old = await send('GET', `/enrollments/${oldEnrollment}/attendance`, { as: staff });
    expect(((await old.json()) as Rollup).minutesAttended).toBe(50);
    // What the refund rules read.
    const current = enrollmentOf.get(twice.id) as string;
    expect(await hoursAttended(app.db.sql, current)).toEqual({ minutes: 250, clockHours: 5 });
    expect(await lastDateOfAttendance(app.db.sql, oldEnrollment)).toBe('2026-01-12');
  });

  test('the session crossing midnight counts on the day it began; a zero-minute line is no attendance', async () => {
    const sql = app.db.sql;
    const probe = await createTestUser(sql, { roles: ['student'] });
    const enrollment = await createEnrollment(sql, probe.id, program.programId);
    await record(sessionBody('2026-03-11T02:30:00Z', 150, [{ studentId: probe.id, status: 'present' }]));
    expect(await lastDateOfAttendance(sql, enrollment)).toBe('2026-03-10');
    await record(
      sessionBody('2026-03-20T14:00:00Z', 60, [{ studentId: probe.id, status: 'late', minutesAttended: 0 }]),
    );
    expect(await lastDateOfAttendance(sql, enrollment)).toBe('2026-03-10');
  });

  test('this week counts from Monday 00:00 at the school; a clock hour is configurable', async () => {
    const sql = app.db.sql;
    const probe = await createTestUser(sql, { roles: ['student'] });
    enrollmentOf.set(probe.id, await createEnrollment(sql, probe.id, program.programId));
    const [week] = await sql<{ start: Date }[]>`
      select date_trunc('week', now() at time zone 'America/New_York') at time zone 'America/New_York' as start`;
    const weekStart = (week as { start: Date }).start.getTime();
    // Up to 60 minutes inside this week (less when the week began under an hour ago), and 120 last week.
    const inWeek = Math.min(60, Math.floor((Date.now() - weekStart) / 60_000) - 1);
    if (inWeek > 0) {
      const start = new Date(Date.now() - inWeek * 60_000 - 30_000).toISOString();
      await record(sessionBody(start, inWeek, [{ studentId: probe.id, status: 'present' }]));
    }
    await record(
      sessionBody(new Date(weekStart - 3 * 3_600_000).toISOString(), 120, [{ studentId: probe.id, status: 'present' }]),
    );
    const rollup = await rollupOf(probe, instructor);
    expect(rollup.clockHoursThisWeek).toBe(Math.floor((Math.max(inWeek, 0) * 100) / 50) / 100);
    expect(rollup.minutesAttended).toBe(120 + Math.max(inWeek, 0));

    process.env.ATTENDANCE_CLOCK_HOUR_MINUTES = '60';
    resetConfigForTests();
    try {
      const sixty = await rollupOf(probe);
      expect(sixty.clockHoursAttended).toBe(Math.floor(((120 + Math.max(inWeek, 0)) * 100) / 60) / 100);
    } finally {
      delete process.env.ATTENDANCE_CLOCK_HOUR_MINUTES;
      resetConfigForTests();
    }
  });
});

describe('reading attendance', () => {
  test('a student reads their own roll-up and lines, nobody else’s', async () => {
    const mine = studentAt(0);
    expect((await send('GET', `/enrollments/${enrollmentOf.get(mine.id)}/attendance`, { as: mine })).status).toBe(200);
    const theirs = await send('GET', `/enrollments/${enrollmentOf.get(studentAt(1).id)}/attendance`, { as: mine });
    expect(theirs.status).toBe(404);
    const list = await send('GET', `/attendance/records?studentId=${studentAt(1).id}`, { as: mine });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { items: Line[] }).items).toEqual([]);
    const own = await send('GET', '/attendance/records?limit=1', { as: mine });
    const page = (await own.json()) as { items: Line[]; next: string | null };
    expect(page.items.map((line) => line.studentId)).toEqual([mine.id]);
    expect(page.next).not.toBeNull();
    const rest = await send('GET', `/attendance/records?limit=200&cursor=${page.next}`, { as: mine });
    const more = ((await rest.json()) as { items: Line[] }).items;
    expect(more.length).toBeGreaterThan(0);
    expect(more.every((line) => line.studentId === mine.id && line.id !== page.items[0]?.id)).toBe(true);
    expect((await send('GET', `/attendance/sessions/${more[0]?.sessionId}`, { as: mine })).status).toBe(403);
  });

  test('an instructor reads the programmes they teach only; dates and cursors are checked', async () => {
    const theirs = await send('GET', `/enrollments/${enrollmentOf.get(outsider.id)}/attendance`, { as: instructor });
    expect(theirs.status).toBe(404);
    const list = await send('GET', `/attendance/records?studentId=${studentAt(0).id}`, { as: otherInstructor });
    expect(((await list.json()) as { items: Line[] }).items).toEqual([]);
    const march = await send('GET', `/attendance/records?studentId=${studentAt(0).id}&from=2026-03-02&to=2026-03-02`, {
      as: instructor,
    });
    expect(((await march.json()) as { items: Line[] }).items.map((line) => line.minutesAttended)).toEqual([120]);
    for (const query of [
      'from=2026-02-30',
      'cursor=eyJ4IjoxfQ',
      'cursor=WyIyMDI2IiwieCJd',
      'limit=0x10',
      'enrollmentId=1',
    ]) {
      const response = await send('GET', `/attendance/records?${query}`, { as: instructor });
      expect(response.status, query).toBe(400);
      expect((await fieldsOf(response))[0], query).toMatch(/^query\./);
    }
  });

  test('the threshold list names the students under it, by the configured or the asked percentage', async () => {
    const below = async (query: string, as: TestUser = staff) => {
      const response = await send('GET', `/attendance/below-threshold?programId=${program.programId}${query}`, { as });
      expect(response.status).toBe(200);
      const page = (await response.json()) as {
        thresholdPercent: number;
        items: { student: { id: string; lastName: string }; attendanceRatePercent: number }[];
      };
      return page;
    };
    const page = await below('');
    expect(page.thresholdPercent).toBe(80);
    const rates = new Map(page.items.map((item) => [item.student.id, item.attendanceRatePercent]));
    // Student 0 attended every minute; student 2 only 60 of 210 (28.6 %).
    expect(rates.has(studentAt(0).id)).toBe(false);
    expect(rates.get(studentAt(2).id)).toBe(28.6);
    expect(page.items.find((item) => item.student.id === studentAt(2).id)?.student.lastName).toBe('Ōtsuka');
    const strict = await below('&thresholdPercent=100');
    expect(strict.items.some((item) => item.student.id === studentAt(1).id)).toBe(true);
    expect((await below('', otherInstructor)).items).toEqual([]);
    const bad = await send('GET', '/attendance/below-threshold?thresholdPercent=0x50', { as: staff });
    expect(await fieldsOf(bad)).toEqual(['query.thresholdPercent']);
    expect((await send('GET', '/attendance/below-threshold', { as: studentAt(0) })).status).toBe(403);
  });
});

describe('the totals the database keeps per enrollment', () => {
  test('after every session and correction above, each total equals the sum of its current lines; the app cannot write one', async () => {
    const sql = app.db.sql;
    const fromLines = await sql<{ enrollment_id: string; attended: number; scheduled: number }[]>`
      select r.enrollment_id, sum(r.minutes_attended)::int as attended,
             sum((extract(epoch from r.ended_at - r.started_at) / 60)::int)::int as scheduled
        from attendance_records r
       where not exists (select 1 from attendance_records n where n.supersedes_id = r.id)
       group by r.enrollment_id order by r.enrollment_id`;
    const kept = await sql<{ enrollment_id: string; attended: number; scheduled: number }[]>`
      select enrollment_id, attended_minutes::int as attended, scheduled_minutes::int as scheduled
        from attendance_enrollment_totals order by enrollment_id`;
    // The file above recorded sessions for several enrollments and corrected lines (minutes changed).
    expect(fromLines.length).toBeGreaterThan(2);
    expect(await sql`select 1 from attendance_records where supersedes_id is not null`).not.toHaveLength(0);
    expect(kept).toEqual(fromLines);
    await expect(
      sql.begin(async (tx) => {
        await tx`set local role aada_app`;
        await tx`update attendance_enrollment_totals set attended_minutes = attended_minutes + 600`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });
});
