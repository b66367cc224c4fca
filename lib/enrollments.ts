// Enrollments: a student in a programme, from start to a final status. The life cycle, the queries
// that create, change, move and read them, and the view. Shared by functions/enrollments.ts, by any
// area that moves an enrollment (transitionEnrollment) and by the benchmark, which EXPLAINs the very
// list query the API runs. Who sees which enrollment is lib/students.ts enrollmentVisible, applied
// inside every query. One open enrollment per student and programme, made race-free by the partial
// unique index enrollments_one_open_per_program; nothing is ever deleted.
import { decryptRows, encrypt } from './crypto';
import { type AnySql, TEXT_ARRAY } from './db';
import { badRequest, conflict, declareConstraints, HttpError, notFound } from './errors';
import { keyset } from './pagination';
import { type EnrollmentStatus, enrollmentVisible, type RecordScope } from './students';

/**
 * The life cycle: which statuses each status may move to. pending → active (started) or cancelled
 * (never started); active ↔ on_hold (leave of absence); active → completed; active or on_hold →
 * withdrawn. completed, withdrawn and cancelled are final: a student who returns is enrolled anew.
 */
export const LIFE_CYCLE: Readonly<Record<EnrollmentStatus, readonly EnrollmentStatus[]>> = {
  pending: ['active', 'cancelled'],
  active: ['on_hold', 'completed', 'withdrawn'],
  on_hold: ['active', 'withdrawn'],
  completed: [],
  withdrawn: [],
  cancelled: [],
};

/** Statuses held by at most one enrollment per student and programme (the partial unique index). */
export const OPEN_STATUSES: readonly EnrollmentStatus[] = ['pending', 'active', 'on_hold'];

export const DATES_OUT_OF_ORDER = 'expectedEndDate must be on or after startDate';

declareConstraints({
  // CHECK (expected_end_date >= start_date): a date sent against the stored other one. The field is the
  // date the caller sent (the end date when both were).
  enrollments_dates_in_order: {
    status: 400,
    field: ['body.expectedEndDate', 'body.startDate'],
    message: DATES_OUT_OF_ORDER,
  },
});

export interface EnrollmentRow {
  id: string;
  user_id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  program_id: string;
  program_code: string;
  program_name: string;
  status: EnrollmentStatus;
  start_date: string;
  expected_end_date: string | null;
  status_changed_at: Date;
  status_changed_by: string | null;
  created_at: Date;
  updated_at: Date;
  page_key: string[];
}

/** Oldest first on (created_at, id), served by idx_enrollments_created (migration 0006). */
export const ENROLLMENT_ORDER = keyset(
  [
    ['e.created_at', 'time'],
    ['e.id', 'uuid'],
  ],
  'asc',
);

const enrollmentColumns = (sql: AnySql) => sql`
  e.id, e.user_id, u.first_name_ciphertext, u.last_name_ciphertext,
  e.program_id, p.code as program_code, p.name as program_name, e.status,
  e.start_date::text as start_date, e.expected_end_date::text as expected_end_date,
  e.status_changed_at, e.status_changed_by, e.created_at, e.updated_at, ${ENROLLMENT_ORDER.key(sql)}`;

/** Decrypts the students' names of a page in one in-process pass. */
export function toEnrollmentViews(rows: readonly EnrollmentRow[]) {
  return decryptRows(rows, { first_name_ciphertext: 'users.first_name', last_name_ciphertext: 'users.last_name' }).map(
    (row) => ({
      id: row.id,
      student: { id: row.user_id, firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext },
      program: { id: row.program_id, code: row.program_code, name: row.program_name },
      status: row.status,
      startDate: row.start_date,
      expectedEndDate: row.expected_end_date,
      statusChangedAt: row.status_changed_at.toISOString(),
      statusChangedBy: row.status_changed_by,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    }),
  );
}

/** One enrollment the scope may see, or null. */
export async function findEnrollment(sql: AnySql, id: string, scope: RecordScope) {
  const rows = await sql<EnrollmentRow[]>`
    select ${enrollmentColumns(sql)}
      from enrollments e join users u on u.id = e.user_id join programs p on p.id = e.program_id
     where e.id = ${id} and ${enrollmentVisible(sql, scope)}`;
  return toEnrollmentViews(rows)[0] ?? null;
}

export interface EnrollmentFilter {
  studentId?: string | undefined;
  programId?: string | undefined;
  status?: EnrollmentStatus | undefined;
}

