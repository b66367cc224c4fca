// Students as staff see them: accounts holding the `student` role, who may see which of them, and
// the queries of the student list. Shared by functions/students.ts, functions/enrollments.ts and
// bench/students.ts (which EXPLAINs the very query the API runs).
//
// Who sees what (one rule, applied in SQL to lists and single reads alike):
// - admin, staff, registrar: every student and enrollment;
// - instructor: the students enrolled in a programme they teach (instructor_assignments), and only
//   those enrollments; a cancelled enrollment (one that never started) does not count;
// - anyone else (a student): their own account and enrollments only.
import type postgres from 'postgres';
import { z } from 'zod';
import { type Caller, type RecordReach, type RecordScope, type Role, recordVisibleSql, scopeOf } from './access';
import { decryptRows, normalizeName } from './crypto';
import { type Sql, type TransactionSql, UUID_ARRAY } from './db';
import { badRequest, forbidden, notFound } from './errors';
import { keyset, type Page, pageOf, sealCursor, sealedCursorSchema } from './pagination';
import { revokeAllForUser } from './sessions';
import {
  type AccountChange,
  emailIndexMatches,
  type NameSearch,
  nameTokensMatch,
  toUserViews,
  type UserRow,
  type UserView,
  updateAccount,
  userColumns,
} from './users';

type Db = Sql | TransactionSql;
type Fragment = postgres.Fragment;

export const ENROLLMENT_STATUSES = ['pending', 'active', 'on_hold', 'completed', 'withdrawn', 'cancelled'] as const;
export type EnrollmentStatus = (typeof ENROLLMENT_STATUSES)[number];

/** Roles that manage students (create, change, deactivate, enroll) and see all of them. */
export const STUDENT_MANAGER_ROLES: readonly Role[] = ['admin', 'staff', 'registrar'];

/** Students and their enrollments: managers see all, instructors their programmes' students. */
export const STUDENT_REACH: RecordReach = { all: STUDENT_MANAGER_ROLES, taught: true };

export type { RecordScope };

/** The students and enrollments the caller reaches. */
export const recordScopeOf = (caller: Caller): RecordScope => scopeOf(caller, STUDENT_REACH);

/** Condition on an enrollment aliased `e`: may the scope see it? A cancelled one counts for nobody's instructor. */
export function enrollmentVisible(sql: Db, scope: RecordScope): Fragment {
  return recordVisibleSql(sql, scope, {
    owner: sql`e.user_id`,
    program: sql`e.program_id`,
    taughtWhen: sql`e.status <> 'cancelled'`,
  });
}

/** Condition on a user aliased `u`: a student the scope may see (their own, or through a visible enrollment). */
function studentVisible(sql: Db, scope: RecordScope): Fragment {
  const isStudent = sql`exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')`;
  switch (scope.kind) {
    case 'all':
      return isStudent;
    case 'own':
      return sql`u.id = ${scope.userId} and ${isStudent}`;
    case 'taught':
      return sql`${isStudent} and (u.id = ${scope.userId} or exists (
                   select 1 from enrollments e where e.user_id = u.id and ${enrollmentVisible(sql, scope)}))`;
  }
}

/** What the student list can be narrowed by; the PII filters arrive as blind-index values. */
export interface StudentFilter {
  status?: UserRow['status'] | undefined;
  programId?: string | undefined;
  enrollmentStatus?: EnrollmentStatus | undefined;
  /** Exact address, as the blind index compares it. */
  email?: string | undefined;
  name?: NameSearch | undefined;
}

function studentWhere(sql: Db, filter: StudentFilter, scope: RecordScope): Fragment {
  const byEnrollment = filter.programId !== undefined || filter.enrollmentStatus !== undefined;
  return sql`${studentVisible(sql, scope)}
    ${filter.status ? sql`and u.status = ${filter.status}` : sql``}
    ${filter.email ? sql`and ${emailIndexMatches(sql, sql`u.email_blind_index`, filter.email)}` : sql``}
    ${filter.name ? sql`and (${nameTokensMatch(sql, filter.name)})` : sql``}
    ${
      byEnrollment
        ? sql`and exists (select 1 from enrollments e
                           where e.user_id = u.id and ${enrollmentVisible(sql, scope)}
                             ${filter.programId ? sql`and e.program_id = ${filter.programId}` : sql``}
                             ${filter.enrollmentStatus ? sql`and e.status = ${filter.enrollmentStatus}` : sql``})`
        : sql``
    }`;
}

