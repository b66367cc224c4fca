// Payments over real HTTP: Idempotency-Key required; a replay returns the first answer byte for byte;
// the same key with another payload is a 422; concurrent duplicates make one entry (the others are
// told to retry, 409, or get the replay); keys are per caller; receipt numbers have no gaps even when
// payments fail; and the receipt PDF says what the ledger says.
import { randomUUID } from 'node:crypto';
import { extractText, getDocumentProxy } from 'unpdf';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let roles: RoleAccounts;
let secondClerk: TestUser;

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  secondClerk = await createTestUser(app.db.sql, { roles: ['finance'] });
});

const pay = (studentId: string, body: unknown, key: string | null, as: TestUser = roles.finance) =>
  send('POST', `/students/${studentId}/payments`, {
    as,
    body,
    headers: key === null ? {} : { 'Idempotency-Key': key },
  });

const newStudent = () => createTestUser(app.db.sql, { roles: ['student'] });

async function paymentsOf(studentId: string) {
  return app.db.sql<{ id: string; amount_cents: string; receipt_number: string }[]>`
    select id, amount_cents, receipt_number from ledger_entries where user_id = ${studentId} and kind = 'payment'`;
}

const CASH = { method: 'cash', amountCents: 25_000 };

describe('the Idempotency-Key', () => {
  test('is required, and must be visible ASCII of at most 255 characters: a 400 naming the header', async () => {
    const student = await newStudent();
    for (const key of [null, '', 'with space', 'x'.repeat(256), 'clé']) {
      const response = await pay(student.id, CASH, key);
      expect(response.status, String(key)).toBe(400);
      const problem = (await response.json()) as { errors: { field: string }[] };
      expect(problem.errors.map((error) => error.field)).toEqual(['headers.idempotency-key']);
    }
    expect(await paymentsOf(student.id)).toEqual([]);
  });

  test('a replay returns the first status and body byte for byte, and posts nothing more', async () => {
    const student = await newStudent();
    const key = randomUUID();
    const first = await pay(student.id, { ...CASH, memo: 'Paid at the front desk' }, key);
    expect(first.status).toBe(201);
    const firstBody = await first.text();
    const payment = JSON.parse(firstBody) as { id: string; receipt: { href: string }; direction: string };
    expect(payment.direction).toBe('credit');
    expect(first.headers.get('location')).toBe(payment.receipt.href);
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const replay = await pay(student.id, { ...CASH, memo: 'Paid at the front desk' }, key);
    expect(replay.status).toBe(201);
    expect(await replay.text()).toBe(firstBody);
    expect(replay.headers.get('location')).toBe(payment.receipt.href);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await paymentsOf(student.id)).map((row) => row.id)).toEqual([payment.id]);
    const [audit] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from audit_log where route = 'students/{id}/payments' and event = 'idempotent_replay'`;
    expect(audit?.n).toBe(1);
  });

  test('the same key with another payload is a 422 naming the header; nothing is posted', async () => {
    const student = await newStudent();
    const key = randomUUID();
    expect((await pay(student.id, CASH, key)).status).toBe(201);
    for (const body of [
      { ...CASH, amountCents: 25_001 },
      { ...CASH, method: 'check', reference: '1001' },
    ]) {
      const response = await pay(student.id, body, key);
      expect(response.status).toBe(422);
      expect(((await response.json()) as { errors: { field: string }[] }).errors[0]?.field).toBe(
        'headers.idempotency-key',
      );
    }
    // Same key, another student: another payload too.
    const other = await newStudent();
    expect((await pay(other.id, CASH, key)).status).toBe(422);
    expect(await paymentsOf(student.id)).toHaveLength(1);
    expect(await paymentsOf(other.id)).toHaveLength(0);
  });

  test('keys belong to the caller: another clerk using the same key records their own payment', async () => {
    const student = await newStudent();
    const key = randomUUID();
    expect((await pay(student.id, CASH, key)).status).toBe(201);
    expect((await pay(student.id, CASH, key, secondClerk)).status).toBe(201);
    expect(await paymentsOf(student.id)).toHaveLength(2);
  });

  test('concurrent duplicates: one payment; the others get 409 with Retry-After or the same answer', async () => {
    const student = await newStudent();
    const key = randomUUID();
    const responses = await Promise.all(Array.from({ length: 8 }, () => pay(student.id, CASH, key)));
    const answers = await Promise.all(responses.map(async (r) => ({ r, text: await r.text() })));
    const created = answers.filter(({ r }) => r.status === 201);
    const busy = answers.filter(({ r }) => r.status === 409);
    expect(created.length + busy.length).toBe(8);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map(({ text }) => text)).size).toBe(1);
    for (const { r } of busy) expect(r.headers.get('retry-after')).toBe('1');
    const rows = await paymentsOf(student.id);
    expect(rows).toHaveLength(1);
    const [keys] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from idempotency_keys where key = ${key}`;
    expect(keys?.n).toBe(1);
    // The retry a 409 asks for gets the first answer.
    const retry = await pay(student.id, CASH, key);
    expect(await retry.text()).toBe(created[0]?.text);
  });
  test('replays of a finished payment all get its answer at once: none is told the key is still running', async () => {
    const student = await newStudent();
    const key = randomUUID();
    const first = await pay(student.id, CASH, key);
    expect(first.status).toBe(201);
    const firstText = await first.text();
    const replays = await Promise.all(Array.from({ length: 12 }, () => pay(student.id, CASH, key)));
    const answers = await Promise.all(replays.map(async (r) => ({ status: r.status, text: await r.text() })));
    expect(answers.map(({ status }) => status)).toEqual(Array(12).fill(201));
    for (const { text } of answers) expect(text).toBe(firstText);
    expect(await paymentsOf(student.id)).toHaveLength(1);
  });
});

