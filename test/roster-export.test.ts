// The whole roster in one request (issue 15, item 6): `GET reports/compliance/students` streams every
// student as CSV or NDJSON through the export machinery of the compliance reports. Checked over HTTP against
// the paged list it replaces (same students, same order, same decrypted names and addresses, across more
// than one cursor batch), its filters and their 400s, who is refused, and the audit row each export leaves.
import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, test } from 'vitest';
import type { Role } from '../lib/access';
import { EXPORT_BATCH } from '../lib/reports';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram, insertStudents, people } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

const ROSTER = '/reports/compliance/students';
/** More than one cursor batch, so the order must hold across batches. */
const BULK = EXPORT_BATCH + 150;
const PENDING = 3;

let accounts: RoleAccounts;
let programA: string;
const named: TestUser[] = [];

interface PagedStudent {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  status: string;
  createdAt: string;
}

beforeAll(async () => {
  const sql = app.db.sql;
  accounts = await createRoleAccounts(sql);
  programA = (await createProgram(sql, { code: 'RST-A' })).programId;
  const programB = (await createProgram(sql, { code: 'RST-B' })).programId;
  for (const [firstName, lastName] of [
    ['Zoë', 'Nguyễn Thị'],
    ['Seán', 'O’Brien, "Jr"'],
    ['Ωmega', '山田'],
  ] as const) {
    const student = await createTestUser(sql, { roles: ['student'], firstName, lastName });
    named.push(student);
    await createEnrollment(sql, student.id, programA);
  }
  await createEnrollment(sql, (named[0] as TestUser).id, programB, { status: 'pending', startDate: '2030-01-01' });
  await insertStudents(sql, people('Roster', BULK));
  await insertStudents(sql, people('Waiting', PENDING), 'pending');
}, 120_000);

/** Every student as the paged list serves them to the registrar, in its order (creation, then id). */
async function pagedStudents(): Promise<PagedStudent[]> {
  const all: PagedStudent[] = [];
  let path: string | null = '/students?limit=200';
  while (path) {
    const response = await send('GET', path, { as: accounts.registrar });
    expect(response.status).toBe(200);
    const page = (await response.json()) as { items: PagedStudent[]; next: string | null };
    all.push(...page.items);
    path = page.next ? `/students?limit=200&cursor=${encodeURIComponent(page.next)}` : null;
  }
  return all;
}

const csvRows = async (response: Response) =>
  parse(await response.text(), { bom: true, columns: true }) as Record<string, string>[];

const ndjsonRows = async (response: Response) => {
  const text = await response.text();
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text === ''
    ? []
    : text
        .slice(0, -1)
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
};

