// Withdrawals and their refunds. Recording a withdrawal moves the enrollment out (withdrawn, or
// cancelled when it never started: lib/enrollments.ts transitionEnrollment, the one transition), takes
// the last day of attendance and the hours attended from lib/attendance.ts, and calculates the refund
// under the rule in force on the date of determination (lib/refund-rules.ts), storing the inputs, the
// rule id, the amounts and the working — all in the request's transaction. The calculation is never
// recomputed or edited: an administrator may override its figures (with a reason) until finance
// approves; approval posts the tuition reduction and the refund entry to the ledger (lib/ledger.ts
// postEntry) and freezes what it posted (migration 0031's trigger); remittance records the check or
// transfer that paid it. Open refunds by due date are the refunds-due list and timer.
//
// Why one file over 350 lines: recording, reading, override, approval, reversal, remittance and the
// due list are the steps of one record's life, and each step checks the states the others leave (an
// override only before approval, a reversal only before remittance); read apart, those guards drift.
// The calculation itself is lib/refund-rules.ts, pure and separately tested.
import type { Caller, RecordReach } from './access';
import { recordVisibleSql, scopeOf } from './access';
import { hoursAttended, lastDateOfAttendance } from './attendance';
import { config } from './config';
import { decrypt, decryptRows, encrypt } from './crypto';
import type { AnySql, TransactionSql } from './db';
import { illegalTransition, OPEN_STATUSES, transitionEnrollment } from './enrollments';
import { badRequest, conflict, declareConstraints, HttpError, notFound } from './errors';
import { formatCents, postEntry, reverseEntry } from './ledger';
import { enqueueMessage } from './outbox';
import { keyset } from './pagination';
import { computeRefund, REFUND_JURISDICTION, type RefundInputs, type RefundRule, RuleParameters } from './refund-rules';
import { SCHOOL } from './school';
import { type EnrollmentStatus, enrollmentVisible } from './students';

/** Who records a withdrawal beyond the student: those who move enrollments (and the student their own). */
export const WITHDRAWAL_RECORDERS = ['admin', 'staff', 'registrar'] as const;
/** Who reads withdrawals and refunds of every student. */
const WITHDRAWAL_REACH: RecordReach = { all: ['admin', 'staff', 'registrar', 'finance'], taught: false };
const RECORD_REACH: RecordReach = { all: WITHDRAWAL_RECORDERS, taught: false };

declareConstraints({
  withdrawals_enrollment_key: {
    status: 409,
    field: 'params.id',
    message: 'This enrollment already has a withdrawal',
  },
});

export type WithdrawalKind = 'official' | 'unofficial';

export interface NewWithdrawal {
  enrollmentId: string;
  kind: WithdrawalKind;
  /** Official: when the student gave notice (default now). */
  notifiedAt?: string | undefined;
  /** The date of determination (default: the school day of the notice, or today). */
  determinedOn?: string | undefined;
  /** Only where no attendance is recorded: the last day the student attended, as stated. */
  lastDateOfAttendance?: string | undefined;
  reason?: string | undefined;
  recordedBy: string;
}

interface EnrollmentForWithdrawal {
  id: string;
  user_id: string;
  program_id: string;
  status: EnrollmentStatus;
  start_date: string;
  created_at: Date;
  created_day: string;
  today: string;
  now: Date;
  total_clock_hours: number;
}

const fieldError = (field: string, message: string) => badRequest(message, [{ field, message }]);

/** The enrollment, locked, if the caller may record its withdrawal (a student their own). */
async function lockEnrollment(sql: AnySql, enrollmentId: string, caller: Caller) {
  const [row] = await sql<EnrollmentForWithdrawal[]>`
    select e.id, e.user_id, e.program_id, e.status, e.start_date::text as start_date, e.created_at,
           (e.created_at at time zone ${SCHOOL.timeZone})::date::text as created_day,
           (now() at time zone ${SCHOOL.timeZone})::date::text as today, now() as now, p.total_clock_hours
      from enrollments e join programs p on p.id = e.program_id
     where e.id = ${enrollmentId} and ${enrollmentVisible(sql, scopeOf(caller, RECORD_REACH))}
     for update of e`;
  return row;
}

