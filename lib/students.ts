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
import { type Caller, hasAnyRole, type Role, teachesProgramSql } from './access';
import { BYTEA_ARRAY, type Sql, type TransactionSql, UUID_ARRAY } from './db';
import { toUserViews, type UserRow, type UserView, userColumns } from './users';

type Db = Sql | TransactionSql;
type Fragment = postgres.Fragment;

export const ENROLLMENT_STATUSES = ['pending', 'active', 'on_hold', 'completed', 'withdrawn', 'cancelled'] as const;
export type EnrollmentStatus = (typeof ENROLLMENT_STATUSES)[number];

/** Roles that manage students (create, change, deactivate, enroll) and see all of them. */
export const STUDENT_MANAGER_ROLES: readonly Role[] = ['admin', 'staff', 'registrar'];

export type RecordScope =
  | { kind: 'all' }
  /** An instructor: students and enrollments of the programmes they teach, and their own. */
  | { kind: 'taught-by'; instructorId: string }
  | { kind: 'own'; userId: string };

export function recordScopeOf(caller: Caller): RecordScope {
  if (hasAnyRole(caller, STUDENT_MANAGER_ROLES)) return { kind: 'all' };
  if (hasAnyRole(caller, ['instructor'])) return { kind: 'taught-by', instructorId: caller.userId };
  return { kind: 'own', userId: caller.userId };
}

/** Condition on an enrollment aliased `e`: may the scope see it? */
export function enrollmentVisible(sql: Db, scope: RecordScope): Fragment {
  switch (scope.kind) {
    case 'all':
      return sql`true`;
    case 'own':
      return sql`e.user_id = ${scope.userId}`;
    case 'taught-by':
      return sql`(e.user_id = ${scope.instructorId}
                  or (e.status <> 'cancelled'
                      and ${teachesProgramSql(sql, { userId: scope.instructorId, roles: ['instructor'] }, sql`e.program_id`)}))`;
  }
}

/** Condition on a user aliased `u`: a student the scope may see. */
function studentVisible(sql: Db, scope: RecordScope): Fragment {
  const isStudent = sql`exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')`;
  switch (scope.kind) {
    case 'all':
      return isStudent;
    case 'own':
      return sql`u.id = ${scope.userId} and ${isStudent}`;
    case 'taught-by':
      return sql`${isStudent} and (u.id = ${scope.instructorId} or exists (
                   select 1 from enrollments e where e.user_id = u.id and ${enrollmentVisible(sql, scope)}))`;
  }
}

/** What the student list can be narrowed by; the PII filters arrive as blind-index values. */
export interface StudentFilter {
  status?: UserRow['status'] | undefined;
  programId?: string | undefined;
  enrollmentStatus?: EnrollmentStatus | undefined;
  emailBlindIndex?: Buffer | undefined;
  /** One token per typed name word: the student's names must have a word starting with each. */
  nameTokens?: readonly Buffer[] | undefined;
}

function studentWhere(sql: Db, filter: StudentFilter, scope: RecordScope): Fragment {
  const byEnrollment = filter.programId !== undefined || filter.enrollmentStatus !== undefined;
  return sql`${studentVisible(sql, scope)}
    ${filter.status ? sql`and u.status = ${filter.status}` : sql``}
    ${filter.emailBlindIndex ? sql`and u.email_blind_index = ${filter.emailBlindIndex}` : sql``}
    ${filter.nameTokens?.length ? sql`and u.name_search_tokens @> ${sql.array([...filter.nameTokens], BYTEA_ARRAY)}` : sql``}
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
  /** created_at to the microsecond, as text: the keyset cursor (a JS Date would drop microseconds). */
  created_key: string;
  enrollments: EnrollmentSummary[];
}

const studentColumns = (sql: Db, scope: RecordScope) => sql`
  ${userColumns(sql)},
  to_char(u.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_key,
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
  // The key goes in as text: postgres.js would send a timestamptz parameter through a JS Date,
  // dropping the microseconds, and the last row of a page would come back on the next one.
  return sql<StudentRow[]>`
    select ${studentColumns(sql, scope)}
      from users u
     where ${studentWhere(sql, filter, scope)}
       ${after ? sql`and (u.created_at, u.id) > (${after[0]}::text::timestamptz, ${after[1]}::uuid)` : sql``}
     order by u.created_at, u.id
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
