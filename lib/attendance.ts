// Attendance in clock hours: who reaches whose attendance, and the roll-ups the school is asked for
// (minutes and clock hours per module and programme against what they require, hours this week,
// consecutive absences, the attendance rate and who is below the threshold). Recording sessions and
// correcting lines is lib/attendance-sessions.ts; the tables are described in migration 0015.
//
// Every figure counts the current line of each student in each session (the one no correction
// superseded), and a session counts on the school day it starts (a class from 22:00 to 01:00 is
// three hours of the day it began). Other areas call `hoursAttended` and `lastDateOfAttendance`
// (refunds need both); they take an enrollment id and apply no scope: the caller decides who asks.
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, scopeOf } from './access';
import { config } from './config';
import { decryptRows } from './crypto';
import type { AnySql } from './db';
import { type EnrollmentModuleRow, enrollmentHeading, enrollmentModuleColumns } from './enrollments';
import { keyset } from './pagination';
import { SCHOOL } from './school';
import { enrollmentVisible } from './students';

type Fragment = postgres.Fragment;

/** Who reads attendance beyond the student: the office, the registrar (it is part of the academic record). */
export const ATTENDANCE_READ_REACH: RecordReach = { all: ['admin', 'staff', 'registrar'], taught: true };
/** Who records sessions and corrects lines: the office, and instructors in the programmes they teach. */
export const ATTENDANCE_WRITE_REACH: RecordReach = { all: ['admin', 'staff'], taught: true };

export const attendanceReadScope = (caller: Caller): RecordScope => scopeOf(caller, ATTENDANCE_READ_REACH);
export const attendanceWriteScope = (caller: Caller): RecordScope => scopeOf(caller, ATTENDANCE_WRITE_REACH);

export const SESSION_TYPES = ['live', 'lab', 'externship', 'online'] as const;
export type SessionType = (typeof SESSION_TYPES)[number];
export const LINE_STATUSES = ['present', 'absent', 'late', 'left_early'] as const;
export type LineStatus = (typeof LINE_STATUSES)[number];

/** The line aliased `r` is current: no correction supersedes it (index attendance_records_supersedes_key). */
export const isCurrentLine = (sql: AnySql): Fragment =>
  sql`not exists (select 1 from attendance_records n where n.supersedes_id = r.id)`;

/** The school day (America/New_York) an instant column falls on. */
export const schoolDay = (sql: AnySql, column: Fragment): Fragment =>
  sql`(${column} at time zone ${SCHOOL.timeZone})::date`;

/** Clock hours in `minutes`, two decimals, rounded down: a student is never credited a minute not attended. */
export function clockHoursOf(minutes: number): number {
  return Math.floor((minutes * 100) / config().ATTENDANCE_CLOCK_HOUR_MINUTES) / 100;
}

/** Minutes a session between the columns lasted (whole minutes). */
const sessionMinutes = (sql: AnySql) => sql`(extract(epoch from r.ended_at - r.started_at) / 60)::int`;

// ---------------------------------------------------------------------------------------------------
// For other areas (refunds): one enrollment's hours and last day of attendance
// ---------------------------------------------------------------------------------------------------

/** Minutes and clock hours the enrollment's current lines record (0 when none). */
export async function hoursAttended(
  sql: AnySql,
  enrollmentId: string,
): Promise<{ minutes: number; clockHours: number }> {
  const [row] = await sql<{ minutes: number }[]>`
    select coalesce(sum(r.minutes_attended), 0)::int as minutes
      from attendance_records r where r.enrollment_id = ${enrollmentId} and ${isCurrentLine(sql)}`;
  const minutes = row?.minutes ?? 0;
  return { minutes, clockHours: clockHoursOf(minutes) };
}