/** The dates of a withdrawal, checked against the enrollment and today (400s naming the field). */
function withdrawalDates(request: NewWithdrawal, enrollment: EnrollmentForWithdrawal) {
  const notifiedAt = request.kind === 'official' && request.notifiedAt ? new Date(request.notifiedAt) : enrollment.now;
  if (notifiedAt > enrollment.now) throw fieldError('body.notifiedAt', 'Must not be in the future');
  if (notifiedAt < enrollment.created_at) {
    throw fieldError('body.notifiedAt', 'Must not be before the enrollment was created');
  }
  const noticeDay = new Intl.DateTimeFormat('en-CA', { timeZone: SCHOOL.timeZone }).format(notifiedAt);
  const determinedOn = request.determinedOn ?? (request.kind === 'official' ? noticeDay : enrollment.today);
  if (determinedOn > enrollment.today) throw fieldError('body.determinedOn', 'Must not be in the future');
  if (determinedOn < enrollment.created_day) {
    throw fieldError('body.determinedOn', 'Must not be before the enrollment was created');
  }
  if (request.kind === 'official' && determinedOn < noticeDay) {
    throw fieldError('body.determinedOn', 'An official withdrawal is determined on or after the notice');
  }
  return { notifiedAt, determinedOn };
}

/** The last day of attendance: from the attendance records where there are any, else as stated. */
async function lastDay(sql: AnySql, request: NewWithdrawal, determinedOn: string) {
  const recorded = await lastDateOfAttendance(sql, request.enrollmentId);
  if (recorded) {
    if (request.lastDateOfAttendance && request.lastDateOfAttendance !== recorded) {
      throw fieldError(
        'body.lastDateOfAttendance',
        `Attendance records say the last day attended was ${recorded}; leave this out`,
      );
    }
    return { date: recorded, source: 'attendance' as const };
  }
  if (!request.lastDateOfAttendance) return { date: null, source: 'never_attended' as const };
  if (request.lastDateOfAttendance > determinedOn) {
    throw fieldError('body.lastDateOfAttendance', 'Must be on or before the date of determination');
  }
  return { date: request.lastDateOfAttendance, source: 'stated' as const };
}

interface RuleRow {
  id: string;
  jurisdiction: string;
  effective_from: string;
  effective_to: string | null;
  source: string;
  rule: unknown;
}

const toRule = (row: RuleRow): RefundRule => ({
  id: row.id,
  jurisdiction: row.jurisdiction,
  effectiveFrom: row.effective_from,
  effectiveTo: row.effective_to,
  source: row.source,
  parameters: RuleParameters.parse(row.rule),
});

/** The rule in force on `day` in the school's jurisdiction. */
export async function ruleInForce(sql: AnySql, day: string): Promise<RefundRule | null> {
  const [row] = await sql<RuleRow[]>`
    select id, jurisdiction, effective_from::text as effective_from, effective_to::text as effective_to, source, rule
      from refund_rules
     where jurisdiction = ${REFUND_JURISDICTION} and effective_from <= ${day}::date
       and (effective_to is null or effective_to > ${day}::date)
     order by effective_from desc limit 1`;
  return row ? toRule(row) : null;
}

interface MoneyRow {
  refundable: string;
  all_charges: string;
  balance: string;
}

/** The enrollment's charges (net of reversals and, for tuition and fees, of reductions) and balance. */
async function enrollmentMoney(sql: AnySql, enrollmentId: string) {
  const [row] = await sql<MoneyRow[]>`
    select coalesce(sum(case
             when le.kind = 'charge' and le.category in ('tuition', 'fee') then le.amount_cents
             when le.kind = 'adjustment' and le.category = 'tuition_reduction' then -le.amount_cents
             when le.kind = 'reversal' and o.kind = 'charge' and o.category in ('tuition', 'fee') then -le.amount_cents
             when le.kind = 'reversal' and o.kind = 'adjustment' and o.category = 'tuition_reduction' then le.amount_cents
             else 0 end), 0)::bigint as refundable,
           coalesce(sum(case
             when le.kind = 'charge' then le.amount_cents
             when le.kind = 'reversal' and o.kind = 'charge' then -le.amount_cents
             else 0 end), 0)::bigint as all_charges,
           coalesce(sum(case le.direction when 'debit' then le.amount_cents else -le.amount_cents end), 0)::bigint
             as balance
      from ledger_entries le left join ledger_entries o on o.id = le.reverses_entry_id
     where le.enrollment_id = ${enrollmentId}`;
  return {
    refundableChargesCents: Number(row?.refundable ?? 0),
    allChargesCents: Number(row?.all_charges ?? 0),
    enrollmentBalanceCents: Number(row?.balance ?? 0),
  };
}

interface ModulesRow {
  modules: number;
  completed: number;
  completed_hours: number;
}

