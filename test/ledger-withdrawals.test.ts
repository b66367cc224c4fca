// Withdrawals and refunds. The calculator as a table of cases at the boundaries (exactly 72 hours,
// 49.99 % and 50 %, a withdrawal before the start date, nothing charged, another state's fixed-percent
// table); then over real HTTP and SQL: recording a withdrawal moves the enrollment out and takes the
// last day and hours from attendance; the calculation shows its working; an admin override needs a
// reason and is audited; finance's approval posts the reduction and the refund in one transaction and
// freezes the calculation (the database refuses changes, even from the owner); a student gives notice
// of their own withdrawal and reaches nobody else's; a newer rule never rewrites an old calculation.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { computeRefund, type RefundInputs, type RefundRule } from '../lib/refund-rules';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger, type LedgerLine } from './helpers/ledger';
import { messagesTo } from './helpers/outbox';
import { createEnrollment, createProgram, recordAttendance } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

// ---------------------------------------------------------------------------------------------------
// The calculator
// ---------------------------------------------------------------------------------------------------

const GNPEC: RefundRule = {
  id: 'ga-gnpec-std12-v1',
  jurisdiction: 'GA',
  effectiveFrom: '2000-01-01',
  effectiveTo: null,
  source: 'GNPEC Standard 12',
  parameters: {
    cancellationWindowHours: 72,
    tiers: [
      { belowPct: 50, refund: 'pro_rata' },
      { belowPct: 100, refund: 'none' },
    ],
    remitWithinDays: 45,
  },
};

const CREATED = '2026-03-02T15:00:00.000Z';
const hoursAfter = (hours: number, ms = 0) => new Date(Date.parse(CREATED) + hours * 3_600_000 + ms).toISOString();

/** Tuition of $6,000.00 fully paid, notice a week after creation, `bp` basis points completed by attendance. */
function inputs(overrides: Partial<RefundInputs> & { bp?: number } = {}): RefundInputs {
  const { bp = 2_000, ...rest } = overrides;
  return {
    windowStartsAt: CREATED,
    windowStartsFrom: 'enrollment_created',
    notifiedAt: hoursAfter(24 * 7),
    determinedOn: '2026-03-09',
    startDate: '2026-03-02',
    lastDateOfAttendance: '2026-03-06',
    progress: {
      source: 'attendance',
      completedBasisPoints: bp,
      minutesAttended: 0,
      clockHoursAttended: 0,
      clockHourMinutes: 50,
      programClockHours: 200,
      modulesCompleted: 0,
      modules: 4,
      completedModuleClockHours: 0,
    },
    refundableChargesCents: 600_000,
    allChargesCents: 600_000,
    enrollmentBalanceCents: 0,
    ...rest,
  };
}

