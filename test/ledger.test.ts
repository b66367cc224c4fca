// The ledger over HTTP: posting with the right direction, amounts refused by name, reversals that
// restore the balance (once, never of a reversal), balances per student and enrollment equal to the
// sum of the entries for 1,000 random ledgers, and a student who reads no one's ledger but their own.
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { decrypt } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger, type LedgerLine } from './helpers/ledger';
import { createEnrollment, createProgram, insertStudents, people } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let roles: RoleAccounts;
let student: TestUser;
let other: TestUser;
let programId: string;
let othersEnrollmentId: string;

beforeAll(async () => {
  const sql = app.db.sql;
  roles = await createRoleAccounts(sql);
  student = await createTestUser(sql, { roles: ['student'] });
  other = await createTestUser(sql, { roles: ['student'] });
  ({ programId } = await createProgram(sql, { hours: [10] }));
  await createEnrollment(sql, student.id, programId);
  othersEnrollmentId = await createEnrollment(sql, other.id, programId);
});

const post = (studentId: string, body: unknown, as: TestUser = roles.finance) =>
  send('POST', `/students/${studentId}/ledger`, { as, body });

const balanceOf = async (studentId: string, as: TestUser = roles.finance) =>
  (await (await send('GET', `/students/${studentId}/balance`, { as })).json()) as {
    balanceCents: number;
    byEnrollment: { enrollmentId: string | null; balanceCents: number }[];
  };

const entriesOf = async (studentId: string) =>
  app.db.sql<{ n: number }[]>`select count(*)::int as n from ledger_entries where user_id = ${studentId}`;

describe('posting', () => {
  test('a charge raises the balance, an adjustment lowers it, a refund paid out raises it back; each names its enrollment', async () => {
    const fresh = await createTestUser(app.db.sql, { roles: ['student'] });
    const own = await createEnrollment(app.db.sql, fresh.id, programId);
    const charge = await post(fresh.id, {
      kind: 'charge',
      category: 'tuition',
      amountCents: 500_000,
      enrollmentId: own,
      memo: 'Tuition, spring cohort',
    });
    expect(charge.status).toBe(201);
    const entry = (await charge.json()) as Record<string, unknown>;
    expect(entry).toMatchObject({
      studentId: fresh.id,
      enrollmentId: own,
      programId,
      kind: 'charge',
      direction: 'debit',
      amountCents: 500_000,
      balanceEffectCents: 500_000,
      memo: 'Tuition, spring cohort',
      postedBy: roles.finance.id,
    });
    const [stored] = await app.db.sql<{ memo_ciphertext: string }[]>`
      select memo_ciphertext from ledger_entry_memos where entry_id = ${entry.id as string}`;
    expect(stored?.memo_ciphertext).not.toContain('Tuition');
    expect(decrypt(stored?.memo_ciphertext as string, 'ledger_entry_memos.memo')).toBe('Tuition, spring cohort');

    await post(fresh.id, {
      kind: 'adjustment',
      category: 'tuition_reduction',
      amountCents: 100_000,
      enrollmentId: own,
    });
    await post(fresh.id, { kind: 'refund', category: 'student', amountCents: 2_500, reference: 'CHK 1042' });
    await post(fresh.id, { kind: 'write_off', category: 'write_off', amountCents: 1_000 });
    const balance = await balanceOf(fresh.id);
    expect(balance.balanceCents).toBe(500_000 - 100_000 + 2_500 - 1_000);
    expect(balance.byEnrollment).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ enrollmentId: own, balanceCents: 400_000 }),
        expect.objectContaining({ enrollmentId: null, balanceCents: 1_500 }),
      ]),
    );
  });

  const badAmounts: [string, unknown][] = [
    ['zero', 0],
    ['negative', -100],
    ['fractional', 10.5],
    ['huge', 100_000_001],
    ['astronomical', 1e300],
    ['a string', '100'],
    ['null', null],
  ];
  test.each(badAmounts)('a %s amount is a 400 naming body.amountCents, and nothing is posted', async (_, amount) => {
    const before = await entriesOf(other.id);
    const response = await post(other.id, { kind: 'charge', category: 'fee', amountCents: amount });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    const problem = (await response.json()) as { errors: { field: string }[] };
    expect(problem.errors.map((error) => error.field)).toContain('body.amountCents');
    expect(await entriesOf(other.id)).toEqual(before);
  });

  test('a category of another kind, an unknown kind and a free-text reference are refused by name', async () => {
    const wrongCategory = await post(other.id, { kind: 'charge', category: 'cash', amountCents: 100 });
    expect(wrongCategory.status).toBe(400);
    expect(JSON.stringify(await wrongCategory.json())).toContain('body.category');
    const payment = await post(other.id, { kind: 'payment', category: 'cash', amountCents: 100 });
    expect(payment.status).toBe(400);
    const reference = await post(other.id, {
      kind: 'charge',
      category: 'fee',
      amountCents: 100,
      reference: 'Jane Doe\nSSN',
    });
    expect(reference.status).toBe(400);
    expect(JSON.stringify(await reference.json())).toContain('body.reference');
  });

  test('another student’s enrollment is a 400 naming body.enrollmentId; an unknown student a 404', async () => {
    const before = await entriesOf(student.id);
    const response = await post(student.id, {
      kind: 'charge',
      category: 'tuition',
      amountCents: 100,
      enrollmentId: othersEnrollmentId,
    });
    expect(response.status).toBe(400);
    expect(JSON.stringify(await response.json())).toContain('body.enrollmentId');
    expect(await entriesOf(student.id)).toEqual(before);
    const nobody = await post(roles.staff.id, { kind: 'charge', category: 'fee', amountCents: 100 });
    expect(nobody.status).toBe(404);
  });

  test('only finance posts: an admin, a registrar and the student are refused', async () => {
    for (const as of [roles.admin, roles.registrar, student]) {
      const response = await post(student.id, { kind: 'charge', category: 'fee', amountCents: 100 }, as);
      expect(response.status).toBe(403);
    }
  });
});

