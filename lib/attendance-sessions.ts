// Recording attendance: a whole class session in one request, corrections as new versions of a line,
// and the reads of sessions, lines and a line's history. The rules (migration 0015 holds the same in
// its constraints): a student attends only through their active enrollment in the module's
// programme; present is the whole session unless fewer minutes are given;
// late and left early say how many minutes; absent is none; nobody is credited more than the session
// lasted. Who reaches what is lib/attendance.ts.
import type postgres from 'postgres';
import { programReachedSql, type RecordScope } from './access';
import { clockHoursOf, isCurrentLine, type LineStatus, type SessionType, schoolDay } from './attendance';
import { decrypt, decryptRows, encrypt } from './crypto';
import { type AnySql, TEXT_ARRAY, UUID_ARRAY } from './db';
import { badRequest, conflict, declareConstraints, type FieldError } from './errors';
import { keyset } from './pagination';
import { enrollmentVisible } from './students';

type Fragment = postgres.Fragment;

const REASON_FIELD = 'attendance_records.reason';

export interface LineInput {
  studentId: string;
  status: LineStatus;
  minutesAttended?: number | undefined;
}

export interface SessionInput {
  moduleId: string;
  sessionType: SessionType;
  sessionRef?: string | undefined;
  startsAt: string;
  endsAt: string;
  lines: LineInput[];
}

/** Whole minutes between two instants. */
export const minutesBetween = (start: Date, end: Date) => Math.floor((end.getTime() - start.getTime()) / 60_000);

/**
 * The minutes a line credits, or the problem with them (`field` names where they came from): present is
 * the whole session unless told fewer; late and left early must say; absent is none.
 */
export function creditedMinutes(line: Omit<LineInput, 'studentId'>, length: number, field: string): number {
  const { status, minutesAttended } = line;
  const refuse = (message: string) => badRequest(message, [{ field, message }]);
  if (status === 'absent') {
    if (minutesAttended) throw refuse('An absent student attended no minutes');
    return 0;
  }
  if (minutesAttended === undefined) {
    if (status === 'present') return length;
    throw refuse(`Say how many minutes a student who was ${status.replace('_', ' ')} attended`);
  }
  if (minutesAttended > length) throw refuse(`The session lasted ${length} minutes`);
  return minutesAttended;
}

// ---------------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------------

export interface LineRow {
  id: string;
  session_id: string;
  module_id: string;
  user_id: string;
  enrollment_id: string;
  status: LineStatus;
  minutes_attended: number;
  version: number;
  supersedes_id: string | null;
  reason_ciphertext: string | null;
  recorded_by: string;
  recorded_at: Date;
  started_at: Date;
  ended_at: Date;
}

const lineColumns = (sql: AnySql) => sql`
  r.id, r.session_id, r.module_id, r.user_id, r.enrollment_id, r.status, r.minutes_attended, r.version,
  r.supersedes_id, r.reason_ciphertext, r.recorded_by, r.recorded_at, r.started_at, r.ended_at`;

export function toLineView(row: LineRow) {
  return {
    id: row.id,
    sessionId: row.session_id,
    moduleId: row.module_id,
    studentId: row.user_id,
    enrollmentId: row.enrollment_id,
    status: row.status,
    minutesAttended: row.minutes_attended,
    clockHours: clockHoursOf(row.minutes_attended),
    version: row.version,
    supersedes: row.supersedes_id,
    reason: row.reason_ciphertext === null ? null : decrypt(row.reason_ciphertext, REASON_FIELD),
    recordedBy: row.recorded_by,
    recordedAt: row.recorded_at.toISOString(),
    startedAt: row.started_at.toISOString(),
    endedAt: row.ended_at.toISOString(),
  };
}

interface SessionRow {
  id: string;
  module_id: string;
  program_id: string;
  session_type: SessionType;
  session_ref: string | null;
  starts_at: Date;
  ends_at: Date;
  recorded_by: string;
  recorded_at: Date;
}

const toSessionView = (session: SessionRow) => ({
  id: session.id,
  moduleId: session.module_id,
  programId: session.program_id,
  sessionType: session.session_type,
  sessionRef: session.session_ref,
  startsAt: session.starts_at.toISOString(),
  endsAt: session.ends_at.toISOString(),
  minutes: minutesBetween(session.starts_at, session.ends_at),
  recordedBy: session.recorded_by,
  recordedAt: session.recorded_at.toISOString(),
});