describe('the calculator, at the boundaries', () => {
  const cases: [string, RefundInputs, { basis: string; retained: number; adjustment: number; refund: number }][] = [
    [
      'notice exactly 72 hours after creation: cancellation, everything back',
      inputs({ notifiedAt: hoursAfter(72), bp: 900 }),
      { basis: 'cancellation', retained: 0, adjustment: 600_000, refund: 600_000 },
    ],
    [
      'one millisecond past 72 hours: pro rata',
      inputs({ notifiedAt: hoursAfter(72, 1), bp: 900 }),
      { basis: 'pro_rata', retained: 54_000, adjustment: 546_000, refund: 546_000 },
    ],
    [
      '49.99 % completed: pro rata, the school keeps 49.99 %',
      inputs({ bp: 4_999 }),
      { basis: 'pro_rata', retained: 299_940, adjustment: 300_060, refund: 300_060 },
    ],
    ['50 % completed: nothing', inputs({ bp: 5_000 }), { basis: 'none', retained: 600_000, adjustment: 0, refund: 0 }],
    [
      '100 % completed: nothing',
      inputs({ bp: 10_000 }),
      { basis: 'none', retained: 600_000, adjustment: 0, refund: 0 },
    ],
    [
      'withdrawal before the start date, after the window: 0 % completed, all tuition back',
      inputs({ startDate: '2026-04-01', lastDateOfAttendance: null, bp: 0 }),
      { basis: 'pro_rata', retained: 0, adjustment: 600_000, refund: 600_000 },
    ],
    [
      'a programme with no charges: nothing to reduce; a deposit paid comes back',
      inputs({ refundableChargesCents: 0, allChargesCents: 0, enrollmentBalanceCents: -5_000 }),
      { basis: 'nothing_charged', retained: 0, adjustment: 0, refund: 5_000 },
    ],
    [
      'half unpaid: the reduction first pays off what is owed, the rest is refunded',
      inputs({ bp: 2_500, enrollmentBalanceCents: 300_000 }),
      { basis: 'pro_rata', retained: 150_000, adjustment: 450_000, refund: 150_000 },
    ],
    [
      'books stay charged outside the window; a cancellation removes them too',
      inputs({ notifiedAt: hoursAfter(1), allChargesCents: 620_000, enrollmentBalanceCents: 20_000 }),
      { basis: 'cancellation', retained: 0, adjustment: 620_000, refund: 600_000 },
    ],
    [
      'rounding favours the student: the school keeps the floor of its share',
      inputs({ refundableChargesCents: 99_999, allChargesCents: 99_999, bp: 3_333 }),
      { basis: 'pro_rata', retained: 33_329, adjustment: 66_670, refund: 66_670 },
    ],
  ];
  test.each(cases)('%s', (_, given, expected) => {
    const result = computeRefund(GNPEC, given);
    expect({
      basis: result.basis,
      retained: result.retainedCents,
      adjustment: result.adjustmentCents,
      refund: result.refundCents,
    }).toEqual(expected);
    expect(result.dueDate).toBe('2026-04-23'); // 45 days after 9 March
    expect(result.working.join(' ')).toContain(GNPEC.id);
  });

  test('another state’s table is data: fixed percentages by tier (a Texas-like schedule)', () => {
    const texasLike: RefundRule = {
      ...GNPEC,
      id: 'tx-like',
      parameters: {
        cancellationWindowHours: 72,
        tiers: [
          { belowPct: 10, refund: 'fixed_pct', refundPct: 90 },
          { belowPct: 25, refund: 'fixed_pct', refundPct: 50 },
          { belowPct: 50, refund: 'fixed_pct', refundPct: 25 },
        ],
        remitWithinDays: 60,
      },
    };
    const at = (bp: number) => computeRefund(texasLike, inputs({ bp }));
    expect(at(999).refundCents).toBe(540_000);
    expect(at(1_000).refundCents).toBe(300_000);
    expect(at(4_999).refundCents).toBe(150_000);
    expect(at(5_000)).toMatchObject({ basis: 'none', refundCents: 0 });
    expect(at(999).dueDate).toBe('2026-05-08');
  });

  test('the working says why: the progress, the tier and the amounts', () => {
    const result = computeRefund(GNPEC, inputs({ bp: 4_999 }));
    const working = result.working.join('\n');
    expect(working).toContain('49.99 %');
    expect(working).toContain('below 50 %');
    expect(working).toContain('$2,999.40');
    expect(working).toContain('$3,000.60');
    expect(working).toContain('2026-04-23');
  });
});

// ---------------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------------

const app = useTestApp();

let roles: RoleAccounts;
let programId: string;
let moduleId: string;

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  // 10 clock hours of 50 minutes: 500 minutes.
  ({
    programId,
    moduleIds: [moduleId = ''],
  } = await createProgram(app.db.sql, { hours: [10] }));
});

interface Refund {
  id: string;
  status: string;
  dueDate: string;
  calculation: {
    basis: string;
    retainedCents: number;
    adjustmentCents: number;
    refundCents: number;
    completedPercent: number;
    inputs: RefundInputs;
    working: string[];
  };
  inForce: { source: string; adjustmentCents: number; refundCents: number };
  overrides: { reason: string; refundCents: number }[];
  approval: { adjustmentEntryId: string | null; refundEntryId: string | null; payee: string } | null;
  remittance: { reference: string } | null;
}
interface WithdrawalAnswer {
  withdrawal: {
    kind: string;
    lastDateOfAttendance: string | null;
    lastDateSource: string;
    minutesAttended: number;
    clockHoursAttended: number;
    determinedOn: string;
    reason: string | null;
  } | null;
  refund: Refund | null;
}

