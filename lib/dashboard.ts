// The home screen of each role in one statement (one database round trip), counts only. The office
// (admin, staff, registrar) counts the whole school; an instructor the programmes they teach; a student
// their own enrollments: hours against required, and what needs their attention. Every figure is the
// count the matching list would give: active students (GET students with an active enrollment),
// enrollments by status, clock hours attended this week, open enrollments below the attendance
// threshold (GET attendance/below-threshold), open complaints (not resolved or closed), and the office's
// refunds coming due within REFUND_DUE_WARNING_DAYS and overdue, with their amounts in force (GET
// ledger/refunds-due?withinDays=10 split by `overdue`), and, for those who read agreements (admin,
// registrar), the agreements awaiting a signature: the signer's (GET agreements?status=pending and
// ?status=viewed) and the school's counter-signature (?status=student_signed). Amounts of money are no
// names either, so the answer stays `private` as before. The answer's schemas are DashboardView.
import { z } from 'zod';
import { type Caller, hasAnyRole, type RecordScope, scopeOf } from './access';
import { AGREEMENT_READERS } from './agreements';
import { belowThreshold, clockHoursOf, enrollmentMinutes, isCurrentLine } from './attendance';
import { APPEAL_WINDOW_DAYS } from './complaints';
import { config } from './config';
import type { AnySql } from './db';
import { openRefundsDue, REFUND_DUE_WARNING_DAYS } from './refunds';
import { SCHOOL } from './school';
import { ENROLLMENT_STATUSES, type EnrollmentStatus, enrollmentVisible, STUDENT_REACH } from './students';

const Count = z.int().min(0);
const CountAndCents = z.strictObject({ count: Count, amountCents: Count });

const SchoolCountsView = z.strictObject({
  activeStudents: Count,
  enrollmentsByStatus: z.strictObject(Object.fromEntries(ENROLLMENT_STATUSES.map((status) => [status, Count]))),
  clockHoursThisWeek: z.number().min(0),
  attendanceThresholdPercent: z.number(),
  belowAttendanceThreshold: Count,
  openComplaints: Count.optional(),
  refundsDue: z
    .strictObject({ withinDays: Count, comingDue: CountAndCents, overdue: CountAndCents })
    .optional()
    .describe('The office: open refunds due within withinDays, and overdue (GET ledger/refunds-due)'),
  agreementsAwaitingSignature: z
    .strictObject({
      signer: Count.describe('Sent and not yet signed: pending or viewed'),
      counterSignature: Count.describe('Signed by the student, awaiting the school: student_signed'),
    })
    .optional()
    .describe('Those who read agreements (admin, registrar)'),
});

const StudentEnrollmentCountsView = z.strictObject({
  enrollmentId: z.uuid(),
  program: z.string(),
  status: z.enum(ENROLLMENT_STATUSES),
  requiredClockHours: z.number().min(0),
  clockHoursAttended: z.number().min(0),
  clockHoursThisWeek: z.number().min(0),
  belowAttendanceThreshold: z.boolean(),
  consecutiveAbsences: Count,
  pendingSkillCheckoffs: Count,
  externshipDaysAwaitingApproval: Count,
});

/** The home screen: the school's (office), the programmes taught (instructor) or a student's own. */
export const DashboardView = z.discriminatedUnion('view', [
  SchoolCountsView.extend({ view: z.literal('school') }),
  SchoolCountsView.extend({ view: z.literal('programmes taught') }),
  z.strictObject({
    view: z.literal('student'),
    enrollments: z.array(StudentEnrollmentCountsView),
    complaintsOpenToAppeal: Count,
  }),
]);
type SchoolFigures = z.infer<typeof SchoolCountsView>;

const weekStart = (sql: AnySql) =>
  sql`date_trunc('week', now() at time zone ${SCHOOL.timeZone}) at time zone ${SCHOOL.timeZone}`;