// ---------------------------------------------------------------------------------------------------
// Record a session
// ---------------------------------------------------------------------------------------------------

const NO_MODULE = 'No such module in a programme you may record attendance for';

const ALREADY_CORRECTED = 'This line has been corrected already: correct its latest version';

declareConstraints({
  attendance_records_one_place_key: {
    status: 409,
    field: 'body.lines',
    message: 'A student on this list is already recorded in a session of this module starting then',
  },
  // Two corrections of the same version at once: the other one won.
  attendance_records_supersedes_key: { status: 409, field: 'params.recordId', message: ALREADY_CORRECTED },
});

/** Records the session and every line of it; throws the problem naming the field otherwise. */
export async function recordSession(sql: AnySql, scope: RecordScope, recordedBy: string, input: SessionInput) {
  const [module] = await sql<{ program_id: string; delivery_type: string; reached: boolean }[]>`
    select m.program_id, m.delivery_type, ${programReachedSql(sql, scope, sql`m.program_id`)} as reached
      from modules m where m.id = ${input.moduleId}`;
  if (!module?.reached) throw badRequest(NO_MODULE, [{ field: 'body.moduleId', message: NO_MODULE }]);
  if (input.sessionType === 'online' && module.delivery_type === 'in_person') {
    const message = 'This module is taught in person only: it has no online sessions';
    throw badRequest(message, [{ field: 'body.sessionType', message }]);
  }
  const length = minutesBetween(new Date(input.startsAt), new Date(input.endsAt));
  const minutes = input.lines.map((line, i) => creditedMinutes(line, length, `body.lines.${i}.minutesAttended`));
  const studentIds = input.lines.map((line) => line.studentId);
  const enrollments = await sql<{ user_id: string; id: string }[]>`
    select e.user_id, e.id from enrollments e
     where e.program_id = ${module.program_id} and e.status = 'active'
       and e.user_id = any(${sql.array(studentIds, UUID_ARRAY)})`;
  const enrollmentOf = new Map(enrollments.map((row) => [row.user_id, row.id]));
  const missing: FieldError[] = studentIds.flatMap((id, i) =>
    enrollmentOf.has(id)
      ? []
      : [{ field: `body.lines.${i}.studentId`, message: 'No active enrollment in this programme' }],
  );
  if (missing.length > 0) throw badRequest('Every student must be enrolled in the programme', missing);
  const [session] = await sql<SessionRow[]>`
      insert into attendance_sessions (module_id, session_type, session_ref, starts_at, ends_at, recorded_by)
      values (${input.moduleId}, ${input.sessionType}, ${input.sessionRef ?? null}, ${input.startsAt},
              ${input.endsAt}, ${recordedBy})
      returning *, ${module.program_id}::uuid as program_id`;
  const created = session as SessionRow;
  const lines = await sql<LineRow[]>`
      insert into attendance_records as r (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                           minutes_attended, recorded_by)
      select ${created.id}, ${created.module_id}, ${created.starts_at}, ${created.ends_at}, x.user_id, x.enrollment_id,
             x.status, x.minutes, ${recordedBy}
        from unnest(${sql.array(studentIds, UUID_ARRAY)}::uuid[],
                    ${sql.array(
                      studentIds.map((id) => enrollmentOf.get(id) as string),
                      UUID_ARRAY,
                    )}::uuid[],
                    ${sql.array(
                      input.lines.map((line) => line.status),
                      TEXT_ARRAY,
                    )}::text[], ${sql.array(minutes.map(String), TEXT_ARRAY)}::int[])
             as x(user_id, enrollment_id, status, minutes)
      returning ${lineColumns(sql)}`;
  return { ...toSessionView(created), lines: lines.map(toLineView) };
}

// ---------------------------------------------------------------------------------------------------
// Correct a line: a new version
// ---------------------------------------------------------------------------------------------------

interface CorrectionTarget extends LineRow {
  current: boolean;
}