/** A student with an enrollment created `daysAgo` days ago, charged `tuition` and having paid `paid`. */
async function enrolled(options: { daysAgo?: number; tuition?: number; paid?: number; status?: string } = {}) {
  const sql = app.db.sql;
  const student = await createTestUser(sql, { roles: ['student'] });
  const enrollmentId = await createEnrollment(sql, student.id, programId, { status: options.status ?? 'active' });
  await sql`update enrollments set created_at = now() - make_interval(days => ${options.daysAgo ?? 10})
             where id = ${enrollmentId}`;
  const lines: LedgerLine[] = [
    { studentId: student.id, enrollmentId, kind: 'charge', amountCents: options.tuition ?? 400_000 },
  ];
  if (options.paid) lines.push({ studentId: student.id, enrollmentId, kind: 'payment', amountCents: options.paid });
  await insertLedger(sql, lines, roles.finance.id);
  return { student, enrollmentId };
}

const withdraw = (enrollmentId: string, body: unknown, as: TestUser = roles.registrar) =>
  send('POST', `/enrollments/${enrollmentId}/withdrawal`, { as, body });

const enrollmentBalance = async (studentId: string, enrollmentId: string) => {
  const balance = (await (await send('GET', `/students/${studentId}/balance`, { as: roles.finance })).json()) as {
    byEnrollment: { enrollmentId: string; balanceCents: number }[];
  };
  return balance.byEnrollment.find((part) => part.enrollmentId === enrollmentId)?.balanceCents;
};

const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((error) => error.field) ?? [];

