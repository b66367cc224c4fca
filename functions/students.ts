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
import { inviteAccount } from '../lib/account-links';
import type { AnySql, TransactionSql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { forbidden, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { deliverNowInDevelopment } from '../lib/outbox';
import { limitSchema, nextLink } from '../lib/pagination';
import { revokeAllForUser } from '../lib/sessions';
import {
  ENROLLMENT_STATUSES,
  findStudent,
  listStudents,
  type RecordScope,
  recordScopeOf,
  STUDENT_MANAGER_ROLES,
  type StudentFilter,
  studentListOrder,
} from '../lib/students';
import {
  EmailAddress,
  EmailLookup,
  insertUser,
  NameSearchInput,
  NewPassword,
  PersonName,
  USER_STATUSES,
  updateAccount,
  withPasswordPolicy,
} from '../lib/users';

const ALL: RecordScope = { kind: 'all' };

// ---------------------------------------------------------------------------------------------------
// Listing and searching
// ---------------------------------------------------------------------------------------------------

const listShape = {
  limit: limitSchema,
  cursor: z.string().optional(),
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

endpoint({
  name: 'students-list',
  methods: ['GET'],
  route: 'students',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  query: StudentListQuery,
  handler: async ({ sql, query, caller, request }) => {
    const page = await studentPage(sql, query, caller, 'query');
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'students-search',
  methods: ['POST'],
  route: 'students/search',
  access: STUDENT_RECORD_ROLES,
  phi: true,
  body: StudentSearchBody,
  handler: async ({ sql, body, caller }) => json(await studentPage(sql, body, caller, 'body')),
});

// ---------------------------------------------------------------------------------------------------
// One student
// ---------------------------------------------------------------------------------------------------

const StudentParams = z.object({ id: z.uuid() });

endpoint({
  name: 'students-get',
  methods: ['GET'],
  route: 'students/{id}',
  access: [...STUDENT_RECORD_ROLES, 'student'],
  phi: true,
  params: StudentParams,
  handler: async ({ sql, params, caller }) => {
    // The scope narrows a student to themself, an instructor to the students of the programmes they teach.
    const student = await findStudent(sql, params.id, recordScopeOf(caller));
    if (!student) throw notFound('No such student');
    return json(student);
  },
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

endpoint({
  name: 'students-create',
  methods: ['POST'],
  route: 'students',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  body: NewStudent,
  handler: async ({ sql, body, caller, audit, afterCommit }) => {
    // Uniqueness is the blind index's unique constraint: of two concurrent creations, one gets 409.
    const { id } = await insertUser(sql, {
      email: body.email,
      firstName: body.firstName,
      lastName: body.lastName,
      password: body.password ?? null,
      roles: ['student'],
      status: body.password === undefined ? 'pending' : 'active',
      grantedBy: caller.userId,
    });
    // Without a password the account is pending until its owner chooses one through the invitation.
    if (body.password === undefined) {
      await inviteAccount(sql, { id, email: body.email });
      afterCommit(deliverNowInDevelopment);
    }
    audit.resourceIds.id = id;
    return created(await findStudent(sql, id, ALL), `/api/students/${id}`);
  },
});

/**
 * Locks a student account for a change. Only accounts whose sole role is `student` are managed
 * here: otherwise a registrar could change the email of an administrator who also takes a course.
 */
async function lockManagedStudent(tx: TransactionSql, id: string) {
  const [row] = await tx<{ first_name_ciphertext: string; last_name_ciphertext: string; other_roles: string[] }[]>`
    select u.first_name_ciphertext, u.last_name_ciphertext,
           array(select r.role_name from user_roles r where r.user_id = u.id and r.role_name <> 'student') as other_roles
      from users u
     where u.id = ${id}
       and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')
       for update of u`;
  if (!row) throw notFound('No such student');
  if (row.other_roles.length > 0) {
    throw forbidden('This account also holds staff roles; an administrator manages it through /api/users');
  }
  return row;
}

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

endpoint({
  name: 'students-update',
  methods: ['PATCH'],
  route: 'students/{id}',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  body: StudentChange,
  handler: async ({ sql, params, body }) => {
    const current = await lockManagedStudent(sql, params.id);
    // An address another account holds violates its unique blind index: 409 (lib/users.ts EMAIL_TAKEN).
    await updateAccount(sql, params.id, current, body);
    // A locked or pending account keeps no session.
    if (body.status && body.status !== 'active') await revokeAllForUser(sql, params.id, 'admin_revoked');
    return json(await findStudent(sql, params.id, ALL));
  },
});

endpoint({
  name: 'students-deactivate',
  methods: ['POST'],
  route: 'students/{id}/deactivate',
  access: STUDENT_MANAGER_ROLES,
  phi: true,
  params: StudentParams,
  handler: async ({ sql, params, caller }) => {
    // No hard delete: the account stays with its records; it can no longer sign in or refresh.
    // Deactivating twice keeps the first deactivation's who and when.
    await lockManagedStudent(sql, params.id);
    await sql`
      update users set status = 'inactive',
                       deactivated_at = coalesce(deactivated_at, now()),
                       deactivated_by = coalesce(deactivated_by, ${caller.userId}::uuid)
       where id = ${params.id}`;
    await revokeAllForUser(sql, params.id, 'user_deactivated');
    return json(await findStudent(sql, params.id, ALL));
  },
});