/** Adds the next version of line `recordId`, or null when the scope cannot reach it. */
export async function correctLine(
  sql: AnySql,
  scope: RecordScope,
  recordedBy: string,
  recordId: string,
  correction: Omit<LineInput, 'studentId'> & { reason: string },
) {
  const [target] = await sql<CorrectionTarget[]>`
    select ${lineColumns(sql)}, ${isCurrentLine(sql)} as current
      from attendance_records r join enrollments e on e.id = r.enrollment_id
     where r.id = ${recordId} and ${enrollmentVisible(sql, scope)}`;
  if (!target) return null;
  if (!target.current) throw conflict(ALREADY_CORRECTED);
  const length = minutesBetween(target.started_at, target.ended_at);
  const minutes = creditedMinutes(correction, length, 'body.minutesAttended');
  const [line] = await sql<LineRow[]>`
      insert into attendance_records as r (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                           minutes_attended, version, supersedes_id, reason_ciphertext, recorded_by)
      values (${target.session_id}, ${target.module_id}, ${target.started_at}, ${target.ended_at}, ${target.user_id},
              ${target.enrollment_id}, ${correction.status}, ${minutes}, ${target.version + 1}, ${target.id},
              ${encrypt(correction.reason, REASON_FIELD)}, ${recordedBy})
      returning ${lineColumns(sql)}`;
  return toLineView(line as LineRow);
}

/** Every version of the line `recordId` belongs to (its session and student), oldest first; null if unseen. */
export async function lineHistory(sql: AnySql, recordId: string, scope: RecordScope) {
  const rows = await sql<LineRow[]>`
    select ${lineColumns(sql)}
      from attendance_records t
      join enrollments e on e.id = t.enrollment_id
      join attendance_records r on r.session_id = t.session_id and r.user_id = t.user_id
     where t.id = ${recordId} and ${enrollmentVisible(sql, scope)}
     order by r.version`;
  return rows.length === 0 ? null : rows.map(toLineView);
}

// ---------------------------------------------------------------------------------------------------
// Read sessions and lines
// ---------------------------------------------------------------------------------------------------

/** A session of a programme the scope reaches, with the current line of each student and their names. */
export async function findSession(sql: AnySql, sessionId: string, scope: RecordScope) {
  const [session] = await sql<SessionRow[]>`
    select s.*, m.program_id from attendance_sessions s join modules m on m.id = s.module_id
     where s.id = ${sessionId} and ${programReachedSql(sql, scope, sql`m.program_id`)}`;
  if (!session) return null;
  const rows = await sql<(LineRow & { first_name_ciphertext: string; last_name_ciphertext: string })[]>`
    select ${lineColumns(sql)}, u.first_name_ciphertext, u.last_name_ciphertext
      from attendance_records r join users u on u.id = r.user_id
     where r.session_id = ${sessionId} and ${isCurrentLine(sql)}
     order by r.user_id`;
  const named = decryptRows(rows, {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  });
  return {
    ...toSessionView(session),
    lines: named.map((row) => ({
      ...toLineView(row),
      student: { id: row.user_id, firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext },
    })),
  };
}

/** Current lines, newest session first (index idx_attendance_records_user for one student). */
export const LINE_ORDER = keyset(
  [
    ['r.started_at', 'time'],
    ['r.id', 'uuid'],
  ],
  'desc',
);

export interface LineFilter {
  studentId?: string | undefined;
  enrollmentId?: string | undefined;
  moduleId?: string | undefined;
  /** School days, inclusive. */
  from?: string | undefined;
  to?: string | undefined;
}

export function linePageQuery(
  sql: AnySql,
  filter: LineFilter,
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  const day = schoolDay(sql, sql`r.started_at`);
  const conditions: Fragment[] = [
    filter.studentId ? sql`r.user_id = ${filter.studentId}` : sql`true`,
    filter.enrollmentId ? sql`r.enrollment_id = ${filter.enrollmentId}` : sql`true`,
    filter.moduleId ? sql`r.module_id = ${filter.moduleId}` : sql`true`,
    filter.from ? sql`${day} >= ${filter.from}::date` : sql`true`,
    filter.to ? sql`${day} <= ${filter.to}::date` : sql`true`,
  ];
  const all = conditions.reduce((joined, one) => sql`${joined} and ${one}`);
  return sql<(LineRow & { page_key: string[] })[]>`
    select ${lineColumns(sql)}, ${LINE_ORDER.key(sql)}
      from attendance_records r join enrollments e on e.id = r.enrollment_id
     where ${enrollmentVisible(sql, scope)} and ${isCurrentLine(sql)} and ${all}
       and ${LINE_ORDER.after(sql, after)}
     ${LINE_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}