/** Progress on the programme: clock hours attended where attendance exists, else modules completed. */
async function progressOf(sql: AnySql, enrollment: EnrollmentForWithdrawal): Promise<RefundInputs['progress']> {
  const clockHourMinutes = config().ATTENDANCE_CLOCK_HOUR_MINUTES;
  const attended = await hoursAttended(sql, enrollment.id);
  const [modules] = await sql<ModulesRow[]>`
    select count(*)::int as modules,
           count(*) filter (where mp.status in ('completed', 'passed'))::int as completed,
           coalesce(sum(m.clock_hours) filter (where mp.status in ('completed', 'passed')), 0)::int as completed_hours
      from modules m
      left join module_progress mp on mp.module_id = m.id and mp.enrollment_id = ${enrollment.id}
     where m.program_id = ${enrollment.program_id}`;
  const [lines] = await sql<{ any: boolean }[]>`
    select exists (select 1 from attendance_records where enrollment_id = ${enrollment.id}) as any`;
  const programClockHours = enrollment.total_clock_hours;
  const base = {
    minutesAttended: attended.minutes,
    clockHoursAttended: attended.clockHours,
    clockHourMinutes,
    programClockHours,
    modulesCompleted: modules?.completed ?? 0,
    modules: modules?.modules ?? 0,
    completedModuleClockHours: modules?.completed_hours ?? 0,
  };
  const capped = (bp: number) => Math.min(10_000, Math.floor(bp));
  if (lines?.any && programClockHours > 0) {
    const bp = capped((attended.minutes * 10_000) / (programClockHours * clockHourMinutes));
    return { source: 'attendance', completedBasisPoints: bp, ...base };
  }
  if (base.modulesCompleted > 0) {
    const bp =
      programClockHours > 0
        ? capped((base.completedModuleClockHours * 10_000) / programClockHours)
        : capped((base.modulesCompleted * 10_000) / base.modules);
    return { source: 'modules', completedBasisPoints: bp, ...base };
  }
  return { source: 'none', completedBasisPoints: 0, ...base };
}

/**
 * Records a withdrawal and its refund calculation, in the caller's transaction; returns their ids.
 * 404 when the caller may not record it; 409 when the enrollment is already out (completed, withdrawn,
 * cancelled); 400s naming the field for dates that cannot be.
 */
export async function recordWithdrawal(sql: AnySql, request: NewWithdrawal, caller: Caller) {
  const enrollment = await lockEnrollment(sql, request.enrollmentId, caller);
  if (!enrollment) throw notFound('No such enrollment');
  const to = enrollment.status === 'pending' ? 'cancelled' : 'withdrawn';
  // Already out: the 409 names the enrollment in the path (this route has no `to`), before any date
  // check, so a second withdrawal hears why whatever else it sent.
  if (!OPEN_STATUSES.includes(enrollment.status)) throw illegalTransition(enrollment.status, to, 'params.id');
  const { notifiedAt, determinedOn } = withdrawalDates(request, enrollment);
  const rule = await ruleInForce(sql, determinedOn);
  if (!rule) throw fieldError('body.determinedOn', `No refund rule is in force on ${determinedOn}`);
  const last = await lastDay(sql, request, determinedOn);
  const from = await transitionEnrollment(sql, enrollment.id, {
    to,
    reason: request.reason,
    changedBy: request.recordedBy,
    field: 'params.id',
  });
  const progress = await progressOf(sql, enrollment);
  const inputs: RefundInputs = {
    windowStartsAt: enrollment.created_at.toISOString(),
    windowStartsFrom: 'enrollment_created',
    notifiedAt: notifiedAt.toISOString(),
    determinedOn,
    startDate: enrollment.start_date,
    lastDateOfAttendance: last.date,
    progress,
    ...(await enrollmentMoney(sql, enrollment.id)),
  };
  const result = computeRefund(rule, inputs);
  const reason = request.reason ? encrypt(request.reason, 'withdrawals.reason') : null;
  const [row] = await sql<{ withdrawal_id: string; refund_id: string }[]>`
    with w as (
      insert into withdrawals (enrollment_id, user_id, kind, initiated_by, last_date_of_attendance, last_date_source,
                               reason_ciphertext, notified_at, determined_on, minutes_attended, clock_hours_attended,
                               enrollment_status_before, recorded_by)
      values (${enrollment.id}, ${enrollment.user_id}, ${request.kind},
              ${request.kind === 'official' ? 'student' : 'school'}, ${last.date}, ${last.source}, ${reason},
              ${notifiedAt}, ${determinedOn}, ${progress.minutesAttended}, ${progress.clockHoursAttended}, ${from},
              ${request.recordedBy})
      returning id)
    insert into refunds (withdrawal_id, user_id, enrollment_id, rule_id, inputs, basis, explanation, retained_cents,
                         adjustment_cents, refund_cents, due_date)
    select w.id, ${enrollment.user_id}, ${enrollment.id}, ${rule.id}, ${sql.json(JSON.parse(JSON.stringify({ ...inputs, tier: result.tier })))},
           ${result.basis}, ${result.working.join('\n')}, ${result.retainedCents}, ${result.adjustmentCents},
           ${result.refundCents}, ${result.dueDate}
      from w
    returning withdrawal_id, id as refund_id`;
  return { withdrawalId: row?.withdrawal_id as string, refundId: row?.refund_id as string };
}