/** An enrollment as listed with its student: the programme named, dates as ISO dates. */
export interface EnrollmentSummary {
  id: string;
  status: EnrollmentStatus;
  startDate: string;
  expectedEndDate: string | null;
  program: { id: string; code: string; name: string };
}

/** The student's enrollments the scope may see, aggregated by the database in the same statement. */
function enrollmentSummaries(sql: Db, scope: RecordScope): Fragment {
  return sql`coalesce((
      select json_agg(json_build_object(
               'id', e.id, 'status', e.status, 'startDate', e.start_date, 'expectedEndDate', e.expected_end_date,
               'program', json_build_object('id', p.id, 'code', p.code, 'name', p.name))
             order by e.start_date desc, e.id)
        from enrollments e join programs p on p.id = e.program_id
       where e.user_id = u.id and ${enrollmentVisible(sql, scope)}), '[]'::json)`;
}

export interface StudentRow extends UserRow {
  enrollments: EnrollmentSummary[];
  page_key: string[];
}

/** Students in creation order (oldest first), keyset on (created_at, id): index idx_users_created. */
export const STUDENT_ORDER = keyset(
  [
    ['u.created_at', 'time'],
    ['u.id', 'uuid'],
  ],
  'asc',
);

const studentColumns = (sql: Db, scope: RecordScope) => sql`
  ${userColumns(sql)}, ${STUDENT_ORDER.key(sql)},
  ${enrollmentSummaries(sql, scope)} as enrollments`;

/**
 * One page in creation order, keyset on (created_at, id) (index idx_users_created): `limit + 1`
 * rows, the extra one only telling whether there is a next page. One statement, whatever the limit.
 */
