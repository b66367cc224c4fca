// Enrollments: the routes that enroll a student, list and read enrollments, change their dates and
// move them along the life cycle (lib/enrollments.ts holds the queries, LIFE_CYCLE and the view). A
// student sees only their own, whatever the filters.
//
// Withdrawing or cancelling is not a transition here: it is `POST enrollments/{id}/withdrawal`
// (functions/ledger-refunds.ts), which records the withdrawal and calculates the refund; a transition
// to `withdrawn` or `cancelled` is a 422 naming that route (lib/enrollments.ts EXITS_WITH_REFUND).
import { z } from 'zod';
import { STUDENT_RECORD_ROLES } from '../lib/access';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import {
  createEnrollment,
  DATES_OUT_OF_ORDER,
  ENROLLMENT_ORDER,
  EXITS_WITH_REFUND,
  enrollmentHistory,
  enrollmentPageQuery,
  findEnrollment,
  toEnrollmentViews,
  transitionEnrollment,
  updateEnrollmentDates,
  withdrawalRequired,
} from '../lib/enrollments';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { ENROLLMENT_STATUSES, recordScopeOf, STUDENT_MANAGER_ROLES } from '../lib/students';
import { multiLine } from '../lib/text';

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

async function enrollStudent({
  sql,
  body,
  caller,
  audit,
}: ChangeInput<unknown, unknown, z.infer<typeof NewEnrollment>>) {
  const id = await createEnrollment(sql, body, caller.userId);
  audit.resourceIds.id = id;
  return created(await findEnrollment(sql, id, { kind: 'all' }), `/api/enrollments/${id}`);
}

endpoint({
  name: 'enrollments-create',
  methods: ['POST'],
  route: 'enrollments',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  body: NewEnrollment,
  handler: enrollStudent,
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

async function listEnrollments({
  sql,
  query,
  caller,
  request,
}: ReadInput<unknown, z.infer<typeof EnrollmentListQuery>>) {
  // A student's scope is their own enrollments, whatever studentId they pass.
  const rows = await enrollmentPageQuery(sql, query, recordScopeOf(caller), query.cursor, query.limit);
  const page = pageOf(rows, query.limit, toEnrollmentViews);
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'enrollments-list',
  methods: ['GET'],
  route: 'enrollments',
  access: ENROLLMENT_READERS,
  phi: true,
  query: EnrollmentListQuery,
  handler: listEnrollments,
});

const EnrollmentParams = z.object({ id: z.uuid() });
type EnrollmentParams = z.infer<typeof EnrollmentParams>;

async function readEnrollment({ sql, params, caller }: ReadInput<EnrollmentParams>) {
  // Someone else's enrollment is a 404, not a 403: its existence is not the caller's to learn.
  const enrollment = await findEnrollment(sql, params.id, recordScopeOf(caller));
  if (!enrollment) throw notFound('No such enrollment');
  return json(enrollment);
}

endpoint({
  name: 'enrollments-get',
  methods: ['GET'],
  route: 'enrollments/{id}',
  access: ENROLLMENT_READERS,
  phi: true,
  params: EnrollmentParams,
  handler: readEnrollment,
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

async function changeEnrollmentDates({
  sql,
  params,
  body,
}: ChangeInput<EnrollmentParams, unknown, z.infer<typeof EnrollmentDates>>) {
  await updateEnrollmentDates(sql, params.id, body);
  return json(await findEnrollment(sql, params.id, { kind: 'all' }));
}

endpoint({
  name: 'enrollments-update',
  methods: ['PATCH'],
  route: 'enrollments/{id}',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: EnrollmentParams,
  body: EnrollmentDates,
  handler: changeEnrollmentDates,
});

const Transition = z.strictObject({
  /** `withdrawn` and `cancelled` are refused (422): record a withdrawal, which calculates the refund. */
  to: z.enum(ENROLLMENT_STATUSES),
  /** Kept, encrypted, in the enrollment's history. */
  reason: multiLine(500, { min: 0 }).optional(),
});

async function moveEnrollment({
  sql,
  params,
  body,
  caller,
  audit,
}: ChangeInput<EnrollmentParams, unknown, z.infer<typeof Transition>>) {
  if (EXITS_WITH_REFUND.includes(body.to)) throw withdrawalRequired(params.id, body.to);
  await transitionEnrollment(sql, params.id, { to: body.to, reason: body.reason, changedBy: caller.userId });
  audit.event = `enrollment_${body.to}`;
  return json(await findEnrollment(sql, params.id, { kind: 'all' }));
}

endpoint({
  name: 'enrollments-transition',
  methods: ['POST'],
  route: 'enrollments/{id}/transitions',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: EnrollmentParams,
  body: Transition,
  handler: moveEnrollment,
});

async function readEnrollmentHistory({ sql, params, caller }: ReadInput<EnrollmentParams>) {
  // Visible exactly when the enrollment is: the same scope rule as reading it.
  if (!(await findEnrollment(sql, params.id, recordScopeOf(caller)))) throw notFound('No such enrollment');
  return json({ items: await enrollmentHistory(sql, params.id) });
}

endpoint({
  name: 'enrollments-history',
  methods: ['GET'],
  route: 'enrollments/{id}/history',
  access: ENROLLMENT_READERS,
  phi: true,
  params: EnrollmentParams,
  handler: readEnrollmentHistory,
});