// ---------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------

interface RefundRow {
  id: string;
  withdrawal_id: string;
  user_id: string;
  enrollment_id: string;
  rule_id: string;
  rule_source: string;
  inputs: RefundInputs & { tier: unknown };
  basis: string;
  explanation: string;
  retained_cents: string;
  adjustment_cents: string;
  refund_cents: string;
  due_date: string;
  status: 'calculated' | 'approved' | 'remitted';
  approved_at: Date | null;
  approved_by: string | null;
  approved_adjustment_cents: string | null;
  approved_refund_cents: string | null;
  payee: string | null;
  override_id: string | null;
  adjustment_entry_id: string | null;
  refund_entry_id: string | null;
  remitted_at: Date | null;
  remitted_by: string | null;
  remittance_reference: string | null;
  created_at: Date;
  overrides: OverrideRow[] | null;
  approval_reversals: ApprovalReversalRow[] | null;
}

interface ApprovalReversalRow {
  id: string;
  approved_at: string;
  approved_by: string;
  approved_adjustment_cents: number;
  approved_refund_cents: number;
  payee: string;
  adjustment_reversal_entry_id: string | null;
  refund_reversal_entry_id: string | null;
  reason_ciphertext: string;
  reversed_at: string;
  reversed_by: string;
}

interface OverrideRow {
  id: string;
  adjustment_cents: number;
  refund_cents: number;
  reason_ciphertext: string;
  overridden_at: string;
  overridden_by: string;
}

const refundColumns = (sql: AnySql) => sql`
  r.id, r.withdrawal_id, r.user_id, r.enrollment_id, r.rule_id, rr.source as rule_source, r.inputs, r.basis,
  r.explanation, r.retained_cents, r.adjustment_cents, r.refund_cents, r.due_date::text as due_date, r.status,
  r.approved_at, r.approved_by, r.approved_adjustment_cents, r.approved_refund_cents, r.payee, r.override_id,
  r.adjustment_entry_id, r.refund_entry_id, r.remitted_at, r.remitted_by, r.remittance_reference, r.created_at,
  (select json_agg(json_build_object('id', o.id, 'adjustment_cents', o.adjustment_cents, 'refund_cents', o.refund_cents,
                                     'reason_ciphertext', o.reason_ciphertext, 'overridden_at', o.overridden_at,
                                     'overridden_by', o.overridden_by) order by o.overridden_at, o.id)
     from refund_overrides o where o.refund_id = r.id) as overrides,
  (select json_agg(json_build_object('id', v.id, 'approved_at', v.approved_at, 'approved_by', v.approved_by,
                                     'approved_adjustment_cents', v.approved_adjustment_cents,
                                     'approved_refund_cents', v.approved_refund_cents, 'payee', v.payee,
                                     'adjustment_reversal_entry_id', v.adjustment_reversal_entry_id,
                                     'refund_reversal_entry_id', v.refund_reversal_entry_id,
                                     'reason_ciphertext', v.reason_ciphertext, 'reversed_at', v.reversed_at,
                                     'reversed_by', v.reversed_by) order by v.reversed_at, v.id)
     from refund_approval_reversals v where v.refund_id = r.id) as approval_reversals`;