/** One page of the enrollments the scope may see (`limit + 1` rows, see pageOf), with names to decrypt. */
export function enrollmentPageQuery(
  sql: AnySql,
  filter: EnrollmentFilter,
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<EnrollmentRow[]>`
    select ${enrollmentColumns(sql)}
      from enrollments e join users u on u.id = e.user_id join programs p on p.id = e.program_id
     where ${enrollmentVisible(sql, scope)}
       ${filter.studentId ? sql`and e.user_id = ${filter.studentId}` : sql``}
       ${filter.programId ? sql`and e.program_id = ${filter.programId}` : sql``}
       ${filter.status ? sql`and e.status = ${filter.status}` : sql``}
       and ${ENROLLMENT_ORDER.after(sql, after)}
     ${ENROLLMENT_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

// ---------------------------------------------------------------------------------------------------
// Create, change dates, move along the life cycle, history
// ---------------------------------------------------------------------------------------------------

export interface NewEnrollment {
  studentId: string;
  programId: string;
  startDate: string;
  expectedEndDate?: string | null | undefined;
  status: 'pending' | 'active';
}

/**
 * Enrolls a student; returns the new enrollment's id. One statement: the checks and the insert. ON
 * CONFLICT on the partial unique index makes two concurrent enrollments of one student in one
 * programme impossible: the loser inserts nothing and hears 409.
 */
export async function createEnrollment(sql: AnySql, input: NewEnrollment, createdBy: string): Promise<string> {
  const [outcome] = await sql<{ student_status: string | null; program_status: string | null; id: string | null }[]>`
    with student as (
      select u.id, u.status from users u
       where u.id = ${input.studentId}
         and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')),
    program as (select p.id, p.status from programs p where p.id = ${input.programId}),
    inserted as (
      insert into enrollments (user_id, program_id, start_date, expected_end_date, status, status_changed_by)
      select s.id, p.id, ${input.startDate}::date, ${input.expectedEndDate ?? null}::date, ${input.status},
             ${createdBy}
        from student s, program p
       where s.status <> 'inactive' and p.status = 'active'
      on conflict (user_id, program_id) where status in ('pending', 'active', 'on_hold') do nothing
      returning id)
    select (select status from student) as student_status, (select status from program) as program_status,
           (select id from inserted) as id`;
  if (!outcome?.student_status) {
    throw badRequest('Check the body of your request', [{ field: 'body.studentId', message: 'No such student' }]);
  }
  if (!outcome.program_status) {
    throw badRequest('Check the body of your request', [{ field: 'body.programId', message: 'No such programme' }]);
  }
  if (outcome.student_status === 'inactive') throw conflict('The student’s account is deactivated');
  if (outcome.program_status !== 'active') throw conflict('The programme is retired: it takes no new enrollments');
  if (!outcome.id) throw conflict('The student already has an open enrollment in this programme');
  return outcome.id;
}

export interface EnrollmentDates {
  startDate?: string | undefined;
  expectedEndDate?: string | null | undefined;
}

/**
 * Changes an open enrollment's dates (an expectedEndDate of null clears it). The status test sits on
 * the UPDATE itself, so a concurrent transition is re-checked. A date out of order against the stored
 * other one violates enrollments_dates_in_order (declared above): 400.
 */
export async function updateEnrollmentDates(sql: AnySql, id: string, dates: EnrollmentDates): Promise<void> {
  const setEnd = dates.expectedEndDate !== undefined;
  const [outcome] = await sql<{ status: EnrollmentStatus; changed: boolean }[]>`
      with target as (select id, status from enrollments where id = ${id}),
      changed as (
        update enrollments e
           set start_date = coalesce(${dates.startDate ?? null}::date, e.start_date),
               expected_end_date = case when ${setEnd} then ${dates.expectedEndDate ?? null}::date
                                        else e.expected_end_date end
          from target t
         where e.id = t.id and e.status in ${sql(OPEN_STATUSES)}
        returning e.id)
      select t.status, exists (select 1 from changed) as changed from target t`;
  if (!outcome) throw notFound('No such enrollment');
  if (!outcome.changed) throw conflict(`The enrollment is ${outcome.status}: its dates are part of a closed record`);
}

/**
 * The exits that owe a refund calculation: they are recorded by `POST enrollments/{id}/withdrawal`
 * (lib/refunds.ts recordWithdrawal), which withdraws an enrollment that started, cancels one that did
 * not, records the notice and the last day attended, and calculates the refund in one transaction. The
 * generic transition refuses them: a status change alone would leave a student without the refund the
 * commission's rule gives them and finance without anything to approve.
 */
export const EXITS_WITH_REFUND: readonly EnrollmentStatus[] = ['withdrawn', 'cancelled'];

/** The 422 of `to: withdrawn | cancelled` on the generic transition: it names the withdrawal route. */
export function withdrawalRequired(id: string, to: EnrollmentStatus): HttpError {
  const route = `/api/enrollments/${id}/withdrawal`;
  const message = `An enrollment becomes ${to} by recording a withdrawal: POST ${route} (it calculates the refund)`;
  return new HttpError({
    status: 422,
    slug: 'withdrawal-required',
    title: 'Record a withdrawal instead',
    detail: message,
    errors: [{ field: 'body.to', message }],
    headers: { Link: `<${route}>; rel="related"` },
  });
}

/**
 * The 409 of a move the life cycle does not allow. `field` names what the caller sent that asked for
 * it: `body.to` on the generic transition; `params.id` where the route implies the target status (a
 * withdrawal has no `to`).
 */
export function illegalTransition(from: EnrollmentStatus, to: EnrollmentStatus, field = 'body.to'): HttpError {
  const allowed = LIFE_CYCLE[from];
  const message = allowed.length
    ? `An enrollment that is ${from} can become ${allowed.join(' or ')}, not ${to}`
    : `An enrollment that is ${from} is final: it cannot become ${to}`;
  return new HttpError({
    status: 409,
    slug: 'illegal-transition',
    title: 'This status change is not allowed',
    detail: message,
    errors: [{ field, message }],
  });
}

export interface EnrollmentTransition {
  to: EnrollmentStatus;
  /** Free text about the student: stored encrypted in the status history. */
  reason?: string | undefined;
  /** The user making the change. */
  changedBy: string;
  /** The request field a refused move is reported on (illegalTransition); `body.to` by default. */
  field?: string;
}

/**
 * Moves an enrollment along LIFE_CYCLE and records the change in enrollment_status_changes, in one
 * statement; returns the status it moved from. Throws 404 for no such enrollment and 409
 * (illegal-transition) for a move the life cycle does not allow. The UPDATE is conditional: of two
 * concurrent transitions from one status, only one applies. (Moves among open statuses never open a
 * second enrollment, so the unique index is not at stake.) Run it inside the caller's transaction to
 * make other writes (a withdrawal's refund) stand or fall with the move.
 */
export async function transitionEnrollment(
  sql: AnySql,
  id: string,
  change: EnrollmentTransition,
): Promise<EnrollmentStatus> {
  const from = (Object.keys(LIFE_CYCLE) as EnrollmentStatus[]).filter((status) =>
    LIFE_CYCLE[status].includes(change.to),
  );
  const reason = change.reason ? encrypt(change.reason, 'enrollment_status_changes.reason') : null;
  const [outcome] = await sql<{ status: EnrollmentStatus; moved: boolean }[]>`
    with target as (select id, status from enrollments where id = ${id}),
    moved as (
      update enrollments e
         set status = ${change.to}, status_changed_at = now(), status_changed_by = ${change.changedBy}
        from target t
       where e.id = t.id and e.status = any(${sql.array([...from], TEXT_ARRAY)})
      returning e.id, t.status as from_status),
    recorded as (
      insert into enrollment_status_changes (enrollment_id, from_status, to_status, reason_ciphertext, changed_by)
      select id, from_status, ${change.to}, ${reason}, ${change.changedBy}
        from moved)
    select t.status, exists (select 1 from moved) as moved from target t`;
  if (!outcome) throw notFound('No such enrollment');
  if (!outcome.moved) throw illegalTransition(outcome.status, change.to, change.field);
  return outcome.status;
}

interface StatusChangeRow {
  from_status: EnrollmentStatus;
  to_status: EnrollmentStatus;
  reason_ciphertext: string | null;
  changed_at: Date;
  changed_by: string;
}

/**
 * The status changes of one enrollment, oldest first, reasons decrypted. The caller checks first that
 * the enrollment is visible (findEnrollment with its scope). Bounded by the life cycle: at most a
 * handful of changes per enrollment.
 */
export async function enrollmentHistory(sql: AnySql, id: string) {
  const rows = await sql<StatusChangeRow[]>`
    select from_status, to_status, reason_ciphertext, changed_at, changed_by
      from enrollment_status_changes where enrollment_id = ${id}
     order by changed_at, id
     limit 100`;
  return decryptRows(rows, { reason_ciphertext: 'enrollment_status_changes.reason' }).map((row) => ({
    from: row.from_status,
    to: row.to_status,
    reason: row.reason_ciphertext,
    changedAt: row.changed_at.toISOString(),
    changedBy: row.changed_by,
  }));
}

// ---------------------------------------------------------------------------------------------------
// The heading of a per-module roll-up (attendance, progress): one row per module of the programme
// ---------------------------------------------------------------------------------------------------

/** The enrollment, programme and module columns every row of a per-module roll-up of one enrollment starts with. */
export interface EnrollmentModuleRow {
  enrollment_id: string;
  user_id: string;
  enrollment_status: string;
  program_id: string;
  program_code: string;
  program_name: string;
  total_clock_hours: number;
  /** Null on the one row of a programme without modules (the modules are left-joined). */
  module_id: string | null;
  code: string | null;
  title: string | null;
  clock_hours: number | null;
}

/** The select list of `EnrollmentModuleRow`, over enrollments `e`, programs `p` and left-joined modules `m`. */
export const enrollmentModuleColumns = (sql: AnySql) => sql`
  e.id as enrollment_id, e.user_id, e.status as enrollment_status,
  p.id as program_id, p.code as program_code, p.name as program_name, p.total_clock_hours,
  m.id as module_id, m.code, m.title, m.clock_hours`;

/** What a roll-up's view says of the enrollment it is about. */
export const enrollmentHeading = (row: EnrollmentModuleRow) => ({
  enrollmentId: row.enrollment_id,
  studentId: row.user_id,
  enrollmentStatus: row.enrollment_status,
  program: { id: row.program_id, code: row.program_code, name: row.program_name },
});