describe('the roster export', () => {
  test('CSV: every student the paged list serves, in its order, names and addresses decrypted', async () => {
    const response = await send('GET', ROSTER, { as: accounts.registrar });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv; charset=utf-8/);
    expect(response.headers.get('content-disposition')).toMatch(
      /^attachment; filename="students-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    expect(response.headers.get('cache-control')).toBe('no-store');
    const rows = await csvRows(response);
    const paged = await pagedStudents();
    expect(paged.length).toBeGreaterThan(EXPORT_BATCH);
    expect(rows.map((row) => row.student_id)).toEqual(paged.map((student) => student.id));
    expect(rows).toEqual(
      paged.map((student) =>
        expect.objectContaining({
          first_name: student.firstName,
          last_name: student.lastName,
          email: student.email,
          status: student.status,
          created_at: student.createdAt,
        }),
      ),
    );
    const [zoe, sean] = named as [TestUser, TestUser];
    const byId = new Map(rows.map((row) => [row.student_id, row]));
    expect(byId.get(zoe.id)).toMatchObject({ last_name: 'Nguyễn Thị', enrollments: 'RST-A active; RST-B pending' });
    expect(byId.get(sean.id)).toMatchObject({ last_name: 'O’Brien, "Jr"', enrollments: 'RST-A active' });
    // A student without enrollments has an empty cell; staff accounts are not students.
    expect(byId.get(accounts.student.id)?.enrollments).toBe('');
    expect(byId.has(accounts.registrar.id)).toBe(false);
  });

  test('NDJSON: the same rows, one JSON object a line keyed by the columns, nulls as null', async () => {
    const [csvResponse, response] = await Promise.all([
      send('GET', ROSTER, { as: accounts.admin }),
      send('GET', `${ROSTER}?format=ndjson`, { as: accounts.admin }),
    ]);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(response.headers.get('content-disposition')).toMatch(/filename="students-\d{4}-\d{2}-\d{2}\.ndjson"$/);
    const [csv, lines] = await Promise.all([csvRows(csvResponse), ndjsonRows(response)]);
    expect(lines.length).toBe(csv.length);
    expect(Object.keys(lines[0] as object)).toEqual([
      'student_id',
      'first_name',
      'last_name',
      'email',
      'status',
      'created_at',
      'enrollments',
    ]);
    expect(lines.map((line) => line.student_id)).toEqual(csv.map((row) => row.student_id));
    const byId = new Map(lines.map((line) => [line.student_id, line]));
    expect(byId.get((named[2] as TestUser).id)).toMatchObject({ first_name: 'Ωmega', last_name: '山田' });
    expect(byId.get(accounts.student.id)?.enrollments).toBeNull();
  });

  test('filters: by programme, by account status, by the day the account was created', async () => {
    const inA = await ndjsonRows(
      await send('GET', `${ROSTER}?format=ndjson&programId=${programA}`, { as: accounts.registrar }),
    );
    expect(inA.map((line) => line.student_id)).toEqual(named.map((student) => student.id));
    const pending = await ndjsonRows(
      await send('GET', `${ROSTER}?format=ndjson&status=pending`, { as: accounts.registrar }),
    );
    // Inserted together: one created_at, in id order.
    expect(pending.map((line) => line.last_name).sort()).toEqual(['Row0000', 'Row0001', 'Row0002']);
    expect(pending.every((line) => line.first_name === 'Waiting' && line.status === 'pending')).toBe(true);
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
    const none = await send('GET', `${ROSTER}?from=${tomorrow}`, { as: accounts.registrar });
    // The header alone (text() drops the BOM).
    expect(await none.text()).toBe('student_id,first_name,last_name,email,status,created_at,enrollments\n');
    expect(
      await (await send('GET', `${ROSTER}?format=ndjson&from=${tomorrow}`, { as: accounts.registrar })).text(),
    ).toBe('');
    const pdf = await send('GET', `${ROSTER}?format=pdf&programId=${programA}`, { as: accounts.registrar });
    expect(pdf.status).toBe(200);
    expect(
      Buffer.from(await pdf.arrayBuffer())
        .subarray(0, 5)
        .toString(),
    ).toBe('%PDF-');
  });

  test.each([
    ['status=enrolled', 'query.status'],
    ['status=active%27%20or%201=1--', 'query.status'],
    ['format=xml', 'query.format'],
    ['format=NDJSON', 'query.format'],
    ['programId=not-a-uuid', 'query.programId'],
    ['from=2026-13-01', 'query.from'],
    ['from=2026-02-02&to=2026-01-01', 'query.to'],
  ])('?%s is a 400 naming %s', async (search, field) => {
    const response = await send('GET', `${ROSTER}?${search}`, { as: accounts.registrar });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await response.json()) as { errors: { field: string }[] };
    expect(problem.errors.map((error) => error.field)).toContain(field);
  });

  test('only the registrar and an admin may export it: everyone else is refused before a row is read', async () => {
    expect((await send('GET', `${ROSTER}?format=ndjson`)).status).toBe(401);
    const refused: Role[] = ['staff', 'instructor', 'finance', 'student', 'admissions_counselor', 'admissions_manager'];
    for (const role of refused) {
      const response = await send('GET', `${ROSTER}?format=ndjson`, { as: accounts[role] });
      expect(response.status, role).toBe(403);
      expect(await response.text(), role).not.toContain('Roster');
    }
  });

  test('each export leaves an audit row: who, the resource, a PHI read, the outcome; a refusal too', async () => {
    const exported = await send('GET', `${ROSTER}?format=ndjson`, { as: accounts.registrar });
    expect(exported.status).toBe(200);
    await exported.text();
    const refused = await send('GET', ROSTER, { as: accounts.staff });
    expect(refused.status).toBe(403);
    const rows = await app.db.sql<
      { request_id: string; user_id: string; status: number; phi: boolean; resource: string }[]
    >`
      select request_id, user_id, status, phi, resource_ids ->> 'resource' as resource
        from audit_log
       where request_id = any(${[exported.headers.get('x-request-id'), refused.headers.get('x-request-id')]}::text[])
         and route = 'reports/compliance/{resource}' and method = 'GET'
       order by status`;
    expect(rows).toEqual([
      {
        request_id: exported.headers.get('x-request-id'),
        user_id: accounts.registrar.id,
        status: 200,
        phi: true,
        resource: 'students',
      },
      {
        request_id: refused.headers.get('x-request-id'),
        user_id: accounts.staff.id,
        status: 403,
        phi: true,
        resource: 'students',
      },
    ]);
  });
});