describe('reversals', () => {
  test('a reversal restores the balance, points at what it reverses, and happens once', async () => {
    const fresh = await createTestUser(app.db.sql, { roles: ['student'] });
    await post(fresh.id, { kind: 'charge', category: 'tuition', amountCents: 90_000 });
    const mistake = (await (
      await post(fresh.id, { kind: 'charge', category: 'books', amountCents: 12_345 })
    ).json()) as {
      id: string;
    };
    expect((await balanceOf(fresh.id)).balanceCents).toBe(102_345);
    // Two finance clerks reverse the same mistake at once: one reversal.
    const [first, second] = await Promise.all(
      [1, 2].map(() =>
        send('POST', `/ledger/entries/${mistake.id}/reversal`, { as: roles.finance, body: { reason: 'Posted twice' } }),
      ),
    );
    expect([first?.status, second?.status].sort()).toEqual([201, 409]);
    expect((await balanceOf(fresh.id)).balanceCents).toBe(90_000);
    const [reversal] = await app.db.sql<{ id: string; kind: string; direction: string; amount_cents: string }[]>`
      select id, kind, direction, amount_cents from ledger_entries where reverses_entry_id = ${mistake.id}`;
    expect(reversal).toMatchObject({ kind: 'reversal', direction: 'credit', amount_cents: '12345' });
    const again = await send('POST', `/ledger/entries/${reversal?.id}/reversal`, {
      as: roles.finance,
      body: { reason: 'Undo the undo' },
    });
    expect(again.status).toBe(409);
    const history = (await (await send('GET', `/students/${fresh.id}/ledger`, { as: roles.finance })).json()) as {
      items: { id: string; reversedByEntryId: string | null; reversesEntryId: string | null }[];
    };
    expect(history.items.map((item) => item.reversesEntryId)).toEqual([mistake.id, null, null]);
    expect(history.items.find((item) => item.id === mistake.id)?.reversedByEntryId).toBe(reversal?.id);
  });

  test('an unknown entry is a 404; a reversal without a reason a 400 naming it', async () => {
    const unknown = await send('POST', `/ledger/entries/${crypto.randomUUID()}/reversal`, {
      as: roles.finance,
      body: { reason: 'x' },
    });
    expect(unknown.status).toBe(404);
    const noReason = await send('POST', `/ledger/entries/${crypto.randomUUID()}/reversal`, {
      as: roles.finance,
      body: {},
    });
    expect(noReason.status).toBe(400);
    expect(JSON.stringify(await noReason.json())).toContain('body.reason');
  });
});

