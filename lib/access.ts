// Who may do what: the roles, the caller a token establishes, and the one object-level mechanism
// (which records of a type a caller reaches: every record, the programmes they teach, or their own).
// The school's intent is written in docs/access-policy.md and the tests check the code against it.
import type postgres from 'postgres';
import type { AnySql } from './db';

export const ROLES = [
  'admin',
  'staff',
  'instructor',
  'registrar',
  'finance',
  'student',
  'admissions_counselor',
  'admissions_manager',
] as const;
export type Role = (typeof ROLES)[number];

/** Staff roles that see student records in the course of their work. */
export const STUDENT_RECORD_ROLES: readonly Role[] = ['admin', 'staff', 'registrar', 'instructor'];

/** Who is calling: established by the access token, without a database round trip. */
export interface Caller {
  userId: string;
  roles: readonly Role[];
  /** The access token's id (jti), for the audit trail. */
  tokenId: string;
  /** The refresh-token family (session) the access token came from: every token has one. */
  sessionId: string;
}

export function hasAnyRole(caller: Pick<Caller, 'roles'>, roles: readonly Role[]): boolean {
  return caller.roles.some((role) => roles.includes(role));
}

// ---------------------------------------------------------------------------------------------------
// Object-level access: which records of a type a caller reaches
// ---------------------------------------------------------------------------------------------------
//
// One mechanism for every record type, and it runs inside the query that reads or writes the record,
// so it costs no round trip of its own and cannot go stale between a check and a write. A record type
// declares its reach (who sees every record, whether instructors see their programmes'); the request's
// scope is derived from the caller once (scopeOf); the record type's lib module turns the scope into
// one SQL condition on its own columns (through recordVisibleSql). Someone else's record is then
// simply not found: a 404, never a 403, since its existence is not the caller's to learn.

/** What a record type grants beyond its owner. */
export interface RecordReach {
  /** Roles that reach every record of the type. */
  all: readonly Role[];
  /** Whether an instructor reaches the records of the programmes they are assigned to teach. */
  taught: boolean;
}

/** The records of one type a caller reaches. */
export type RecordScope =
  | { kind: 'all' }
  /** An instructor: the records of the programmes they teach, and their own. */
  | { kind: 'taught'; userId: string }
  | { kind: 'own'; userId: string };

export function scopeOf(caller: Pick<Caller, 'userId' | 'roles'>, reach: RecordReach): RecordScope {
  if (hasAnyRole(caller, reach.all)) return { kind: 'all' };
  if (reach.taught && hasAnyRole(caller, ['instructor'])) return { kind: 'taught', userId: caller.userId };
  return { kind: 'own', userId: caller.userId };
}

/**
 * "The scope reaches this programme's records whoever owns them": every programme for `all`, the
 * programmes taught (instructor_assignments) for `taught`, none for `own`. `programId` is a uuid value
 * or a column of the enclosing query (`sql\`e.program_id\``).
 */
export function programReachedSql(
  sql: AnySql,
  scope: RecordScope,
  programId: string | postgres.Fragment,
): postgres.Fragment {
  switch (scope.kind) {
    case 'all':
      return sql`true`;
    case 'own':
      return sql`false`;
    case 'taught':
      return sql`exists (select 1 from instructor_assignments ia
                          where ia.instructor_id = ${scope.userId} and ia.program_id = ${programId})`;
  }
}

/** The same question for one programme, for a handler that must decide before it writes. */
export async function reachesProgram(sql: AnySql, scope: RecordScope, programId: string): Promise<boolean> {
  const [row] = await sql<{ reached: boolean }[]>`select ${programReachedSql(sql, scope, programId)} as reached`;
  return row?.reached === true;
}

/**
 * The visibility condition of a record owned by the user in column `owner`, belonging to the
 * programme in column `program`: every record, the caller's own, or (taught) also those of the
 * programmes taught for which `taughtWhen` holds (e.g. an enrollment that was not cancelled).
 */
export function recordVisibleSql(
  sql: AnySql,
  scope: RecordScope,
  columns: { owner: postgres.Fragment; program: postgres.Fragment; taughtWhen?: postgres.Fragment },
): postgres.Fragment {
  switch (scope.kind) {
    case 'all':
      return sql`true`;
    case 'own':
      return sql`${columns.owner} = ${scope.userId}`;
    case 'taught':
      return sql`(${columns.owner} = ${scope.userId}
                  or (${columns.taughtWhen ?? sql`true`} and ${programReachedSql(sql, scope, columns.program)}))`;
  }
}

/**
 * Course content (lessons, files, activities) belongs to a programme, not to a person: a scope reads a
 * programme's content where it reaches the programme (every one, or those taught) and, for `own` (a
 * student), where the caller studies in it now: an active or on-hold enrollment (a student on leave
 * keeps their course; one who completed, withdrew or was cancelled no longer reads it).
 */
export function programContentReadableSql(
  sql: AnySql,
  scope: RecordScope,
  programId: string | postgres.Fragment,
): postgres.Fragment {
  if (scope.kind !== 'own') return programReachedSql(sql, scope, programId);
  return sql`exists (select 1 from enrollments ce
                      where ce.user_id = ${scope.userId} and ce.program_id = ${programId}
                        and ce.status in ('active', 'on_hold'))`;
}
