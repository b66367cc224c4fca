// Enrollments as staff and students see them, and the queries that read them. Shared by
// functions/enrollments.ts and the benchmark, which EXPLAINs the very list query the API runs.
// Who sees which enrollment is lib/students.ts enrollmentVisible, applied inside every query.
import { decryptRows } from './crypto';
import type { AnySql } from './db';
import { declareConstraints } from './errors';
import { keyset } from './pagination';
import { type EnrollmentStatus, enrollmentVisible, type RecordScope } from './students';

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