interface SchoolCounts {
  active_students: number;
  by_status: Record<string, number> | null;
  week_minutes: number;
  below_threshold: number;
  open_complaints: number | null;
  refunds_due: { coming_due: number; coming_due_cents: number; overdue: number; overdue_cents: number } | null;
  agreements_awaiting: { signer: number; counter_signature: number } | null;
}

/** Agreements awaiting the signer (sent: pending or viewed) and awaiting the school's counter-signature. */
const agreementsAwaitingCounts = (sql: AnySql) => sql`
  (select json_build_object(
            'signer', count(*) filter (where d.status in ('pending', 'viewed')),
            'counter_signature', count(*) filter (where d.status = 'student_signed'))
     from signed_documents d where d.status in ('pending', 'viewed', 'student_signed'))`;

/** The open refunds due within the warning days (the timer's) and past due: counts and cents in force. */
const refundsDueCounts = (sql: AnySql) => sql`
  (select json_build_object(
            'coming_due', count(*) filter (where d.days_left >= 0),
            'coming_due_cents', coalesce(sum(d.refund_cents) filter (where d.days_left >= 0), 0),
            'overdue', count(*) filter (where d.days_left < 0),
            'overdue_cents', coalesce(sum(d.refund_cents) filter (where d.days_left < 0), 0))
     from ${openRefundsDue(sql, REFUND_DUE_WARNING_DAYS)})`;

/** The office's and an instructor's counts: the school, or the programmes taught. */
async function schoolCounts(
  sql: AnySql,
  scope: RecordScope,
  withComplaints: boolean,
  withAgreements: boolean,
): Promise<SchoolFigures> {
  const visible = enrollmentVisible(sql, scope);
  const percent = config().ATTENDANCE_THRESHOLD_PERCENT;
  const [row] = await sql<SchoolCounts[]>`
    select
      (select count(distinct e.user_id)::int from enrollments e where e.status = 'active' and ${visible})
        as active_students,
      (select json_object_agg(status, n) from (
         select e.status, count(*)::int as n from enrollments e where ${visible} group by e.status) s) as by_status,
      (select coalesce(sum(r.minutes_attended), 0)::int
         from attendance_records r join enrollments e on e.id = r.enrollment_id
        where r.started_at >= ${weekStart(sql)} and ${isCurrentLine(sql)} and ${visible}) as week_minutes,
      (select count(*)::int from enrollments e ${enrollmentMinutes(sql)}
        where ${visible} and ${belowThreshold(sql, percent)}) as below_threshold,
      ${
        withComplaints
          ? sql`(select count(*)::int from complaints c where c.status in ('submitted', 'in_review', 'appealed'))`
          : sql`null::int`
      } as open_complaints,
      ${withComplaints ? refundsDueCounts(sql) : sql`null::json`} as refunds_due,
      ${withAgreements ? agreementsAwaitingCounts(sql) : sql`null::json`} as agreements_awaiting`;
  const counts = row as SchoolCounts;
  const byStatus = Object.fromEntries(ENROLLMENT_STATUSES.map((status) => [status, counts.by_status?.[status] ?? 0]));
  return {
    activeStudents: counts.active_students,
    enrollmentsByStatus: byStatus,
    clockHoursThisWeek: clockHoursOf(counts.week_minutes),
    attendanceThresholdPercent: percent,
    belowAttendanceThreshold: counts.below_threshold,
    ...(withComplaints && counts.open_complaints !== null ? { openComplaints: counts.open_complaints } : {}),
    ...(counts.refunds_due ? { refundsDue: refundsDueView(counts.refunds_due) } : {}),
    ...(counts.agreements_awaiting
      ? {
          agreementsAwaitingSignature: {
            signer: counts.agreements_awaiting.signer,
            counterSignature: counts.agreements_awaiting.counter_signature,
          },
        }
      : {}),
  };
}

