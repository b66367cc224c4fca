// Students: accounts holding the `student` role, with their enrollments. The list is keyset-paged and
// bounded, one statement per page (enrollments aggregated by the database), names and emails
// decrypted in-process in one pass; email lookups and uniqueness go through the blind index; names
// are searched by prefix through HMAC tokens; deactivation replaces the hard delete.
//
// Sorting by last name: last names are ciphertext and the schema deliberately has no sort key
// derived from them (it would leak their order and initials). `sort=lastName` therefore sorts
// in-process, and only a filtered set of at most LAST_NAME_SORT_MAX students (narrowed by name,
// programme, status, …): the names of that set are decrypted for every page, and a larger set is a
// 400 that says how to narrow it. The cursor of that order holds names, so it is encrypted.
//
// Searching by name or email puts personal data in the URL of a GET; POST /api/students/search
// takes the same filters in its body for clients that must keep them out of URLs and logs.
import { z } from 'zod';
import { type Caller, STUDENT_RECORD_ROLES } from '../lib/access';
import { createAccount, deactivateUser } from '../lib/account-admin';
import type { AnySql } from '../lib/db';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { deliverNowInDevelopment } from '../lib/outbox';
import { CURSOR_MAX_LENGTH, limitSchema, nextLink } from '../lib/pagination';
import {
  changeStudentAccount,
  ENROLLMENT_STATUSES,
  findStudent,
  listStudents,
  lockManagedStudent,
  type RecordScope,
  recordScopeOf,
  STUDENT_MANAGER_ROLES,
  type StudentFilter,
  studentListOrder,
} from '../lib/students';
import {
  EmailAddress,
  EmailLookup,
  NameSearchInput,
  NewPassword,
  PersonName,
  USER_STATUSES,
  withPasswordPolicy,
} from '../lib/users';

const ALL: RecordScope = { kind: 'all' };

// ---------------------------------------------------------------------------------------------------
// Listing and searching
// ---------------------------------------------------------------------------------------------------

const listShape = {
  limit: limitSchema,
  cursor: z.string().max(CURSOR_MAX_LENGTH).optional(),
  sort: z.enum(['created', 'lastName']).default('created'),
  status: z.enum(USER_STATUSES).optional(),
  programId: z.uuid().optional(),
  enrollmentStatus: z.enum(ENROLLMENT_STATUSES).optional(),
  email: EmailLookup.optional(),
  name: NameSearchInput.optional(),
};

/** The cursor's shape depends on the order, so it is parsed once the order is known. */
function withOrder<T extends { sort: 'created' | 'lastName'; cursor?: string | undefined }>(
  input: T,
  ctx: z.RefinementCtx,
) {
  const { cursor, ...filters } = input;
  const order = studentListOrder(input.sort, cursor);
  if ('refused' in order) {
    ctx.addIssue({ code: 'custom', path: ['cursor'], message: order.refused });
    return z.NEVER;
  }
  return { ...filters, order };
}

const StudentListQuery = z.object(listShape).transform(withOrder);
const StudentSearchBody = z.strictObject(listShape).transform(withOrder);
type StudentListInput = z.infer<typeof StudentListQuery>;

function studentPage(sql: AnySql, input: StudentListInput, caller: Caller, where: 'query' | 'body') {
  const filter: StudentFilter = {
    status: input.status,
    programId: input.programId,
    enrollmentStatus: input.enrollmentStatus,
    email: input.email,
    name: input.name,
  };
  return listStudents(sql, filter, recordScopeOf(caller), input.order, input.limit, where);
}

async function listStudentPage({ sql, query, caller, request }: ReadInput<unknown, StudentListInput>) {
  const page = await studentPage(sql, query, caller, 'query');
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'students-list',
  methods: ['GET'],
  route: 'students',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  query: StudentListQuery,
  handler: listStudentPage,
});

async function searchStudents({ sql, body, caller }: ChangeInput<unknown, unknown, StudentListInput>) {
  return json(await studentPage(sql, body, caller, 'body'));
}

endpoint({
  name: 'students-search',
  methods: ['POST'],
  route: 'students/search',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  body: StudentSearchBody,
  handler: searchStudents,
});

// ---------------------------------------------------------------------------------------------------
// One student
// ---------------------------------------------------------------------------------------------------

const StudentParams = z.object({ id: z.uuid() });
type StudentParams = z.infer<typeof StudentParams>;

async function readStudent({ sql, params, caller }: ReadInput<StudentParams>) {
  // The scope narrows a student to themself, an instructor to the students of the programmes they teach.
  const student = await findStudent(sql, params.id, recordScopeOf(caller));
  if (!student) throw notFound('No such student');
  return json(student);
}

endpoint({
  name: 'students-get',
  methods: ['GET'],
  route: 'students/{id}',
  access: [...STUDENT_RECORD_ROLES, 'student'],
  phi: true,
  params: StudentParams,
  handler: readStudent,
});

// ---------------------------------------------------------------------------------------------------
// Creating, changing, deactivating
// ---------------------------------------------------------------------------------------------------

const NewStudent = withPasswordPolicy(
  z.strictObject({
    email: EmailAddress,
    firstName: PersonName,
    lastName: PersonName,
    /** Optional: without one the account is `pending` until the student activates it. */
    password: NewPassword.optional(),
  }),
);

async function createStudent({
  sql,
  body,
  caller,
  audit,
  afterCommit,
}: ChangeInput<unknown, unknown, z.infer<typeof NewStudent>>) {
  const { id, invited } = await createAccount(sql, { ...body, roles: ['student'] }, caller.userId);
  if (invited) afterCommit(deliverNowInDevelopment);
  audit.resourceIds.id = id;
  return created(await findStudent(sql, id, ALL), `/api/students/${id}`);
}

endpoint({
  name: 'students-create',
  methods: ['POST'],
  route: 'students',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  body: NewStudent,
  handler: createStudent,
});

const StudentChange = z
  .strictObject({
    email: EmailAddress.optional(),
    firstName: PersonName.optional(),
    lastName: PersonName.optional(),
    status: z
      .enum(['active', 'locked', 'pending'], {
        error: 'Use active, locked or pending; to deactivate, POST /api/students/{id}/deactivate',
      })
      .optional(),
  })
  .refine((change) => Object.keys(change).length > 0, 'Send at least one of email, firstName, lastName, status');

async function changeStudent({
  sql,
  params,
  body,
}: ChangeInput<StudentParams, unknown, z.infer<typeof StudentChange>>) {
  await changeStudentAccount(sql, params.id, body);
  return json(await findStudent(sql, params.id, ALL));
}

endpoint({
  name: 'students-update',
  methods: ['PATCH'],
  route: 'students/{id}',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  body: StudentChange,
  handler: changeStudent,
});

async function deactivateStudent({ sql, params, caller }: ChangeInput<StudentParams>) {
  await lockManagedStudent(sql, params.id);
  await deactivateUser(sql, params.id, caller.userId);
  return json(await findStudent(sql, params.id, ALL));
}

endpoint({
  name: 'students-deactivate',
  methods: ['POST'],
  route: 'students/{id}/deactivate',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  handler: deactivateStudent,
});