/** The last school day (YYYY-MM-DD) the student attended any minute for the enrollment, or null. */
export async function lastDateOfAttendance(sql: AnySql, enrollmentId: string): Promise<string | null> {
  const [row] = await sql<{ day: string | null }[]>`
    select max(${schoolDay(sql, sql`r.started_at`)})::text as day
      from attendance_records r
     where r.enrollment_id = ${enrollmentId} and r.minutes_attended > 0 and ${isCurrentLine(sql)}`;
  return row?.day ?? null;
}

// ---------------------------------------------------------------------------------------------------
// The roll-up of one enrollment
// ---------------------------------------------------------------------------------------------------

/** A module's attendance within the enrollment, and the enrollment's totals repeated on every row. */
interface RollupRow extends EnrollmentModuleRow {
  requires_in_person: boolean | null;
  minutes: number;
  in_person_minutes: number;
  scheduled_minutes: number;
  sessions: number;
  absences: number;
  week_minutes: number;
  total_minutes: number;
  total_scheduled: number;
  consecutive_absences: number;
  last_attended: string | null;
}

const ratePercent = (attended: number, scheduled: number) =>
  scheduled > 0 ? Math.round((attended * 1000) / scheduled) / 10 : null;

/**
 * One enrollment's attendance against its programme, or null when the scope does not see it: per module
 * the minutes attended (all, and in person: an `online` session is not), the clock hours they make and
 * whether they meet the module's `clock_hours` (in person only where the module `requires_in_person`);
 * for the enrollment the totals, this week's hours (from Monday 00:00 at the school), the attendance
 * rate over the sessions recorded for the student, the absences in a row at the end, the last day attended.
 */
export async function enrollmentAttendance(sql: AnySql, enrollmentId: string, scope: RecordScope) {
  const rows = await sql<RollupRow[]>`
    with e as (
      select e.* from enrollments e where e.id = ${enrollmentId} and ${enrollmentVisible(sql, scope)}),
    l as (
      select r.*, s.session_type, ${sessionMinutes(sql)} as scheduled
        from attendance_records r join attendance_sessions s on s.id = r.session_id
       where r.enrollment_id = (select id from e) and ${isCurrentLine(sql)}),
    summary as (
      select coalesce(sum(minutes_attended), 0)::int as total_minutes,
             coalesce(sum(scheduled), 0)::int as total_scheduled,
             coalesce(sum(minutes_attended) filter (
               where started_at >= date_trunc('week', now() at time zone ${SCHOOL.timeZone}) at time zone ${SCHOOL.timeZone}
             ), 0)::int as week_minutes,
             count(*) filter (where status = 'absent' and started_at > coalesce(
               (select max(started_at) from l where status <> 'absent'), '-infinity'))::int as consecutive_absences,
             max(${schoolDay(sql, sql`started_at`)}) filter (where minutes_attended > 0)::text as last_attended
        from l)
    select ${enrollmentModuleColumns(sql)}, m.requires_in_person,
           coalesce(sum(l.minutes_attended), 0)::int as minutes,
           coalesce(sum(l.minutes_attended) filter (where l.session_type <> 'online'), 0)::int as in_person_minutes,
           coalesce(sum(l.scheduled), 0)::int as scheduled_minutes,
           count(l.id)::int as sessions,
           count(l.id) filter (where l.status = 'absent')::int as absences,
           s.week_minutes, s.total_minutes, s.total_scheduled, s.consecutive_absences, s.last_attended
      from e join programs p on p.id = e.program_id
      cross join summary s
      left join modules m on m.program_id = p.id
      left join l on l.module_id = m.id
     group by e.id, e.user_id, e.status, p.id, m.id, s.week_minutes, s.total_minutes, s.total_scheduled,
              s.consecutive_absences, s.last_attended
     order by m.position`;
  const first = rows[0];
  if (!first) return null;
  const minutesPerHour = config().ATTENDANCE_CLOCK_HOUR_MINUTES;
  return {
    ...enrollmentHeading(first),
    clockHourMinutes: minutesPerHour,
    requiredClockHours: first.total_clock_hours,
    minutesAttended: first.total_minutes,
    clockHoursAttended: clockHoursOf(first.total_minutes),
    clockHoursThisWeek: clockHoursOf(first.week_minutes),
    attendanceRatePercent: ratePercent(first.total_minutes, first.total_scheduled),
    consecutiveAbsences: first.consecutive_absences,
    lastDateOfAttendance: first.last_attended,
    modules: rows
      .filter((row) => row.module_id !== null)
      .map((row) => {
        const counted = row.requires_in_person ? row.in_person_minutes : row.minutes;
        return {
          moduleId: row.module_id,
          code: row.code,
          title: row.title,
          requiredClockHours: row.clock_hours,
          requiresInPerson: row.requires_in_person,
          sessions: row.sessions,
          absences: row.absences,
          minutesAttended: row.minutes,
          inPersonMinutes: row.in_person_minutes,
          clockHoursAttended: clockHoursOf(row.minutes),
          clockHoursCounted: clockHoursOf(counted),
          requirementMet: counted >= (row.clock_hours ?? 0) * minutesPerHour,
          attendanceRatePercent: ratePercent(row.minutes, row.scheduled_minutes),
        };
      }),
  };
}