function refundsDueView(due: NonNullable<SchoolCounts['refunds_due']>) {
  return {
    withinDays: REFUND_DUE_WARNING_DAYS,
    comingDue: { count: due.coming_due, amountCents: Number(due.coming_due_cents) },
    overdue: { count: due.overdue, amountCents: Number(due.overdue_cents) },
  };
}

interface StudentRow {
  enrollment_id: string;
  program_code: string;
  status: EnrollmentStatus;
  required_hours: number;
  minutes: number;
  week_minutes: number;
  scheduled: number;
  consecutive_absences: number;
  pending_checkoffs: number;
  pending_externship_days: number;
  appealable_complaints: number;
}

/** A student's own enrollments (not cancelled): hours against required and what needs attention. */
async function studentCounts(sql: AnySql, userId: string) {
  const percent = config().ATTENDANCE_THRESHOLD_PERCENT;
  const rows = await sql<StudentRow[]>`
    select e.id as enrollment_id, p.code as program_code, e.status, p.total_clock_hours as required_hours,
           a.attended as minutes, a.scheduled,
           (select coalesce(sum(r.minutes_attended), 0)::int from attendance_records r
             where r.enrollment_id = e.id and r.started_at >= ${weekStart(sql)} and ${isCurrentLine(sql)}) as week_minutes,
           (select count(*)::int from attendance_records r
             where r.enrollment_id = e.id and r.status = 'absent' and ${isCurrentLine(sql)}
               and r.started_at > coalesce((select max(r.started_at) from attendance_records r
                                             where r.enrollment_id = e.id and r.status <> 'absent'
                                               and ${isCurrentLine(sql)}), '-infinity')) as consecutive_absences,
           (select count(*)::int from skills_checkoffs o
             where o.enrollment_id = e.id and o.status = 'pending'
               and not exists (select 1 from skills_checkoffs d where d.decides_id = o.id)) as pending_checkoffs,
           (select count(*)::int from externship_hours h join externships x on x.id = h.externship_id
             where x.enrollment_id = e.id and h.approval is null) as pending_externship_days,
           (select count(*)::int from complaints c
             where c.user_id = e.user_id and c.status = 'resolved'
               and now() <= c.resolved_at + ${APPEAL_WINDOW_DAYS} * interval '1 day') as appealable_complaints
      from enrollments e join programs p on p.id = e.program_id
      ${enrollmentMinutes(sql)}
     where e.user_id = ${userId} and e.status <> 'cancelled'
     order by e.start_date desc, e.id`;
  return {
    enrollments: rows.map((row) => ({
      enrollmentId: row.enrollment_id,
      program: row.program_code,
      status: row.status,
      requiredClockHours: row.required_hours,
      clockHoursAttended: clockHoursOf(row.minutes),
      clockHoursThisWeek: clockHoursOf(row.week_minutes),
      belowAttendanceThreshold:
        ['active', 'on_hold'].includes(row.status) && row.scheduled > 0 && row.minutes * 100 < percent * row.scheduled,
      consecutiveAbsences: row.consecutive_absences,
      pendingSkillCheckoffs: row.pending_checkoffs,
      externshipDaysAwaitingApproval: row.pending_externship_days,
    })),
    // A complaint the student may still appeal (the same for every enrollment: counted once).
    complaintsOpenToAppeal: rows[0]?.appealable_complaints ?? 0,
  };
}

/** What the caller's home screen shows. */
export async function dashboardOf(sql: AnySql, caller: Caller): Promise<z.infer<typeof DashboardView>> {
  const scope = scopeOf(caller, STUDENT_REACH);
  // Agreement counts only for those who may list agreements (an instructor's scope is never `all`).
  const agreements = hasAnyRole(caller, AGREEMENT_READERS);
  if (scope.kind === 'all') return { view: 'school', ...(await schoolCounts(sql, scope, true, agreements)) };
  if (scope.kind === 'taught') {
    return { view: 'programmes taught', ...(await schoolCounts(sql, scope, false, false)) };
  }
  return { view: 'student', ...(await studentCounts(sql, caller.userId)) };
}