describe('recording a withdrawal', () => {
  test('withdraws the enrollment, takes the last day and hours from attendance, and calculates the refund', async () => {
    const { student, enrollmentId } = await enrolled({ tuition: 400_000, paid: 400_000 });
    // Two sessions: 120 of the programme's 500 minutes (24 %), the last on 20 November.
    for (const startsAt of ['2026-11-18T14:00:00Z', '2026-11-20T14:00:00Z']) {
      await recordAttendance(app.db.sql, {
        moduleId,
        recordedBy: roles.staff.id,
        startsAt,
        lines: [{ userId: student.id, enrollmentId, status: 'present' }],
      });
    }
    const response = await withdraw(enrollmentId, { kind: 'unofficial', reason: 'Stopped attending; no reply' });
    expect(response.status).toBe(201);
    const answer = (await response.json()) as WithdrawalAnswer;
    expect(answer.withdrawal).toMatchObject({
      kind: 'unofficial',
      lastDateOfAttendance: '2026-11-20',
      lastDateSource: 'attendance',
      minutesAttended: 120,
      clockHoursAttended: 2.4,
      reason: 'Stopped attending; no reply',
    });
    const refund = answer.refund as Refund;
    expect(refund.status).toBe('calculated');
    expect(refund.calculation).toMatchObject({
      basis: 'pro_rata',
      completedPercent: 24,
      retainedCents: 96_000,
      adjustmentCents: 304_000,
      refundCents: 304_000,
    });
    expect(refund.calculation.working.join(' ')).toContain('24.00 %');
    // Due 45 days after the date of determination (today).
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York' }).format(new Date());
    expect(answer.withdrawal?.determinedOn).toBe(today);
    const due = new Date(`${today}T00:00:00Z`);
    due.setUTCDate(due.getUTCDate() + 45);
    expect(refund.dueDate).toBe(due.toISOString().slice(0, 10));
    // The enrollment is withdrawn, through the one transition (its history names the change).
    const [row] = await app.db.sql<{ status: string; changes: number }[]>`
      select e.status, (select count(*)::int from enrollment_status_changes c
                         where c.enrollment_id = e.id and c.to_status = 'withdrawn') as changes
        from enrollments e where e.id = ${enrollmentId}`;
    expect(row).toEqual({ status: 'withdrawn', changes: 1 });
    // Nothing is posted before approval.
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);
    // A second withdrawal of the same enrollment is a 409 naming the enrollment in the path (this route
    // has no body.to), even when its dates would be refused too.
    for (const body of [{ kind: 'official' }, { kind: 'official', determinedOn: '2099-01-01' }]) {
      const again = await withdraw(enrollmentId, body);
      expect(again.status, JSON.stringify(body)).toBe(409);
      expect(await fieldsOf(again)).toEqual(['params.id']);
    }
  });

  test('a pending enrollment that never started is cancelled; without attendance, a stated last day is kept', async () => {
    const { enrollmentId } = await enrolled({ status: 'pending' });
    const response = await withdraw(enrollmentId, { kind: 'official', lastDateOfAttendance: '2026-11-01' });
    expect(response.status).toBe(201);
    const answer = (await response.json()) as WithdrawalAnswer;
    expect(answer.withdrawal).toMatchObject({ lastDateOfAttendance: '2026-11-01', lastDateSource: 'stated' });
    const [row] = await app.db.sql<{ status: string }[]>`select status from enrollments where id = ${enrollmentId}`;
    expect(row?.status).toBe('cancelled');
  });

  test('notice within 72 hours of the enrollment’s creation cancels every charge', async () => {
    const { student, enrollmentId } = await enrolled({ daysAgo: 2, tuition: 250_000, paid: 100_000 });
    const refund = ((await (await withdraw(enrollmentId, { kind: 'official' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    expect(refund.calculation).toMatchObject({ basis: 'cancellation', adjustmentCents: 250_000, refundCents: 100_000 });
    expect(refund.calculation.inputs.windowStartsFrom).toBe('enrollment_created');
    const approved = await send('POST', `/ledger/refunds/${refund.id}/approval`, { as: roles.finance, body: {} });
    expect(approved.status).toBe(200);
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);
  });

  test('dates that cannot be, wrong types and unknown fields are 400s naming the field; nothing changes', async () => {
    const { enrollmentId } = await enrolled();
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const cases: [unknown, string][] = [
      [{ kind: 'voluntary' }, 'body.kind'],
      [{ kind: 'official', notifiedAt: tomorrow }, 'body.notifiedAt'],
      [{ kind: 'official', notifiedAt: '2020-01-01T00:00:00Z' }, 'body.notifiedAt'],
      [{ kind: 'official', notifiedAt: 'yesterday' }, 'body.notifiedAt'],
      [{ kind: 'unofficial', notifiedAt: new Date().toISOString() }, 'body.notifiedAt'],
      [{ kind: 'official', determinedOn: '2099-01-01' }, 'body.determinedOn'],
      [{ kind: 'official', determinedOn: '2020-01-01' }, 'body.determinedOn'],
      [{ kind: 'official', determinedOn: 20260101 }, 'body.determinedOn'],
      [{ kind: 'official', lastDateOfAttendance: '2026-13-01' }, 'body.lastDateOfAttendance'],
      [{ kind: 'official', reason: 'a\u0000b' }, 'body.reason'],
      [{ kind: 'official', refundCents: 1 }, 'body'],
    ];
    for (const [body, field] of cases) {
      const response = await withdraw(enrollmentId, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const fields = await fieldsOf(response);
      expect(
        fields.some((name) => name.startsWith(field)),
        `${JSON.stringify(body)} → ${fields}`,
      ).toBe(true);
    }
    const [row] = await app.db.sql<{ status: string }[]>`select status from enrollments where id = ${enrollmentId}`;
    expect(row?.status).toBe('active');
    expect((await withdraw(randomUUID(), { kind: 'official' })).status).toBe(404);
  });
});

describe('students', () => {
  test('a student gives notice of their own withdrawal (official, dated by the school) and reads it', async () => {
    const { student, enrollmentId } = await enrolled();
    const dated = await withdraw(enrollmentId, { kind: 'official', determinedOn: '2026-11-01' }, student);
    expect(dated.status).toBe(400);
    expect(await fieldsOf(dated)).toEqual(['body.determinedOn']);
    expect((await withdraw(enrollmentId, { kind: 'unofficial' }, student)).status).toBe(400);
    const response = await withdraw(enrollmentId, { kind: 'official', reason: 'Moving away' }, student);
    expect(response.status).toBe(201);
    const read = await send('GET', `/enrollments/${enrollmentId}/withdrawal`, { as: student });
    expect(read.status).toBe(200);
    expect(((await read.json()) as WithdrawalAnswer).withdrawal?.reason).toBe('Moving away');
  });

  test('the IDOR: a student reaches no other student’s withdrawal or refund by any route', async () => {
    const { enrollmentId: theirs } = await enrolled();
    const refund = (
      (await (await withdraw(theirs, { kind: 'official', reason: 'Private reason' })).json()) as WithdrawalAnswer
    ).refund as Refund;
    const { student: intruder, enrollmentId: own } = await enrolled();
    expect((await withdraw(theirs, { kind: 'official' }, intruder)).status).toBe(404);
    const read = await send('GET', `/enrollments/${theirs}/withdrawal`, { as: intruder });
    expect(read.status).toBe(404);
    expect(await read.text()).not.toContain('Private reason');
    for (const [method, path] of [
      ['GET', `/ledger/refunds/${refund.id}`],
      ['POST', `/ledger/refunds/${refund.id}/approval`],
      ['POST', `/ledger/refunds/${refund.id}/override`],
      ['GET', '/ledger/refunds-due'],
    ] as const) {
      expect((await send(method, path, { as: intruder, body: method === 'POST' ? {} : undefined })).status).toBe(403);
    }
    // Their own enrollment without a withdrawal: an answer saying so.
    const none = (await (
      await send('GET', `/enrollments/${own}/withdrawal`, { as: intruder })
    ).json()) as WithdrawalAnswer;
    expect(none.withdrawal).toBeNull();
  });
});

describe('override, approval, remittance', () => {
  test('an admin override needs a reason, is audited, and is what finance’s approval posts', async () => {
    const { student, enrollmentId } = await enrolled({ tuition: 400_000, paid: 400_000 });
    const refund = ((await (await withdraw(enrollmentId, { kind: 'unofficial' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    // No attendance, no modules: 0 %, all of it back.
    expect(refund.calculation).toMatchObject({ basis: 'pro_rata', adjustmentCents: 400_000, refundCents: 400_000 });
    const url = `/ledger/refunds/${refund.id}/override`;
    const noReason = await send('POST', url, {
      as: roles.admin,
      body: { adjustmentCents: 350_000, refundCents: 350_000 },
    });
    expect(noReason.status).toBe(400);
    expect(await fieldsOf(noReason)).toEqual(['body.reason']);
    for (const [amount, label] of [
      [-1, 'negative'],
      [0.5, 'fractional'],
      [100_000_001, 'huge'],
      ['350000', 'a string'],
      [null, 'null'],
    ] as const) {
      const bad = await send('POST', url, {
        as: roles.admin,
        body: { adjustmentCents: 1, refundCents: amount, reason: 'A reason long enough' },
      });
      expect(bad.status, label).toBe(400);
      expect(await fieldsOf(bad), label).toEqual(['body.refundCents']);
    }
    const body = { adjustmentCents: 350_000, refundCents: 350_000, reason: 'Kit issued and kept: $500 retained' };
    expect((await send('POST', url, { as: roles.finance, body })).status).toBe(403);
    const overridden = await send('POST', url, { as: roles.admin, body });
    expect(overridden.status).toBe(201);
    const after = (await overridden.json()) as Refund;
    expect(after.inForce).toEqual({ source: 'override', adjustmentCents: 350_000, refundCents: 350_000 });
    expect(after.calculation.refundCents).toBe(400_000); // the calculation itself is kept
    const [audited] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from audit_log
       where event = 'refund_override' and resource_ids ->> 'id' = ${refund.id} and status = 201`;
    expect(audited?.n).toBe(1);

    // Only finance approves; the admin who overrode cannot.
    expect((await send('POST', `/ledger/refunds/${refund.id}/approval`, { as: roles.admin, body: {} })).status).toBe(
      403,
    );
    const [first, second] = await Promise.all(
      [1, 2].map(() =>
        send('POST', `/ledger/refunds/${refund.id}/approval`, { as: roles.finance, body: { payee: 'third_party' } }),
      ),
    );
    expect([first?.status, second?.status].sort()).toEqual([200, 409]);
    const approved = (await (
      await send('GET', `/ledger/refunds/${refund.id}`, { as: roles.finance })
    ).json()) as Refund;
    expect(approved.status).toBe('approved');
    expect(approved.approval?.payee).toBe('third_party');
    const entries = await app.db.sql<{ id: string; kind: string; category: string; amount_cents: string }[]>`
      select id, kind, category, amount_cents from ledger_entries
       where enrollment_id = ${enrollmentId} and kind in ('adjustment', 'refund') order by entry_number`;
    expect(entries.map((e) => [e.kind, e.category, e.amount_cents])).toEqual([
      ['adjustment', 'tuition_reduction', '350000'],
      ['refund', 'third_party', '350000'],
    ]);
    expect(entries.map((e) => e.id)).toEqual([approved.approval?.adjustmentEntryId, approved.approval?.refundEntryId]);
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);

    // Frozen: no further override, and the database refuses an edit even from its owner.
    const late = await send('POST', url, { as: roles.admin, body: { ...body, refundCents: 1 } });
    expect(late.status).toBe(409);
    await expect(app.db.sql`update refunds set refund_cents = 1 where id = ${refund.id}`).rejects.toThrow();
    await expect(app.db.sql`update refunds set approved_refund_cents = 1 where id = ${refund.id}`).rejects.toThrow();
    await expect(app.db.sql`delete from refund_overrides where refund_id = ${refund.id}`).rejects.toThrow();

    // Remittance: a reference is required and is a code; then the refund is no longer open.
    const remit = `/ledger/refunds/${refund.id}/remittance`;
    expect(await fieldsOf(await send('POST', remit, { as: roles.finance, body: { reference: 'x\ny' } }))).toContain(
      'body.reference',
    );
    const remitted = await send('POST', remit, { as: roles.finance, body: { reference: 'CHK 5521' } });
    expect(remitted.status).toBe(200);
    expect(((await remitted.json()) as Refund).remittance?.reference).toBe('CHK 5521');
    expect((await send('POST', remit, { as: roles.finance, body: { reference: 'CHK 5522' } })).status).toBe(409);
  });

  test('unknown refunds are 404s; remitting before approval is a 409', async () => {
    for (const action of ['approval', 'remittance']) {
      const body = action === 'approval' ? {} : { reference: 'CHK 1' };
      expect(
        (await send('POST', `/ledger/refunds/${randomUUID()}/${action}`, { as: roles.finance, body })).status,
      ).toBe(404);
    }
    const { enrollmentId } = await enrolled();
    const refund = ((await (await withdraw(enrollmentId, { kind: 'official' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    const early = await send('POST', `/ledger/refunds/${refund.id}/remittance`, {
      as: roles.finance,
      body: { reference: 'CHK 1' },
    });
    expect(early.status).toBe(409);
  });
});

describe('undoing an approval', () => {
  test('its entries are not reversed one by one; the approval-reversal route undoes both and the refund follows', async () => {
    const { student, enrollmentId } = await enrolled({ tuition: 400_000, paid: 100_000 });
    const refund = ((await (await withdraw(enrollmentId, { kind: 'unofficial' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    expect(refund.calculation).toMatchObject({ adjustmentCents: 400_000, refundCents: 100_000 });
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(300_000);
    const approve = () => send('POST', `/ledger/refunds/${refund.id}/approval`, { as: roles.finance, body: {} });
    const approved = (await (await approve()).json()) as Refund;
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);
    const posted = [approved.approval?.adjustmentEntryId, approved.approval?.refundEntryId] as string[];

    // The generic reversal refuses either entry, pointing at the refund's route; nothing is posted.
    const undo = `/api/ledger/refunds/${refund.id}/approval-reversal`;
    for (const entryId of posted) {
      const refused = await send('POST', `/ledger/entries/${entryId}/reversal`, {
        as: roles.finance,
        body: { reason: 'Approved by mistake' },
      });
      expect(refused.status).toBe(409);
      expect(refused.headers.get('link')).toBe(`<${undo}>; rel="related"`);
      const problem = (await refused.json()) as { type: string; detail: string; errors: { field: string }[] };
      expect(problem.type).toBe('urn:aada:problem:refund-approval-entry');
      expect(problem.errors.map((error) => error.field)).toEqual(['params.id']);
      expect(problem.detail).toContain(undo);
    }
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);

    // Finance only, with a reason; unknown refunds are 404s.
    const path = `/ledger/refunds/${refund.id}/approval-reversal`;
    const reason = 'Approved to the wrong payee';
    expect((await send('POST', path, { as: roles.admin, body: { reason } })).status).toBe(403);
    expect((await send('POST', path, { as: student, body: { reason } })).status).toBe(403);
    const short = await send('POST', path, { as: roles.finance, body: { reason: 'oops' } });
    expect(short.status).toBe(400);
    expect(await fieldsOf(short)).toEqual(['body.reason']);
    expect(
      (await send('POST', `/ledger/refunds/${randomUUID()}/approval-reversal`, { as: roles.finance, body: { reason } }))
        .status,
    ).toBe(404);

    // Two at once make one reversal; the refund is calculated again and keeps the undone approval.
    const answers = await Promise.all([1, 2].map(() => send('POST', path, { as: roles.finance, body: { reason } })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
    const reversed = (await (
      await send('GET', `/ledger/refunds/${refund.id}`, { as: roles.finance })
    ).json()) as Refund & {
      approvalReversals: { reason: string; adjustmentCents: number; refundCents: number; payee: string }[];
    };
    expect(reversed.status).toBe('calculated');
    expect(reversed.approval).toBeNull();
    expect(reversed.approvalReversals).toEqual([
      expect.objectContaining({ reason, adjustmentCents: 400_000, refundCents: 100_000, payee: 'student' }),
    ]);
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(300_000);
    const reversals = await app.db.sql<{ reverses_entry_id: string }[]>`
      select reverses_entry_id from ledger_entries where kind = 'reversal' and enrollment_id = ${enrollmentId}`;
    expect(reversals.map((row) => row.reverses_entry_id).sort()).toEqual([...posted].sort());
    const [stored] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from refund_approval_reversals where reason_ciphertext like ${'%wrong payee%'}`;
    expect(stored?.n).toBe(0);

    // It can be overridden and approved again; the new approval posts the override's figures.
    const override = await send('POST', `/ledger/refunds/${refund.id}/override`, {
      as: roles.admin,
      body: { adjustmentCents: 350_000, refundCents: 50_000, reason: 'Kit kept: $500 retained' },
    });
    expect(override.status).toBe(201);
    const again = (await (await approve()).json()) as Refund;
    expect(again.status).toBe('approved');
    expect(again.inForce).toEqual({ source: 'override', adjustmentCents: 350_000, refundCents: 50_000 });
    expect(await enrollmentBalance(student.id, enrollmentId)).toBe(0);

    // Once remitted it was paid: no reversal of its approval.
    await send('POST', `/ledger/refunds/${refund.id}/remittance`, { as: roles.finance, body: { reference: 'CHK 77' } });
    expect((await send('POST', path, { as: roles.finance, body: { reason } })).status).toBe(409);

    // The database: a reversal row is never changed or removed, and a refund is un-approved only with one.
    await expect(app.db.sql`update refund_approval_reversals set payee = 'third_party'`).rejects.toThrow();
    await expect(app.db.sql`delete from refund_approval_reversals`).rejects.toThrow();
    const { enrollmentId: other } = await enrolled({ paid: 100_000 });
    const otherRefund = ((await (await withdraw(other, { kind: 'official' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    expect(
      (await send('POST', `/ledger/refunds/${otherRefund.id}/approval`, { as: roles.finance, body: {} })).status,
    ).toBe(200);
    await expect(
      app.db.sql`update refunds set status = 'calculated', approved_at = null, approved_by = null,
                   approved_adjustment_cents = null, approved_refund_cents = null, payee = null, override_id = null,
                   adjustment_entry_id = null, refund_entry_id = null
                 where id = ${otherRefund.id}`,
    ).rejects.toThrow();
  });
});

describe('the refunds-due list', () => {
  test('lists open refunds by due date with their amount in force; remitted and zero refunds are not listed', async () => {
    const { enrollmentId } = await enrolled({ daysAgo: 60, tuition: 100_000, paid: 100_000 });
    const fortyDaysAgo = new Date(Date.now() - 50 * 86_400_000).toISOString();
    const overdue = (
      (await (await withdraw(enrollmentId, { kind: 'official', notifiedAt: fortyDaysAgo })).json()) as WithdrawalAnswer
    ).refund as Refund;
    const { enrollmentId: unpaid } = await enrolled({ tuition: 100_000, paid: 0 });
    const nothing = ((await (await withdraw(unpaid, { kind: 'official' })).json()) as WithdrawalAnswer)
      .refund as Refund;
    expect(nothing.calculation.refundCents).toBe(0);

    const page = (await (
      await send('GET', '/ledger/refunds-due?withinDays=60&limit=200', { as: roles.finance })
    ).json()) as {
      items: { refundId: string; overdue: boolean; daysLeft: number; refundCents: number }[];
    };
    const listed = page.items.find((item) => item.refundId === overdue.id);
    expect(listed).toMatchObject({ overdue: true, refundCents: 100_000 });
    expect(page.items.some((item) => item.refundId === nothing.id)).toBe(false);
    expect(page.items.map((item) => item.daysLeft)).toEqual(
      [...page.items.map((item) => item.daysLeft)].sort((a, b) => a - b),
    );
    for (const query of ['?withinDays=-1', '?withinDays=0x10', '?withinDays=366', '?cursor=forged']) {
      const response = await send('GET', `/ledger/refunds-due${query}`, { as: roles.finance });
      expect(response.status, query).toBe(400);
    }
  });
});

describe('the refunds-due timer', () => {
  test('flags overdue and coming-due refunds once each, emails finance through the outbox, skips remitted ones', async () => {
    const { InvocationContext } = await import('@azure/functions');
    const { refundsDue } = await import('../functions/refunds-due');
    const run = async () => {
      const logged: string[] = [];
      const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: 'refunds-due',
        logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
      });
      await refundsDue(null, context);
      return logged.join('\n');
    };
    await run(); // whatever earlier tests left is flagged now; what follows is new
    const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
    const refundOf = async (days: number) => {
      const { enrollmentId } = await enrolled({ daysAgo: 90, tuition: 100_000, paid: 100_000 });
      const answer = (await (
        await withdraw(enrollmentId, { kind: 'official', notifiedAt: ago(days) })
      ).json()) as WithdrawalAnswer;
      return answer.refund as Refund;
    };
    const overdue = await refundOf(50); // due 5 days ago
    const comingDue = await refundOf(40); // due in 5 days
    const later = await refundOf(1); // due in 44 days: not yet
    const paid = await refundOf(60);
    await send('POST', `/ledger/refunds/${paid.id}/approval`, { as: roles.finance, body: {} });
    await send('POST', `/ledger/refunds/${paid.id}/remittance`, { as: roles.finance, body: { reference: 'CHK 77' } });

    const log = await run();
    expect(log).toContain('flagged 1 overdue and 1 coming due');
    const notices = await app.db.sql<{ refund_id: string; level: string }[]>`
      select refund_id, level from refund_due_notices
       where refund_id in ${app.db.sql([overdue.id, comingDue.id, later.id, paid.id])}`;
    expect(notices.map((n) => [n.refund_id, n.level]).sort()).toEqual(
      [
        [overdue.id, 'overdue'],
        [comingDue.id, 'coming_due'],
      ].sort(),
    );
    const messages = await messagesTo(app.db.sql, 'refunds_due', roles.finance.email);
    const last = messages.at(-1) ?? '';
    expect(last).toContain(`OVERDUE by 5 days: $1,000.00, due ${overdue.dueDate}, /api/ledger/refunds/${overdue.id}`);
    expect(last).toContain(`due in 5 days: $1,000.00, due ${comingDue.dueDate}`);
    expect(last).not.toContain(later.id);
    expect(last).not.toContain(paid.id);
    // A second run the same day tells nobody anything new.
    expect(await run()).toContain('flagged 0 overdue and 0 coming due');
    expect(await messagesTo(app.db.sql, 'refunds_due', roles.finance.email)).toHaveLength(messages.length);
  });
});

describe('rules are versioned data', () => {
  test('a newer rule applies to new withdrawals and never rewrites an old calculation', async () => {
    const { enrollmentId: before } = await enrolled();
    const old = ((await (await withdraw(before, { kind: 'official' })).json()) as WithdrawalAnswer).refund as Refund;
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    await app.db.sql`
      insert into refund_rules (id, jurisdiction, effective_from, source, rule)
      values ('ga-test-v2', 'GA', ${yesterday}, 'A test revision of the rule',
              ${app.db.sql.json({
                cancellationWindowHours: 72,
                tiers: [{ belowPct: 60, refund: 'pro_rata' }],
                remitWithinDays: 30,
              })})`;
    const { enrollmentId: after } = await enrolled();
    const fresh = ((await (await withdraw(after, { kind: 'official' })).json()) as WithdrawalAnswer).refund as Refund;
    expect(fresh.calculation.working[0]).toContain('ga-test-v2');
    const reread = (await (await send('GET', `/ledger/refunds/${old.id}`, { as: roles.finance })).json()) as Refund;
    expect(reread.calculation).toEqual(old.calculation);
    expect(reread.dueDate).toBe(old.dueDate);
    expect(reread.calculation.working[0]).toContain('ga-gnpec-std12-v1');
  });
});