describe('payments', () => {
  test('receipt numbers have no gaps, even when payments fail and roll back', async () => {
    const student = await newStudent();
    const other = await newStudent();
    const { programId } = await createProgram(app.db.sql, { hours: [10] });
    const othersEnrollment = await createEnrollment(app.db.sql, other.id, programId);
    const good = Array.from({ length: 6 }, () => pay(student.id, CASH, randomUUID()));
    // The enrollment is not this student's: refused after the counter was taken, so rolled back.
    const bad = Array.from({ length: 3 }, () =>
      pay(student.id, { ...CASH, enrollmentId: othersEnrollment }, randomUUID()),
    );
    const statuses = (await Promise.all([...good, ...bad])).map((response) => response.status);
    expect(statuses).toEqual([201, 201, 201, 201, 201, 201, 400, 400, 400]);
    const numbers = (await paymentsOf(student.id)).map((row) => Number(row.receipt_number)).sort((a, b) => a - b);
    expect(numbers).toHaveLength(6);
    expect(numbers.every((n, i) => i === 0 || n === (numbers[i - 1] as number) + 1)).toBe(true);
    const [counter] = await app.db.sql<{ last: string }[]>`select last_issued::text as last from receipt_counter`;
    const [max] = await app.db.sql<{ max: string }[]>`select max(receipt_number)::text as max from ledger_entries`;
    expect(counter?.last).toBe(max?.max);
  });

  test('check, card and bank payments need their reference; amounts are refused by name', async () => {
    const student = await newStudent();
    for (const method of ['check', 'card', 'bank']) {
      const response = await pay(student.id, { method, amountCents: 100 }, randomUUID());
      expect(response.status, method).toBe(400);
      expect(JSON.stringify(await response.json())).toContain('body.reference');
    }
    for (const amountCents of [0, -5, 0.5, 100_000_001, '10']) {
      const response = await pay(student.id, { method: 'cash', amountCents }, randomUUID());
      expect(response.status).toBe(400);
      expect(JSON.stringify(await response.json())).toContain('body.amountCents');
    }
    expect(await paymentsOf(student.id)).toEqual([]);
  });

  test('only finance records payments: admin, staff and the student are refused', async () => {
    const student = await newStudent();
    for (const as of [roles.admin, roles.staff, student]) {
      expect((await pay(student.id, CASH, randomUUID(), as)).status).toBe(403);
    }
  });

  test('the receipt PDF prints the receipt number, name, amount, method and the balance after it', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Renée', lastName: 'Okafor' });
    await send('POST', `/students/${student.id}/ledger`, {
      as: roles.finance,
      body: { kind: 'charge', category: 'tuition', amountCents: 150_000 },
    });
    const response = await pay(
      student.id,
      { method: 'check', reference: 'CHK 2041', amountCents: 50_025 },
      randomUUID(),
    );
    const payment = (await response.json()) as { receipt: { number: string; href: string } };
    const pdf = await send('GET', payment.receipt.href.replace(/^\/api/, ''), { as: roles.admin });
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(pdf.headers.get('cache-control')).toBe('no-store');
    const document = await getDocumentProxy(new Uint8Array(await pdf.arrayBuffer()));
    const { text } = await extractText(document, { mergePages: true });
    for (const printed of [payment.receipt.number, 'Renée Okafor', '$500.25', 'Check', 'CHK 2041', '$999.75']) {
      expect(text).toContain(printed);
    }
    // The student prints their own receipt (someone else's: test/ledger-statements.test.ts).
    expect((await send('GET', payment.receipt.href.replace(/^\/api/, ''), { as: student })).status).toBe(200);
    expect((await send('GET', `/ledger/payments/${randomUUID()}/receipt`, { as: roles.finance })).status).toBe(404);
  });
});