export function studentPageQuery(
  sql: Db,
  filter: StudentFilter,
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<StudentRow[]>`
    select ${studentColumns(sql, scope)}
      from users u
     where ${studentWhere(sql, filter, scope)} and ${STUDENT_ORDER.after(sql, after)}
     ${STUDENT_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export interface NameCandidateRow {
  id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
}

/**
 * The whole filtered set, names only, at most `max + 1` rows: last names are ciphertext, so sorting
 * by them happens in-process on a set this bounded (the caller refuses when the extra row comes back).
 */
export function studentNameCandidatesQuery(sql: Db, filter: StudentFilter, scope: RecordScope, max: number) {
  return sql<NameCandidateRow[]>`
    select u.id, u.first_name_ciphertext, u.last_name_ciphertext
      from users u
     where ${studentWhere(sql, filter, scope)}
     limit ${max + 1}`;
}

/** Full rows of the given students (in no particular order), still under the filter and scope. */
export function studentsByIdsQuery(sql: Db, ids: readonly string[], filter: StudentFilter, scope: RecordScope) {
  return sql<StudentRow[]>`
    select ${studentColumns(sql, scope)}
      from users u
     where u.id = any(${sql.array([...ids], UUID_ARRAY)}) and ${studentWhere(sql, filter, scope)}`;
}

export interface StudentView extends UserView {
  enrollments: EnrollmentSummary[];
}

/** Decrypts a page of students in one in-process pass. */
export function toStudentViews(rows: readonly StudentRow[]): StudentView[] {
  const users = toUserViews(rows);
  return users.map((user, i) => ({ ...user, enrollments: (rows[i] as StudentRow).enrollments }));
}

/** One student the scope may see, or null. */
export async function findStudent(sql: Db, id: string, scope: RecordScope): Promise<StudentView | null> {
  return toStudentViews(await studentsByIdsQuery(sql, [id], {}, scope))[0] ?? null;
}

// ---------------------------------------------------------------------------------------------------
// The student list, in creation order or by last name
// ---------------------------------------------------------------------------------------------------

/** Largest filtered set `sort=lastName` sorts in-process (its names are decrypted for every page). */
export const LAST_NAME_SORT_MAX = 1000;

/** The last-name order's key: normalised last name, first name, id. */
const lastNameKey = z.tuple([z.string(), z.string(), z.uuid()]);
type LastNameKey = z.infer<typeof lastNameKey>;

/** Its cursor holds names: sealed, so no name reaches a URL or a log. */
const CURSOR_FIELD = 'students.cursor';
export const LAST_NAME_CURSOR = sealedCursorSchema(lastNameKey, CURSOR_FIELD);

export type StudentListOrder =
  | { sort: 'created'; after?: readonly [string, string] | undefined }
  | { sort: 'lastName'; after?: LastNameKey | undefined };

/** The order asked for, with its cursor parsed by that order's schema (or why the cursor is refused). */
export function studentListOrder(
  sort: StudentListOrder['sort'],
  cursor: string | undefined,
): StudentListOrder | { refused: string } {
  const parsed = sort === 'lastName' ? LAST_NAME_CURSOR.safeParse(cursor) : STUDENT_ORDER.cursor.safeParse(cursor);
  if (!parsed.success) return { refused: parsed.error.issues[0]?.message ?? 'Not a cursor this list gave out' };
  return { sort, after: parsed.data } as StudentListOrder;
}

const compareKeys = (a: LastNameKey, b: LastNameKey): number => {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return (a[i] as string) < (b[i] as string) ? -1 : 1;
  }
  return 0;
};

async function pageByLastName(
  sql: Db,
  filter: StudentFilter,
  scope: RecordScope,
  after: LastNameKey | undefined,
  limit: number,
  where: 'query' | 'body',
): Promise<Page<StudentView>> {
  const candidates = await studentNameCandidatesQuery(sql, filter, scope, LAST_NAME_SORT_MAX);
  if (candidates.length > LAST_NAME_SORT_MAX) {
    const message = `Sorting by last name works on at most ${LAST_NAME_SORT_MAX} students: narrow the list by name, programId, enrollmentStatus or status, or sort by creation`;
    throw badRequest(message, [{ field: `${where}.sort`, message }]);
  }
  const ordered = decryptRows(candidates, {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  })
    .filter(
      (row) =>
        filter.name?.matches({ firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext }) ?? true,
    )
    .map(
      (row): LastNameKey => [normalizeName(row.last_name_ciphertext), normalizeName(row.first_name_ciphertext), row.id],
    )
    .sort(compareKeys)
    .filter((key) => !after || compareKeys(key, after) > 0);
  const served = ordered.slice(0, limit);
  const rows = served.length
    ? await studentsByIdsQuery(
        sql,
        served.map((key) => key[2]),
        filter,
        scope,
      )
    : [];
  const byId = new Map(toStudentViews(rows).map((view) => [view.id, view]));
  const last = served[served.length - 1];
  return {
    // A student changed between the two statements so that they left the set is simply not served.
    items: served.map((key) => byId.get(key[2])).filter((view): view is StudentView => view !== undefined),
    next: ordered.length > limit && last ? sealCursor(last, CURSOR_FIELD) : null,
  };
}

/**
 * A page of the students the scope may see. In creation order it is one keyset statement, and a
 * name search may make the page short (the rule is pageOf's); by last name the whole filtered set
 * (at most LAST_NAME_SORT_MAX) is sorted in-process, so every page is full.
 */
export async function listStudents(
  sql: Db,
  filter: StudentFilter,
  scope: RecordScope,
  order: StudentListOrder,
  limit: number,
  /** Where the filters came from, to name `sort` when the set is too large to sort. */
  where: 'query' | 'body',
): Promise<Page<StudentView>> {
  if (order.sort === 'lastName') return pageByLastName(sql, filter, scope, order.after, limit, where);
  const rows = await studentPageQuery(sql, filter, scope, order.after, limit);
  return pageOf(rows, limit, toStudentViews, (student) => filter.name?.matches(student) ?? true);
}

// ---------------------------------------------------------------------------------------------------
// Changing a student's account
// ---------------------------------------------------------------------------------------------------

/**
 * Locks a student account for a change. Only accounts whose sole role is `student` are managed
 * here: otherwise a registrar could change the email of an administrator who also takes a course.
 */
export async function lockManagedStudent(tx: TransactionSql, id: string) {
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

/**
 * Changes a student's account under lockManagedStudent's row lock. An address another account holds
 * violates its unique blind index: 409 (lib/users.ts EMAIL_TAKEN). A locked or pending account keeps
 * no session.
 */
export async function changeStudentAccount(tx: TransactionSql, id: string, change: AccountChange): Promise<void> {
  const current = await lockManagedStudent(tx, id);
  await updateAccount(tx, id, current, change);
  if (change.status && change.status !== 'active') await revokeAllForUser(tx, id, 'admin_revoked');
}