/** The refund as the API shows it: the calculation and its working, overrides, what is in force, approval, remittance. */
export function toRefundView(row: RefundRow) {
  const overrides = (row.overrides ?? []).map((o) => ({
    id: o.id,
    adjustmentCents: Number(o.adjustment_cents),
    refundCents: Number(o.refund_cents),
    reason: decrypt(o.reason_ciphertext, 'refund_overrides.reason'),
    overriddenAt: new Date(o.overridden_at).toISOString(),
    overriddenBy: o.overridden_by,
  }));
  const latest = overrides.at(-1);
  const approvalReversals = (row.approval_reversals ?? []).map((v) => ({
    id: v.id,
    approvedAt: new Date(v.approved_at).toISOString(),
    approvedBy: v.approved_by,
    adjustmentCents: Number(v.approved_adjustment_cents),
    refundCents: Number(v.approved_refund_cents),
    payee: v.payee,
    adjustmentReversalEntryId: v.adjustment_reversal_entry_id,
    refundReversalEntryId: v.refund_reversal_entry_id,
    reason: decrypt(v.reason_ciphertext, 'refund_approval_reversals.reason'),
    reversedAt: new Date(v.reversed_at).toISOString(),
    reversedBy: v.reversed_by,
  }));
  const { tier, ...inputs } = row.inputs;
  const calculation = {
    basis: row.basis,
    tier,
    retainedCents: Number(row.retained_cents),
    adjustmentCents: Number(row.adjustment_cents),
    refundCents: Number(row.refund_cents),
    completedPercent: Number(inputs.progress.completedBasisPoints) / 100,
    inputs,
    working: row.explanation.split('\n'),
  };
  const approved = row.approved_at !== null;
  return {
    id: row.id,
    withdrawalId: row.withdrawal_id,
    studentId: row.user_id,
    enrollmentId: row.enrollment_id,
    status: row.status,
    rule: { id: row.rule_id, source: row.rule_source },
    dueDate: row.due_date,
    calculation,
    overrides,
    inForce: approved
      ? {
          source: row.override_id ? 'override' : 'calculation',
          adjustmentCents: Number(row.approved_adjustment_cents),
          refundCents: Number(row.approved_refund_cents),
        }
      : {
          source: latest ? 'override' : 'calculation',
          adjustmentCents: latest?.adjustmentCents ?? calculation.adjustmentCents,
          refundCents: latest?.refundCents ?? calculation.refundCents,
        },
    approval: approved
      ? {
          approvedAt: row.approved_at?.toISOString(),
          approvedBy: row.approved_by,
          payee: row.payee,
          overrideId: row.override_id,
          adjustmentEntryId: row.adjustment_entry_id,
          refundEntryId: row.refund_entry_id,
        }
      : null,
    /** Approvals undone (POST ledger/refunds/{id}/approval-reversal), oldest first. */
    approvalReversals,
    remittance: row.remitted_at
      ? { remittedAt: row.remitted_at.toISOString(), remittedBy: row.remitted_by, reference: row.remittance_reference }
      : null,
    createdAt: row.created_at.toISOString(),
  };
}
export type RefundView = ReturnType<typeof toRefundView>;

/** The refund, if the caller may read it (finance, admin, staff, registrar; a student their own). */
export async function findRefund(sql: AnySql, refundId: string, caller: Caller) {
  const [row] = await sql<RefundRow[]>`
    select ${refundColumns(sql)}
      from refunds r join refund_rules rr on rr.id = r.rule_id
     where r.id = ${refundId}
       and ${recordVisibleSql(sql, scopeOf(caller, WITHDRAWAL_REACH), { owner: sql`r.user_id`, program: sql`null::uuid` })}`;
  return row ? toRefundView(row) : null;
}

interface WithdrawalRow {
  id: string;
  enrollment_id: string;
  user_id: string;
  kind: WithdrawalKind;
  initiated_by: string;
  last_date_of_attendance: string | null;
  last_date_source: string;
  reason_ciphertext: string | null;
  notified_at: Date;
  determined_on: string;
  minutes_attended: number;
  clock_hours_attended: string;
  enrollment_status_before: string;
  recorded_at: Date;
  recorded_by: string;
  refund_id: string | null;
}

/**
 * The enrollment's withdrawal and refund, if the caller may see the enrollment: `{ withdrawal: null }`
 * when it has none, null when the enrollment is not the caller's to see.
 */
export async function enrollmentWithdrawal(sql: AnySql, enrollmentId: string, caller: Caller) {
  const [row] = await sql<(Partial<WithdrawalRow> & { found_enrollment: string })[]>`
    select e.id as found_enrollment, w.id, w.enrollment_id, w.user_id, w.kind, w.initiated_by,
           w.last_date_of_attendance::text as last_date_of_attendance, w.last_date_source, w.reason_ciphertext,
           w.notified_at, w.determined_on::text as determined_on, w.minutes_attended, w.clock_hours_attended,
           w.enrollment_status_before, w.recorded_at, w.recorded_by, r.id as refund_id
      from enrollments e
      left join withdrawals w on w.enrollment_id = e.id
      left join refunds r on r.withdrawal_id = w.id
     where e.id = ${enrollmentId} and ${enrollmentVisible(sql, scopeOf(caller, WITHDRAWAL_REACH))}`;
  if (!row) return null;
  if (!row.id) return { enrollmentId, withdrawal: null, refund: null };
  const w = row as WithdrawalRow;
  return {
    enrollmentId,
    withdrawal: {
      id: w.id,
      studentId: w.user_id,
      kind: w.kind,
      initiatedBy: w.initiated_by,
      notifiedAt: w.notified_at.toISOString(),
      determinedOn: w.determined_on,
      lastDateOfAttendance: w.last_date_of_attendance,
      lastDateSource: w.last_date_source,
      minutesAttended: w.minutes_attended,
      clockHoursAttended: Number(w.clock_hours_attended),
      enrollmentStatusBefore: w.enrollment_status_before,
      reason: w.reason_ciphertext === null ? null : decrypt(w.reason_ciphertext, 'withdrawals.reason'),
      recordedAt: w.recorded_at.toISOString(),
      recordedBy: w.recorded_by,
    },
    refund: w.refund_id ? await findRefund(sql, w.refund_id, caller) : null,
  };
}

