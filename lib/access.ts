// Who may do what: the roles, the caller a token establishes, and the object-level rules
// (a student reaches only their own records; staff roles reach what their role covers). Handlers
// ask these functions instead of writing their own checks, so each rule lives in one place.
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
}

export function hasAnyRole(caller: Caller, roles: readonly Role[]): boolean {
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
