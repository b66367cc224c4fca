// Finance exports over HTTP (`GET reports/finance/{resource}`): the ledger, payments and withdrawals with
// their refunds. A CSV parsed back equals the rows in the database (unicode, commas and quotes in names
// survive), NDJSON and PDF carry the same, the filters and their 400s, and who may export: finance and
// admin only (the registrar exports the academic records, not money; finance not those).
import { parse } from 'csv-parse/sync';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger } from './helpers/ledger';
import { createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let roles: RoleAccounts;
let programA: string;
let programB: string;
const students: TestUser[] = [];
const enrollmentOf = new Map<string, string>();
let refundId: string;

beforeAll(async () => {
  const sql = app.db.sql;
  roles = await createRoleAccounts(sql);
  programA = (await createProgram(sql, { code: 'FIN-A', hours: [10] })).programId;
  programB = (await createProgram(sql, { code: 'FIN-B', hours: [10] })).programId;
  for (const [firstName, lastName, programId] of [
    ['Zoë', 'Nguyễn Thị', programA],
    ['Seán', 'O’Brien, "Jr"', programA],
    ['Ωmega', '山田', programB],
  ] as const) {
    const student = await createTestUser(sql, { roles: ['student'], firstName, lastName });
    students.push(student);
    enrollmentOf.set(student.id, await createEnrollment(sql, student.id, programId));
  }
  const [zoe, sean, omega] = students as [TestUser, TestUser, TestUser];
  const on = (student: TestUser) => ({ studentId: student.id, enrollmentId: enrollmentOf.get(student.id) });
  await insertLedger(
    sql,
    [
      { ...on(zoe), kind: 'charge', amountCents: 400_000, postedAt: '2026-03-02T15:00:00Z' },
      { ...on(sean), kind: 'charge', amountCents: 400_000, postedAt: '2026-03-02T15:00:00Z' },
      { ...on(omega), kind: 'charge', amountCents: 250_000, postedAt: '2026-03-02T15:00:00Z' },
      { ...on(zoe), kind: 'payment', amountCents: 150_000, postedAt: '2026-03-05T15:00:00Z' },
      { ...on(sean), kind: 'payment', amountCents: 99, postedAt: '2026-03-10T15:00:00Z' },
      { ...on(omega), kind: 'payment', amountCents: 100_000, postedAt: '2026-03-11T15:00:00Z' },
    ],
    roles.finance.id,
  );
  // Seán's payment was posted by mistake: finance reverses it through the API.
  const [mistake] = await sql<{ id: string }[]>`
    select id from ledger_entries where user_id = ${sean.id} and kind = 'payment'`;
  const reversed = await send('POST', `/ledger/entries/${mistake?.id}/reversal`, {
    as: roles.finance,
    body: { reason: 'Posted to the wrong student' },
  });
  expect(reversed.status).toBe(201);
  // Ωmega withdraws within the cancellation window: every charge cancelled, the payment refunded; finance approves.
  const withdrawn = await send('POST', `/enrollments/${enrollmentOf.get(omega.id)}/withdrawal`, {
    as: roles.registrar,
    body: { kind: 'official', reason: 'Moving away (private)' },
  });
  expect(withdrawn.status).toBe(201);
  refundId = ((await withdrawn.json()) as { refund: { id: string } }).refund.id;
  expect((await send('POST', `/ledger/refunds/${refundId}/approval`, { as: roles.finance, body: {} })).status).toBe(
    200,
  );
});

const exportOf = (query: string, as: TestUser = roles.finance) => send('GET', `/reports/finance/${query}`, { as });
const csvRows = async (response: Response) =>
  parse(await response.text(), { bom: true, columns: true }) as Record<string, string>[];
const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];
const nameOf = (id: string) => {
  const student = students.find((candidate) => candidate.id === id) as TestUser;
  return [student.firstName, student.lastName];
};