// ---------------------------------------------------------------------------------------------------
// Override, approval, remittance
// ---------------------------------------------------------------------------------------------------

/** An administrator's figures for a refund not yet approved, with the reason (encrypted). */
export async function overrideRefund(
  sql: AnySql,
  refundId: string,
  override: { adjustmentCents: number; refundCents: number; reason: string; by: string },
) {
  // Locked as approval locks it: an override and an approval of one refund happen one after the other.
  const [locked] = await sql<{ status: string }[]>`select status from refunds where id = ${refundId} for update`;
  if (!locked) throw notFound('No such refund');
  if (locked.status !== 'calculated') {
    throw conflict(`This refund is already ${locked.status}: it is frozen and can no longer be overridden`);
  }
  const [row] = await sql<{ id: string }[]>`
    insert into refund_overrides (refund_id, adjustment_cents, refund_cents, reason_ciphertext, overridden_by)
    select id, ${override.adjustmentCents}, ${override.refundCents},
           ${encrypt(override.reason, 'refund_overrides.reason')}, ${override.by}
      from refunds where id = ${refundId}
    returning id`;
  if (!row) throw notFound('No such refund');
  return row.id;
}

interface ApprovalTarget {
  id: string;
  user_id: string;
  enrollment_id: string;
  status: string;
  adjustment_cents: string;
  refund_cents: string;
  override_id: string | null;
  override_adjustment: string | null;
  override_refund: string | null;
}

/**
 * Finance's approval: posts the tuition reduction and the refund entry in force (the newest override's
 * figures, else the calculation's), each only when not zero, and records them on the refund, in the
 * caller's transaction. The refund row is locked first, so an override in flight is either seen or
 * refused (its trigger waits for this transaction). 409 unless the refund is still `calculated`.
 */
export async function approveRefund(
  sql: AnySql,
  refundId: string,
  approval: { payee: 'student' | 'third_party'; by: string },
) {
  const [locked] = await sql<{ status: string }[]>`select status from refunds where id = ${refundId} for update`;
  if (!locked) throw notFound('No such refund');
  if (locked.status !== 'calculated') throw conflict(`This refund is already ${locked.status}: it is frozen`);
  const [target] = await sql<ApprovalTarget[]>`
    select r.id, r.user_id, r.enrollment_id, r.status, r.adjustment_cents, r.refund_cents,
           o.id as override_id, o.adjustment_cents as override_adjustment, o.refund_cents as override_refund
      from refunds r
      left join lateral (select * from refund_overrides o where o.refund_id = r.id
                          order by o.overridden_at desc, o.id desc limit 1) o on true
     where r.id = ${refundId}`;
  const t = target as ApprovalTarget;
  const adjustmentCents = Number(t.override_adjustment ?? t.adjustment_cents);
  const refundCents = Number(t.override_refund ?? t.refund_cents);
  const common = { studentId: t.user_id, enrollmentId: t.enrollment_id, postedBy: approval.by };
  const reference = `refund ${t.id}`;
  const adjustment =
    adjustmentCents > 0
      ? await postEntry(sql, {
          ...common,
          kind: 'adjustment',
          category: 'tuition_reduction',
          amountCents: adjustmentCents,
          reference,
        })
      : null;
  const refund =
    refundCents > 0
      ? await postEntry(sql, {
          ...common,
          kind: 'refund',
          category: approval.payee,
          amountCents: refundCents,
          reference,
        })
      : null;
  await sql`
    update refunds
       set status = 'approved', approved_at = now(), approved_by = ${approval.by},
           approved_adjustment_cents = ${adjustmentCents}, approved_refund_cents = ${refundCents},
           payee = ${approval.payee}, override_id = ${t.override_id},
           adjustment_entry_id = ${adjustment?.id ?? null}, refund_entry_id = ${refund?.id ?? null}
     where id = ${refundId}`;
}

