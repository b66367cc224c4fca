// Statements of account over real HTTP: the opening balance is every entry before the period, the
// period's entries carry the balance after each and add up to the closing balance; a period is read in
// school days (America/New_York); one enrollment's statement holds only its entries; the PDF prints
// what the JSON says. A student reads their own statements and receipts and nobody else's (the old
// system's IDOR), and bad periods, ids and formats are 400s naming the field.
import { randomUUID } from 'node:crypto';
import { extractText, getDocumentProxy } from 'unpdf';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger } from './helpers/ledger';
import { createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let roles: RoleAccounts;
let student: TestUser;
let other: TestUser;
let enrollmentId: string;
let secondEnrollmentId: string;
let othersEnrollmentId: string;

interface Statement {
  student: { id: string; firstName: string; lastName: string };
  enrollment: { id: string } | null;
  period: { from: string | null; to: string };
  openingBalanceCents: number;
  debitsCents: number;
  creditsCents: number;
  closingBalanceCents: number;
  entries: { amountCents: number; kind: string; enrollmentId: string | null; balanceAfterCents: number }[];
}

beforeAll(async () => {
  const sql = app.db.sql;
  roles = await createRoleAccounts(sql);
  student = await createTestUser(sql, { roles: ['student'], firstName: 'Ngọc', lastName: 'Bảo' });
  other = await createTestUser(sql, { roles: ['student'] });
  const { programId } = await createProgram(sql, { hours: [10], name: 'Dental Assisting Diploma' });
  const second = await createProgram(sql, { hours: [10] });
  enrollmentId = await createEnrollment(sql, student.id, programId);
  secondEnrollmentId = await createEnrollment(sql, student.id, second.programId);
  othersEnrollmentId = await createEnrollment(sql, other.id, programId);
  // 03:00 UTC on 1 March is 22:00 on 28 February in Atlanta: it belongs to February.
  await insertLedger(
    sql,
    [
      { studentId: student.id, enrollmentId, kind: 'charge', amountCents: 600_000, postedAt: '2026-01-15T15:00:00Z' },
      { studentId: student.id, enrollmentId, kind: 'payment', amountCents: 100_000, postedAt: '2026-03-01T03:00:00Z' },
      { studentId: student.id, enrollmentId, kind: 'payment', amountCents: 50_000, postedAt: '2026-03-02T15:00:00Z' },
      {
        studentId: student.id,
        enrollmentId: secondEnrollmentId,
        kind: 'charge',
        amountCents: 25_000,
        postedAt: '2026-03-10T15:00:00Z',
      },
      { studentId: student.id, kind: 'refund', amountCents: 1_234, postedAt: '2026-03-31T20:00:00Z' },
      {
        studentId: student.id,
        enrollmentId,
        kind: 'adjustment',
        amountCents: 10_000,
        postedAt: '2026-04-02T15:00:00Z',
      },
      { studentId: other.id, enrollmentId: othersEnrollmentId, kind: 'charge', amountCents: 777_777 },
    ],
    roles.finance.id,
  );
});

const statementOf = (studentId: string, query: string, as: TestUser = roles.finance) =>
  send('GET', `/students/${studentId}/statement${query}`, { as });

describe('a statement of account', () => {
  test('opens with every entry before the period, lists the period in school days, and closes on their sum', async () => {
    const response = await statementOf(student.id, '?from=2026-03-01&to=2026-03-31');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const statement = (await response.json()) as Statement;
    // The charge of January and the payment of 28 February (22:00 in Atlanta) are before the period.
    expect(statement.openingBalanceCents).toBe(600_000 - 100_000);
    expect(statement.entries.map((entry) => [entry.kind, entry.amountCents, entry.balanceAfterCents])).toEqual([
      ['payment', 50_000, 450_000],
      ['charge', 25_000, 475_000],
      ['refund', 1_234, 476_234],
    ]);
    expect(statement).toMatchObject({
      student: { id: student.id, firstName: 'Ngọc', lastName: 'Bảo' },
      period: { from: '2026-03-01', to: '2026-03-31' },
      debitsCents: 26_234,
      creditsCents: 50_000,
      closingBalanceCents: 476_234,
    });
    // Without a period: from the first entry to today, closing on the balance the ledger reports.
    const all = (await (await statementOf(student.id, '')).json()) as Statement;
    expect(all.openingBalanceCents).toBe(0);
    expect(all.entries).toHaveLength(6);
    const balance = (await (await send('GET', `/students/${student.id}/balance`, { as: roles.finance })).json()) as {
      balanceCents: number;
    };
    expect(all.closingBalanceCents).toBe(balance.balanceCents);
  });

  test('of one enrollment holds only its entries, opening and closing on its own balance', async () => {
    const statement = (await (
      await statementOf(student.id, `?enrollmentId=${enrollmentId}&from=2026-03-01`)
    ).json()) as Statement;
    expect(statement.enrollment).toMatchObject({ id: enrollmentId, programName: 'Dental Assisting Diploma' });
    expect(statement.openingBalanceCents).toBe(500_000);
    expect(statement.entries.every((entry) => entry.enrollmentId === enrollmentId)).toBe(true);
    expect(statement.entries.map((entry) => entry.amountCents)).toEqual([50_000, 10_000]);
    expect(statement.closingBalanceCents).toBe(440_000);
  });

  test('as a PDF prints the student, the period, every line and the balances', async () => {
    const response = await statementOf(student.id, '?from=2026-03-01&to=2026-03-31&format=pdf');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/pdf');
    expect(response.headers.get('content-disposition')).toContain('attachment');
    const document = await getDocumentProxy(new Uint8Array(await response.arrayBuffer()));
    const { text } = await extractText(document, { mergePages: true });
    for (const printed of [
      'Statement of account',
      'Ngọc Bảo',
      '1 March 2026 to 31 March 2026',
      '$5,000.00', // opening
      '$500.00',
      '$250.00',
      '$12.34',
      '$4,762.34', // closing
    ]) {
      expect(text).toContain(printed);
    }
    expect(text).not.toContain('$1,000.00'); // the 28 February payment is in the opening balance
  });

  test('bad periods, ids and formats are 400s naming the field', async () => {
    const cases: [string, string][] = [
      ['?from=2026-03-31&to=2026-03-01', 'query.to'],
      ['?from=2026-02-30', 'query.from'],
      ['?to=yesterday', 'query.to'],
      ["?from=2026-01-01'--", 'query.from'],
      ['?enrollmentId=1%20or%201=1', 'query.enrollmentId'],
      [`?enrollmentId=${othersEnrollmentId}`, 'query.enrollmentId'],
      [`?enrollmentId=${randomUUID()}`, 'query.enrollmentId'],
      ['?format=xml', 'query.format'],
    ];
    for (const [query, field] of cases) {
      const response = await statementOf(student.id, query);
      expect(response.status, query).toBe(400);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      const problem = (await response.json()) as { errors: { field: string }[] };
      expect(
        problem.errors.map((error) => error.field),
        query,
      ).toContain(field);
    }
  });
});

describe('who reads statements and receipts', () => {
  test('a student reads their own statement (JSON and PDF) and their own receipts', async () => {
    expect((await statementOf(student.id, '', student)).status).toBe(200);
    expect((await statementOf(student.id, '?format=pdf', student)).status).toBe(200);
    const payment = (await (
      await send('POST', `/students/${student.id}/payments`, {
        as: roles.finance,
        body: { method: 'cash', amountCents: 1_000 },
        headers: { 'Idempotency-Key': randomUUID() },
      })
    ).json()) as { receipt: { href: string } };
    const receipt = await send('GET', payment.receipt.href.replace(/^\/api/, ''), { as: student });
    expect(receipt.status).toBe(200);
    expect(receipt.headers.get('content-type')).toBe('application/pdf');
  });

  test('the old IDOR: a student naming another student’s ids reads none of their statements or receipts', async () => {
    const payment = (await (
      await send('POST', `/students/${other.id}/payments`, {
        as: roles.finance,
        body: { method: 'cash', amountCents: 4_321 },
        headers: { 'Idempotency-Key': randomUUID() },
      })
    ).json()) as { id: string; receipt: { href: string } };
    for (const path of [
      `/students/${other.id}/statement`,
      `/students/${other.id}/statement?format=pdf`,
      `/students/${other.id}/statement?enrollmentId=${othersEnrollmentId}`,
      `/ledger/payments/${payment.id}/receipt`,
    ]) {
      const response = await send('GET', path, { as: student });
      expect(response.status, path).toBe(404);
      const body = await response.text();
      expect(body).not.toContain('777777');
      expect(body).not.toContain(other.id);
    }
    // Their own statement naming the other student's enrollment shows nothing of it.
    const own = await statementOf(student.id, `?enrollmentId=${othersEnrollmentId}&user_id=${other.id}`, student);
    expect(own.status).toBe(400);
    expect(await own.text()).not.toContain('777777');
  });

  test('staff, the registrar and instructors read no statement; admin and finance read every one', async () => {
    for (const as of [roles.staff, roles.registrar, roles.instructor]) {
      expect((await statementOf(other.id, '', as)).status).toBe(403);
    }
    for (const as of [roles.admin, roles.finance]) {
      expect((await statementOf(other.id, '', as)).status).toBe(200);
    }
  });
});