describe('who reads a ledger', () => {
  test('the old IDOR: a student passing another student’s id (or ?user_id=) reads nothing of theirs', async () => {
    await post(other.id, { kind: 'charge', category: 'tuition', amountCents: 777_777 });
    for (const path of [`/students/${other.id}/ledger`, `/students/${other.id}/balance`]) {
      const response = await send('GET', path, { as: student });
      expect(response.status, path).toBe(404);
      expect(await response.text()).not.toContain('777777');
    }
    const own = await send('GET', `/students/${student.id}/ledger?user_id=${other.id}`, { as: student });
    expect(own.status).toBe(200);
    expect(await own.text()).not.toContain(other.id);
    expect((await send('GET', '/ledger/balances', { as: student })).status).toBe(403);
  });

  test('staff, the registrar and instructors read no ledger; admin and finance read every one', async () => {
    for (const as of [roles.staff, roles.registrar, roles.instructor]) {
      expect((await send('GET', `/students/${other.id}/ledger`, { as })).status).toBe(403);
    }
    for (const as of [roles.admin, roles.finance]) {
      expect((await send('GET', `/students/${other.id}/balance`, { as })).status).toBe(200);
    }
  });
});

describe('balances', () => {
  test('equal the sum of the entries, per student and per enrollment, for 1,000 random ledgers', async () => {
    const sql = app.db.sql;
    const ids = await insertStudents(sql, people('Ledger', 1_000));
    const line = fc.record({
      kind: fc.constantFrom('charge', 'payment', 'adjustment', 'refund', 'write_off'),
      amountCents: fc.integer({ min: 1, max: 100_000_000 }),
      onEnrollment: fc.boolean(),
    });
    const ledgers = fc.sample(fc.array(line, { maxLength: 12 }), { numRuns: ids.length, seed: 11 });
    const enrollments = await Promise.all(ids.map((id) => createEnrollment(sql, id, programId)));
    const lines: LedgerLine[] = ids.flatMap((id, i) =>
      (ledgers[i] ?? []).map((drawn) => ({
        ...drawn,
        studentId: id,
        enrollmentId: drawn.onEnrollment ? enrollments[i] : undefined,
      })),
    );
    await insertLedger(sql, lines, roles.finance.id);
    const expected = new Map(ids.map((id) => [id, 0]));
    for (const drawn of lines) {
      const sign = drawn.kind === 'charge' || drawn.kind === 'refund' ? 1 : -1;
      expected.set(drawn.studentId, (expected.get(drawn.studentId) ?? 0) + sign * drawn.amountCents);
    }
    const seen = new Map<string, number>();
    let path: string | null = '/ledger/balances?limit=200';
    while (path) {
      const response: Response = await send('GET', path, { as: roles.finance });
      expect(response.status).toBe(200);
      const page = (await response.json()) as {
        items: { student: { id: string }; balanceCents: number }[];
        next: string | null;
      };
      for (const item of page.items) seen.set(item.student.id, item.balanceCents);
      path = page.next ? `/ledger/balances?limit=200&cursor=${page.next}` : null;
    }
    expect(ids.filter((id) => seen.get(id) !== expected.get(id))).toEqual([]);
    // Per enrollment, for a sample: the enrollment's part and the rest add up to the total.
    for (const i of [0, 1, 2, 500, 999]) {
      const id = ids[i] as string;
      const balance = await balanceOf(id);
      const parts = balance.byEnrollment.reduce((sum, part) => sum + part.balanceCents, 0);
      expect(parts).toBe(expected.get(id));
      expect(balance.balanceCents).toBe(expected.get(id));
    }
  }, 120_000);
});