interface ApprovedRefund {
  status: string;
  approved_at: Date | null;
  adjustment_entry_id: string | null;
  refund_entry_id: string | null;
}

/** Reverses one entry an approval posted (null stays null); a reversal already there is a 409. */
async function reverseApprovalEntry(sql: AnySql, entryId: string | null, reason: string, by: string) {
  if (!entryId) return null;
  const outcome = await reverseEntry(sql, entryId, reason, by, { ofRefundApproval: true });
  if (outcome.kind !== 'reversed') throw conflict(`Entry ${entryId} of this approval is already reversed`);
  return outcome.entry.id;
}

/**
 * Finance undoes an approval as a whole: reverses the tuition reduction and the refund entry it
 * posted, keeps the approval with the reason in refund_approval_reversals, and returns the refund to
 * `calculated` (an admin may override it, finance approve it again), in the caller's transaction. 409
 * unless the refund is approved and not remitted (a remitted refund was paid).
 */
export async function reverseRefundApproval(sql: AnySql, refundId: string, reversal: { reason: string; by: string }) {
  const [refund] = await sql<ApprovedRefund[]>`
    select status, approved_at, adjustment_entry_id, refund_entry_id from refunds where id = ${refundId} for update`;
  if (!refund) throw notFound('No such refund');
  if (refund.status === 'calculated') throw conflict('This refund is not approved: there is no approval to reverse');
  if (refund.status === 'remitted') {
    throw conflict('This refund is remitted: it was paid, and its approval can no longer be reversed');
  }
  const adjustmentReversal = await reverseApprovalEntry(sql, refund.adjustment_entry_id, reversal.reason, reversal.by);
  const refundReversal = await reverseApprovalEntry(sql, refund.refund_entry_id, reversal.reason, reversal.by);
  const [kept] = await sql<{ id: string }[]>`
    insert into refund_approval_reversals (refund_id, approved_at, approved_by, approved_adjustment_cents,
                                           approved_refund_cents, payee, override_id, adjustment_entry_id,
                                           refund_entry_id, adjustment_reversal_entry_id, refund_reversal_entry_id,
                                           reason_ciphertext, reversed_by)
    select id, approved_at, approved_by, approved_adjustment_cents, approved_refund_cents, payee, override_id,
           adjustment_entry_id, refund_entry_id, ${adjustmentReversal}, ${refundReversal},
           ${encrypt(reversal.reason, 'refund_approval_reversals.reason')}, ${reversal.by}
      from refunds where id = ${refundId}
    returning id`;
  await sql`
    update refunds
       set status = 'calculated', approved_at = null, approved_by = null, approved_adjustment_cents = null,
           approved_refund_cents = null, payee = null, override_id = null, adjustment_entry_id = null,
           refund_entry_id = null
     where id = ${refundId}`;
  return kept?.id as string;
}

/** Finance records the remittance of an approved refund (its check number or transfer reference). */
export async function remitRefund(sql: AnySql, refundId: string, remittance: { reference: string; by: string }) {
  const [row] = await sql<{ id: string }[]>`
    update refunds
       set status = 'remitted', remitted_at = now(), remitted_by = ${remittance.by},
           remittance_reference = ${remittance.reference}
     where id = ${refundId} and status = 'approved' and approved_refund_cents > 0
    returning id`;
  if (row) return;
  const [found] = await sql<{ status: string; approved_refund_cents: string | null }[]>`
    select status, approved_refund_cents from refunds where id = ${refundId}`;
  if (!found) throw notFound('No such refund');
  if (found.status === 'calculated') throw conflict('Approve the refund before recording its remittance');
  if (found.status === 'remitted') throw conflict('This refund is already remitted');
  throw new HttpError({
    status: 409,
    slug: 'conflict',
    title: 'Conflict',
    detail: 'This refund is of $0.00: there is nothing to remit',
  });
}

// ---------------------------------------------------------------------------------------------------
// Refunds coming due
// ---------------------------------------------------------------------------------------------------

/** By due date (YYYY-MM-DD sorts as the date), then id, over the open refunds (few: paid within 45 days). */
export const DUE_ORDER = keyset(
  [
    ['d.due_date', 'text'],
    ['d.id', 'uuid'],
  ],
  'asc',
);

/** The refund amount in force on a refunds row `r` (approved, else the newest override, else calculated). */
export const refundInForce = (sql: AnySql) => sql`
  coalesce(r.approved_refund_cents,
           (select o.refund_cents from refund_overrides o where o.refund_id = r.id
             order by o.overridden_at desc, o.id desc limit 1),
           r.refund_cents)`;

/**
 * Open refunds (not remitted, something to pay) due on or before `withinDays` after today at the
 * school, as a derived table `d` (due_date as text, days_left, refund_cents in force); served by
 * idx_refunds_open_due.
 */