// ---------------------------------------------------------------------------------------------------
// Students below the attendance threshold
// ---------------------------------------------------------------------------------------------------

/**
 * Per enrollment `e`: attended and scheduled minutes of its current lines, as `a`. Read from the totals
 * the database keeps as lines are appended (migration 0050), not summed from every line: the
 * dashboard and the below-threshold list ask this of every open enrollment of the school at once.
 */
export const enrollmentMinutes = (sql: AnySql): Fragment => sql`
  left join attendance_enrollment_totals enrollment_totals on enrollment_totals.enrollment_id = e.id
  cross join lateral (
    select coalesce(enrollment_totals.attended_minutes, 0)::int as attended,
           coalesce(enrollment_totals.scheduled_minutes, 0)::int as scheduled) a`;

/** An open enrollment `e` (with `a` from enrollmentMinutes) that attended less than `percent` of its sessions' minutes. */
export const belowThreshold = (sql: AnySql, percent: number): Fragment =>
  sql`e.status in ('active', 'on_hold') and a.scheduled > 0 and a.attended * 100 < ${percent}::int * a.scheduled`;

export const BELOW_THRESHOLD_ORDER = keyset([['e.id', 'uuid']], 'asc');

interface BelowRow {
  id: string;
  user_id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  program_id: string;
  program_code: string;
  attended: number;
  scheduled: number;
  page_key: string[];
}

export function belowThresholdPageQuery(
  sql: AnySql,
  filter: { programId?: string | undefined; percent: number },
  scope: RecordScope,
  after: readonly [string] | undefined,
  limit: number,
) {
  return sql<BelowRow[]>`
    select e.id, e.user_id, u.first_name_ciphertext, u.last_name_ciphertext, p.id as program_id,
           p.code as program_code, a.attended, a.scheduled, ${BELOW_THRESHOLD_ORDER.key(sql)}
      from enrollments e join users u on u.id = e.user_id join programs p on p.id = e.program_id
      ${enrollmentMinutes(sql)}
     where ${enrollmentVisible(sql, scope)} and ${belowThreshold(sql, filter.percent)}
       ${filter.programId ? sql`and e.program_id = ${filter.programId}` : sql``}
       and ${BELOW_THRESHOLD_ORDER.after(sql, after)}
     ${BELOW_THRESHOLD_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export function toBelowThresholdViews(rows: readonly BelowRow[]) {
  return decryptRows(rows, { first_name_ciphertext: 'users.first_name', last_name_ciphertext: 'users.last_name' }).map(
    (row) => ({
      enrollmentId: row.id,
      student: { id: row.user_id, firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext },
      program: { id: row.program_id, code: row.program_code },
      minutesAttended: row.attended,
      minutesScheduled: row.scheduled,
      attendanceRatePercent: ratePercent(row.attended, row.scheduled),
    }),
  );
}
