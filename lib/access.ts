// Who may do what: the roles, the caller a token establishes, and the object-level rules
// (a student reaches only their own records; staff roles reach what their role covers). Handlers
// ask these functions instead of writing their own checks, so each rule lives in one place.
import type postgres from 'postgres';
import type { Sql, TransactionSql } from './db';
import { forbidden, notFound } from './errors';

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
  sessionId?: string; // the refresh-token family (session) the access token came from, if any
}

export function hasAnyRole(caller: Pick<Caller, 'roles'>, roles: readonly Role[]): boolean {
  return caller.roles.some((role) => roles.includes(role));
}

/**
 * A record that belongs to `ownerId` may be reached by its owner or by one of `staffRoles`.
 * Anyone else gets a 404, not a 403: whether someone else's record exists is not theirs to learn.
 */
export function assertOwnerOrRoles(caller: Caller, ownerId: string, staffRoles: readonly Role[]): void {
  if (caller.userId === ownerId) return;
  if (hasAnyRole(caller, staffRoles)) return;
  throw notFound();
}

/** The caller must hold one of `roles` (for actions inside a route open to several roles). */
export function assertRoles(caller: Caller, roles: readonly Role[]): void {
  if (!hasAnyRole(caller, roles)) throw forbidden();
}

// ---------------------------------------------------------------------------------------------------
// Teaching assignments (instructor_assignments)
// ---------------------------------------------------------------------------------------------------

/**
 * "The caller is an instructor assigned to this programme", as a SQL condition to put inside the
 * query that reads or writes the record, so the check costs no round trip of its own and cannot go
 * stale between a check and a write. `programId` is a uuid value or a column of the enclosing query
 * (`sql\`e.program_id\``). Always false for a caller without the instructor role: an assignment left
 * behind when the role was withdrawn grants nothing.
 */
export function teachesProgramSql(
  sql: Sql | TransactionSql,
  caller: Pick<Caller, 'userId' | 'roles'>,
  programId: string | postgres.Fragment,
): postgres.Fragment {
  if (!hasAnyRole(caller, ['instructor'])) return sql`false`;
  return sql`exists (select 1 from instructor_assignments ia
                      where ia.instructor_id = ${caller.userId} and ia.program_id = ${programId})`;
}

/** The same rule as a question of its own, for a handler that must decide before it writes. */
export async function teachesProgram(
  sql: Sql | TransactionSql,
  caller: Pick<Caller, 'userId' | 'roles'>,
  programId: string,
): Promise<boolean> {
  if (!hasAnyRole(caller, ['instructor'])) return false;
  const [row] = await sql<{ teaches: boolean }[]>`select ${teachesProgramSql(sql, caller, programId)} as teaches`;
  return row?.teaches === true;
}
