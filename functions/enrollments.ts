// Enrollments: a student in a programme, from start to a final status. Lists are keyset-paged and
// filter by student, programme and status; a student sees
// only their own whatever the filters; one open enrollment per student and programme, made
// race-free by the partial unique index enrollments_one_open_per_program; the status moves only
// along LIFE_CYCLE, recording who and when; nothing is ever deleted.
//
// Withdrawals and refunds are a later issue: a transition to `withdrawn` here only changes the status.
import { z } from 'zod';
import { STUDENT_RECORD_ROLES } from '../lib/access';
import { decryptRows, encrypt } from '../lib/crypto';
import { TEXT_ARRAY } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import {
  DATES_OUT_OF_ORDER,
  ENROLLMENT_ORDER,
  enrollmentPageQuery,
  findEnrollment,
  toEnrollmentViews,
} from '../lib/enrollments';
import { badRequest, conflict, HttpError, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { ENROLLMENT_STATUSES, type EnrollmentStatus, recordScopeOf, STUDENT_MANAGER_ROLES } from '../lib/students';
import { multiLine } from '../lib/text';

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
const OPEN_STATUSES: readonly EnrollmentStatus[] = ['pending', 'active', 'on_hold'];

/** Who may call the enrollment reads: staff with student records, and students (their own only). */
const ENROLLMENT_READERS = [...STUDENT_RECORD_ROLES, 'student'] as const;

const isoDate = z.iso.date();
const datesInOrder = (dates: { startDate?: string | undefined; expectedEndDate?: string | null | undefined }) =>
  !dates.startDate || !dates.expectedEndDate || dates.expectedEndDate >= dates.startDate;

// ---------------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------------

const NewEnrollment = z
  .strictObject({
    studentId: z.uuid(),
    programId: z.uuid(),
    startDate: isoDate,
    expectedEndDate: isoDate.nullable().optional(),
    /** `pending` for a future start the student has not confirmed; otherwise `active`. */
    status: z.enum(['pending', 'active']).default('active'),
  })
  .refine(datesInOrder, { message: DATES_OUT_OF_ORDER, path: ['expectedEndDate'] });

endpoint({
  name: 'enrollments-create',
  methods: ['POST'],
  route: 'enrollments',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  body: NewEnrollment,
  handler: async ({ sql, body, caller, audit }) => {
    // One statement: the checks and the insert. ON CONFLICT on the partial unique index makes two
    // concurrent enrollments of one student in one programme impossible: the loser inserts nothing.
    const [outcome] = await sql<{ student_status: string | null; program_status: string | null; id: string | null }[]>`
      with student as (
        select u.id, u.status from users u
         where u.id = ${body.studentId}
           and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')),
      program as (select p.id, p.status from programs p where p.id = ${body.programId}),
      inserted as (
        insert into enrollments (user_id, program_id, start_date, expected_end_date, status, status_changed_by)
        select s.id, p.id, ${body.startDate}::date, ${body.expectedEndDate ?? null}::date, ${body.status},
               ${caller.userId}
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
    audit.resourceIds.id = outcome.id;
    return created(await findEnrollment(sql, outcome.id, { kind: 'all' }), `/api/enrollments/${outcome.id}`);
  },
});

// ---------------------------------------------------------------------------------------------------
// Read
// ---------------------------------------------------------------------------------------------------

const EnrollmentListQuery = z.object({
  limit: limitSchema,
  cursor: ENROLLMENT_ORDER.cursor,
  studentId: z.uuid().optional(),
  programId: z.uuid().optional(),
  status: z.enum(ENROLLMENT_STATUSES).optional(),
});

endpoint({
  name: 'enrollments-list',
  methods: ['GET'],
  route: 'enrollments',
  access: ENROLLMENT_READERS,
  phi: true,
  query: EnrollmentListQuery,
  handler: async ({ sql, query, caller, request }) => {
    // A student's scope is their own enrollments, whatever studentId they pass.
    const rows = await enrollmentPageQuery(sql, query, recordScopeOf(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, toEnrollmentViews);
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const EnrollmentParams = z.object({ id: z.uuid() });

endpoint({
  name: 'enrollments-get',
  methods: ['GET'],
  route: 'enrollments/{id}',
  access: ENROLLMENT_READERS,
  phi: true,
  params: EnrollmentParams,
  handler: async ({ sql, params, caller }) => {
    // Someone else's enrollment is a 404, not a 403: its existence is not the caller's to learn.
    const enrollment = await findEnrollment(sql, params.id, recordScopeOf(caller));
    if (!enrollment) throw notFound('No such enrollment');
    return json(enrollment);
  },
});

// ---------------------------------------------------------------------------------------------------
// Change dates; move along the life cycle
// ---------------------------------------------------------------------------------------------------

const EnrollmentDates = z
  .strictObject({ startDate: isoDate.optional(), expectedEndDate: isoDate.nullable().optional() })
  .refine((dates) => dates.startDate !== undefined || dates.expectedEndDate !== undefined, {
    message: 'Send startDate, expectedEndDate or both',
  })
  .refine(datesInOrder, { message: DATES_OUT_OF_ORDER, path: ['expectedEndDate'] });

endpoint({
  name: 'enrollments-update',
  methods: ['PATCH'],
  route: 'enrollments/{id}',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: EnrollmentParams,
  body: EnrollmentDates,
  handler: async ({ sql, params, body }) => {
    const setEnd = body.expectedEndDate !== undefined;
    // The status test sits on the UPDATE itself, so a concurrent transition is re-checked. A date out of
    // order against the stored other one violates the CHECK declared in lib/enrollments.ts: 400.
    const [outcome] = await sql<{ status: EnrollmentStatus; changed: boolean }[]>`
        with target as (select id, status from enrollments where id = ${params.id}),
        changed as (
          update enrollments e
             set start_date = coalesce(${body.startDate ?? null}::date, e.start_date),
                 expected_end_date = case when ${setEnd} then ${body.expectedEndDate ?? null}::date
                                          else e.expected_end_date end
            from target t
           where e.id = t.id and e.status in ${sql(OPEN_STATUSES)}
          returning e.id)
        select t.status, exists (select 1 from changed) as changed from target t`;
    if (!outcome) throw notFound('No such enrollment');
    if (!outcome.changed) throw conflict(`The enrollment is ${outcome.status}: its dates are part of a closed record`);
    return json(await findEnrollment(sql, params.id, { kind: 'all' }));
  },
});

const Transition = z.strictObject({
  to: z.enum(ENROLLMENT_STATUSES),
  // Validated but not stored yet: there is no status history table (see the report).
  reason: multiLine(500, { min: 0 }).optional(),
});

function illegalTransition(from: EnrollmentStatus, to: EnrollmentStatus): HttpError {
  const allowed = LIFE_CYCLE[from];
  const message = allowed.length
    ? `An enrollment that is ${from} can become ${allowed.join(' or ')}, not ${to}`
    : `An enrollment that is ${from} is final: it cannot become ${to}`;
  return new HttpError({
    status: 409,
    slug: 'illegal-transition',
    title: 'This status change is not allowed',
    detail: message,
    errors: [{ field: 'body.to', message }],
  });
}

endpoint({
  name: 'enrollments-transition',
  methods: ['POST'],
  route: 'enrollments/{id}/transitions',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: EnrollmentParams,
  body: Transition,
  handler: async ({ sql, params, body, caller, audit }) => {
    const from = (Object.keys(LIFE_CYCLE) as EnrollmentStatus[]).filter((status) =>
      LIFE_CYCLE[status].includes(body.to),
    );
    // Conditional UPDATE: of two concurrent transitions from one status, only one applies.
    // (Moves among open statuses never open a second enrollment, so the unique index is not at stake.)
    const [outcome] = await sql<{ status: EnrollmentStatus; moved: boolean }[]>`
      with target as (select id, status from enrollments where id = ${params.id}),
      moved as (
        update enrollments e
           set status = ${body.to}, status_changed_at = now(), status_changed_by = ${caller.userId}
          from target t
         where e.id = t.id and e.status = any(${sql.array([...from], TEXT_ARRAY)})
        returning e.id, t.status as from_status),
      recorded as (
        insert into enrollment_status_changes (enrollment_id, from_status, to_status, reason_ciphertext, changed_by)
        select id, from_status, ${body.to}, ${body.reason ? encrypt(body.reason, 'enrollment_status_changes.reason') : null},
               ${caller.userId}
          from moved)
      select t.status, exists (select 1 from moved) as moved from target t`;
    if (!outcome) throw notFound('No such enrollment');
    if (!outcome.moved) throw illegalTransition(outcome.status, body.to);
    audit.event = `enrollment_${body.to}`;
    return json(await findEnrollment(sql, params.id, { kind: 'all' }));
  },
});

interface StatusChangeRow {
  from_status: EnrollmentStatus;
  to_status: EnrollmentStatus;
  reason_ciphertext: string | null;
  changed_at: Date;
  changed_by: string;
}

endpoint({
  name: 'enrollments-history',
  methods: ['GET'],
  route: 'enrollments/{id}/history',
  access: ENROLLMENT_READERS,
  phi: true,
  params: EnrollmentParams,
  handler: async ({ sql, params, caller }) => {
    // Visible exactly when the enrollment is: the same scope rule as reading it.
    if (!(await findEnrollment(sql, params.id, recordScopeOf(caller)))) throw notFound('No such enrollment');
    // Bounded by the life cycle: at most a handful of changes per enrollment.
    const rows = await sql<StatusChangeRow[]>`
      select from_status, to_status, reason_ciphertext, changed_at, changed_by
        from enrollment_status_changes where enrollment_id = ${params.id}
       order by changed_at, id
       limit 100`;
    const items = decryptRows(rows, { reason_ciphertext: 'enrollment_status_changes.reason' }).map((row) => ({
      from: row.from_status,
      to: row.to_status,
      reason: row.reason_ciphertext,
      changedAt: row.changed_at.toISOString(),
      changedBy: row.changed_by,
    }));
    return json({ items });
  },
});
