// Who reaches an enrollment's module progress, as conditions on the enrollment (aliased `e`) that
// functions/progress.ts puts inside the very statement that reads or writes the progress. Progress is
// an education record: the student reads and reports their own; an instructor reads and grades the
// enrollments of the programmes they teach; an admin grades any; the registrar reads any, because
// transcripts and credentials are issued from it (docs/access-policy.md, decision 3).
import type postgres from 'postgres';
import {
  type Caller,
  programReachedSql,
  type RecordReach,
  type RecordScope,
  recordVisibleSql,
  scopeOf,
} from './access';
import type { AnySql } from './db';

/** Who reads an enrollment's progress beyond its student. */
export const PROGRESS_READ_REACH: RecordReach = { all: ['admin', 'registrar'], taught: true };
/** Who grades and corrects it (any direction, scores, failed/passed). */
export const PROGRESS_GRADE_REACH: RecordReach = { all: ['admin'], taught: true };

export const progressReadScope = (caller: Caller): RecordScope => scopeOf(caller, PROGRESS_READ_REACH);
export const progressGradeScope = (caller: Caller): RecordScope => scopeOf(caller, PROGRESS_GRADE_REACH);

/** May the scope read the progress of enrollment `e`? */
export function progressVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return recordVisibleSql(sql, scope, { owner: sql`e.user_id`, program: sql`e.program_id` });
}

/**
 * May the scope grade enrollment `e`? Not merely because it is the caller's own: a student who also
 * holds a grading role reports on their own enrollment as a student.
 */
export function progressGradable(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return programReachedSql(sql, scope, sql`e.program_id`);
}