describe('finance exports', () => {
  test('the ledger CSV parsed back equals the ledger entries, names decrypted, reversals pointing back', async () => {
    const response = await exportOf('ledger?format=csv');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('content-disposition')).toMatch(
      /^attachment; filename="ledger-\d{4}-\d{2}-\d{2}\.csv"$/,
    );
    const rows = await csvRows(response);
    const entries = await app.db.sql<Record<string, string | null>[]>`
      select le.posted_at, le.entry_number::text as entry_number, le.user_id, p.code, le.kind, le.category,
             le.direction, le.amount_cents::text as amount_cents, le.reference, le.receipt_number::text as receipt_number,
             original.entry_number::text as reverses, le.posted_by
        from ledger_entries le left join programs p on p.id = le.program_id
        left join ledger_entries original on original.id = le.reverses_entry_id
       order by le.entry_number`;
    // Six posted here, the reversal, and the approval's adjustment and refund entries.
    expect(entries).toHaveLength(9);
    expect(rows).toEqual(
      entries.map((entry) => {
        const [firstName, lastName] = nameOf(entry.user_id as string);
        return {
          posted_at: (entry.posted_at as unknown as Date).toISOString(),
          entry_number: entry.entry_number,
          student_id: entry.user_id,
          first_name: firstName,
          last_name: lastName,
          programme: entry.code ?? '',
          kind: entry.kind,
          category: entry.category,
          direction: entry.direction,
          amount_cents: entry.amount_cents,
          reference: entry.reference ?? '',
          receipt_number: entry.receipt_number ?? '',
          reverses_entry_number: entry.reverses ?? '',
          posted_by: entry.posted_by,
        };
      }),
    );
    const reversal = rows.find((row) => row.kind === 'reversal');
    const original = rows.find((row) => row.entry_number === reversal?.reverses_entry_number);
    expect(original).toMatchObject({ kind: 'payment', amount_cents: '99', last_name: 'O’Brien, "Jr"' });
    expect(reversal).toMatchObject({ direction: 'debit', amount_cents: '99', first_name: 'Seán' });
    const audited = await app.db.sql`
      select 1 from audit_log where route = 'reports/finance/{resource}' and phi and status = 200
         and resource_ids->>'resource' = 'ledger' and user_id = ${roles.finance.id}`;
    expect(audited.length).toBeGreaterThan(0);
  });

  test('payments carry their receipt numbers and methods; a reversed payment says when', async () => {
    const rows = await csvRows(await exportOf('payments'));
    expect(rows.map((row) => [row.first_name, row.amount_cents, row.method])).toEqual([
      ['Zoë', '150000', 'cash'],
      ['Seán', '99', 'cash'],
      ['Ωmega', '100000', 'cash'],
    ]);
    const receipts = rows.map((row) => Number(row.receipt_number));
    expect(receipts).toEqual([...receipts].sort((a, b) => a - b));
    expect(new Set(receipts).size).toBe(3);
    expect(rows.map((row) => row.reversed_at !== '')).toEqual([false, true, false]);
    expect((await csvRows(await exportOf('payments?status=reversed'))).map((row) => row.first_name)).toEqual(['Seán']);
    expect(await csvRows(await exportOf('payments?status=live'))).toHaveLength(2);
  });

  test('withdrawals carry the refund calculated and approved, never the reason given', async () => {
    const text = await (await exportOf('withdrawals')).text();
    expect(text).not.toContain('Moving away');
    const rows = parse(text, { bom: true, columns: true }) as Record<string, string>[];
    const omega = students[2] as TestUser;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      student_id: omega.id,
      first_name: 'Ωmega',
      last_name: '山田',
      programme: 'FIN-B',
      kind: 'official',
      initiated_by: 'student',
      basis: 'cancellation',
      refund_cents: '100000',
      approved_refund_cents: '100000',
      status: 'approved',
      remitted_at: '',
    });
    expect(rows[0]?.approved_at).not.toBe('');
    expect(await csvRows(await exportOf('withdrawals?status=calculated'))).toHaveLength(0);
    expect(await csvRows(await exportOf(`withdrawals?programId=${programA}`))).toHaveLength(0);
  });

  test('filters by date range, programme and kind; bad filters are a 400 naming the field', async () => {
    expect(await csvRows(await exportOf('ledger?status=charge'))).toHaveLength(3);
    expect(await csvRows(await exportOf('ledger?from=2026-03-05&to=2026-03-10'))).toHaveLength(2);
    expect(await csvRows(await exportOf('payments?to=2026-03-05'))).toHaveLength(1);
    const inA = await csvRows(await exportOf(`ledger?programId=${programA}`));
    expect(inA.map((row) => row.programme)).toEqual(['FIN-A', 'FIN-A', 'FIN-A', 'FIN-A', 'FIN-A']);
    const cases: [string, string][] = [
      ['ledger?status=paid', 'query.status'],
      ['payments?status=charge', 'query.status'],
      ['withdrawals?status=submitted', 'query.status'],
      ['ledger?from=2026-03-10&to=2026-03-01', 'query.to'],
      ['ledger?format=xlsx', 'query.format'],
      ['ledger?programId=1%27%20or%201=1', 'query.programId'],
      ['attendance', 'params.resource'],
      ['students', 'params.resource'],
    ];
    for (const [query, field] of cases) {
      const response = await exportOf(query);
      expect(response.status, query).toBe(400);
      expect(await fieldsOf(response), query).toContain(field);
    }
    // And the finance resources are not among the compliance exports.
    const compliance = await send('GET', '/reports/compliance/ledger', { as: roles.registrar });
    expect(compliance.status).toBe(400);
    expect(await fieldsOf(compliance)).toContain('params.resource');
  });

  test('NDJSON and PDF carry the same rows; finance and admins only', async () => {
    for (const resource of ['ledger', 'payments', 'withdrawals']) {
      const csv = await csvRows(await exportOf(resource, roles.admin));
      const ndjson = await exportOf(`${resource}?format=ndjson`);
      expect(ndjson.status, resource).toBe(200);
      expect(ndjson.headers.get('content-type')).toBe('application/x-ndjson');
      const lines = (await ndjson.text())
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.map((line) => line.student_id)).toEqual(csv.map((row) => row.student_id));
      expect(lines.map((line) => line.first_name)).toEqual(csv.map((row) => row.first_name));
      const pdf = await exportOf(`${resource}?format=pdf`);
      expect(pdf.status, resource).toBe(200);
      expect(pdf.headers.get('content-type')).toBe('application/pdf');
      expect(pdf.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="${resource}-`));
      expect(
        Buffer.from(await pdf.arrayBuffer())
          .subarray(0, 5)
          .toString(),
      ).toBe('%PDF-');
    }
    for (const who of [roles.registrar, roles.staff, roles.instructor, students[0] as TestUser]) {
      expect((await exportOf('ledger', who)).status).toBe(403);
    }
    expect((await send('GET', '/reports/compliance/attendance', { as: roles.finance })).status).toBe(403);
    expect((await send('GET', '/reports/finance/ledger', { as: null })).status).toBe(401);
  });
});