export function openRefundsDue(sql: AnySql, withinDays: number) {
  const today = sql`(now() at time zone ${SCHOOL.timeZone})::date`;
  return sql`(
    select r.id, r.user_id, r.enrollment_id, r.status, r.due_date::text as due_date,
           (r.due_date - ${today})::int as days_left, ${refundInForce(sql)} as refund_cents
      from refunds r
     where r.status <> 'remitted' and r.due_date <= ${today} + ${withinDays}::int and ${refundInForce(sql)} > 0) d`;
}

interface DueRow {
  id: string;
  user_id: string;
  enrollment_id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  status: string;
  due_date: string;
  days_left: number;
  refund_cents: string;
  page_key: string[];
}

/** A page of open refunds due within `withinDays` of today at the school (overdue ones first). */
export function refundsDuePageQuery(
  sql: AnySql,
  withinDays: number,
  page: { limit: number; cursor?: readonly [string, string] | undefined },
) {
  return sql<DueRow[]>`
    select d.*, u.first_name_ciphertext, u.last_name_ciphertext, ${DUE_ORDER.key(sql)}
      from ${openRefundsDue(sql, withinDays)} join users u on u.id = d.user_id
     where ${DUE_ORDER.after(sql, page.cursor)}
     ${DUE_ORDER.orderBy(sql)}
     limit ${page.limit + 1}`;
}

export function toDueViews(rows: readonly DueRow[]) {
  return decryptRows(rows, { first_name_ciphertext: 'users.first_name', last_name_ciphertext: 'users.last_name' }).map(
    (row) => ({
      refundId: row.id,
      student: { id: row.user_id, firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext },
      enrollmentId: row.enrollment_id,
      status: row.status,
      refundCents: Number(row.refund_cents),
      dueDate: row.due_date,
      daysLeft: row.days_left,
      overdue: row.days_left < 0,
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// The refunds-due timer
// ---------------------------------------------------------------------------------------------------

/** Finance hears of a refund this many days before it is due (and again once it is overdue). */
export const REFUND_DUE_WARNING_DAYS = 10;

interface FlaggedRow {
  id: string;
  level: 'coming_due' | 'overdue';
  due_date: string;
  days_left: number;
  refund_cents: string;
}

/**
 * Flags the open refunds due within `warningDays` (coming due) or past their date (overdue) that were
 * not flagged at that level before, and queues one email per active finance account listing them (ids,
 * due dates, amounts: no names, which stay behind sign-in). Run it in one transaction: the notices and
 * the emails commit together. Returns what it flagged.
 */
export async function flagRefundsDue(sql: TransactionSql, warningDays = REFUND_DUE_WARNING_DAYS) {
  const today = sql`(now() at time zone ${SCHOOL.timeZone})::date`;
  const flagged = await sql<FlaggedRow[]>`
    with due as (
      select d.id, case when d.days_left < 0 then 'overdue' else 'coming_due' end as level, d.due_date,
             d.days_left, d.refund_cents
        from ${openRefundsDue(sql, warningDays)}),
    noted as (
      insert into refund_due_notices (refund_id, level, noticed_on)
      select id, level, ${today} from due
      on conflict do nothing
      returning refund_id, level)
    select due.* from due join noted on noted.refund_id = due.id and noted.level = due.level
     order by due.due_date, due.id`;
  if (flagged.length === 0) return { overdue: 0, comingDue: 0, notified: 0 };
  const overdue = flagged.filter((row) => row.level === 'overdue');
  const body = [
    `Refunds the school must remit (GNPEC: within the rule's days of the date of determination).`,
    '',
    ...flagged.map(
      (row) =>
        `${row.level === 'overdue' ? `OVERDUE by ${-row.days_left} days` : `due in ${row.days_left} days`}: ` +
        `${formatCents(Number(row.refund_cents))}, due ${row.due_date}, /api/ledger/refunds/${row.id}`,
    ),
  ].join('\n');
  const subject = `Refunds: ${overdue.length} overdue, ${flagged.length - overdue.length} coming due`;
  const finance = await sql<{ email_ciphertext: string }[]>`
    select u.email_ciphertext from users u join user_roles r on r.user_id = u.id
     where r.role_name = 'finance' and u.status = 'active'`;
  for (const person of finance) {
    const recipient = decrypt(person.email_ciphertext, 'users.email');
    await enqueueMessage(sql, { kind: 'refunds_due', recipient, subject, body });
  }
  return { overdue: overdue.length, comingDue: flagged.length - overdue.length, notified: finance.length };
}
