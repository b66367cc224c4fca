// What staff do to accounts (functions/users.ts, and functions/students.ts for student accounts):
// create one (active with a password, or pending with an invitation), change one under the
// last-administrator guard, deactivate it, grant and remove roles, and read the role catalogue. The
// account's own columns (insert, update, views, the list) are lib/users.ts; this module adds the steps
// that go with them (invitations, sessions, the guard).
//
// Sessions: deactivation, locking and role changes end the person's refresh tokens, so new roles (or no
// access at all) apply at their next refresh.
import type { Role } from './access';
import { inviteAccount } from './account-links';
import type { AnySql, TransactionSql } from './db';
import { conflict, notFound } from './errors';
import { revokeAllForUser } from './sessions';
import {
  type AccountChange,
  insertUser,
  toUserViews,
  type UserRow,
  type UserView,
  updateAccount,
  userColumns,
} from './users';

export interface NewAccount {
  email: string;
  firstName: string;
  lastName: string;
  /** Without a password the account is `pending` until its owner chooses one through the invitation. */
  password?: string | undefined;
  roles: readonly Role[];
}

/**
 * Creates an account with its roles; one without a password is pending and gets an invitation (queued
 * in the same transaction: `invited` tells the caller to deliver it after commit). Uniqueness is the
 * blind index's unique constraint: of two concurrent creations, one gets 409.
 */
export async function createAccount(
  tx: TransactionSql,
  account: NewAccount,
  grantedBy: string,
): Promise<{ id: string; invited: boolean }> {
  const invited = account.password === undefined;
  const { id } = await insertUser(tx, {
    email: account.email,
    firstName: account.firstName,
    lastName: account.lastName,
    password: account.password ?? null,
    roles: account.roles,
    status: invited ? 'pending' : 'active',
    grantedBy,
  });
  if (invited) await inviteAccount(tx, { id, email: account.email });
  return { id, invited };
}

/** Serialises every change that could remove the last active administrator (one lock, no deadlocks). */
const ADMIN_SET_LOCK = 0x41414441; // "AADA"

/**
 * Refuses a change that would leave the school without an active administrator: taking `userId`
 * out of the active admins (deactivating, locking, removing the role) while they are the last one.
 * Runs inside the caller's transaction after taking the admin-set lock, so two administrators
 * removing each other at the same moment cannot both succeed: the second one sees the first change.
 */
async function assertAnotherActiveAdminRemains(tx: TransactionSql, userId: string): Promise<void> {
  await tx`select pg_advisory_xact_lock(${ADMIN_SET_LOCK})`;
  const [admins] = await tx<{ target: boolean | null; others: number }[]>`
    select bool_or(u.id = ${userId}) as target, count(*) filter (where u.id <> ${userId})::int as others
      from users u join user_roles r on r.user_id = u.id and r.role_name = 'admin'
     where u.status = 'active'`;
  if (admins?.target && admins.others === 0) {
    throw conflict('This is the last active administrator; make someone else an administrator first');
  }
}

interface PatchTarget {
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  has_password: boolean;
}

/**
 * Applies an administrator's change inside the request's transaction, under a row lock (updateAccount
 * re-tokenises the names from both). Locking takes the account's sessions; activating needs a
 * password. Null when there is no such account.
 */
export async function patchAccount(tx: TransactionSql, id: string, patch: AccountChange): Promise<UserView | null> {
  // The admin-set lock before the row lock: the order every admin-reducing change takes them in.
  if (patch.status === 'locked') await assertAnotherActiveAdminRemains(tx, id);
  const [current] = await tx<PatchTarget[]>`
    select first_name_ciphertext, last_name_ciphertext, password_hash is not null as has_password
      from users where id = ${id} for update`;
  if (!current) return null;
  if (patch.status === 'active' && !current.has_password) {
    throw conflict('This account has no password yet; it stays pending until its owner sets one');
  }
  const row = await updateAccount(tx, id, current, patch);
  if (patch.status === 'locked') await revokeAllForUser(tx, id, 'admin_revoked');
  return toUserViews(row ? [row] : [])[0] ?? null;
}

/**
 * Deactivates an account and ends its sessions; undefined when there is no such account. No hard
 * delete: the account stays with its records; it can no longer sign in or refresh. Deactivating twice
 * keeps the first date and author.
 */
export async function deactivateUser(tx: TransactionSql, id: string, by: string): Promise<UserRow | undefined> {
  const [row] = await tx<UserRow[]>`
    update users as u set status = 'inactive',
           deactivated_at = coalesce(u.deactivated_at, now()),
           deactivated_by = coalesce(u.deactivated_by, ${by}::uuid)
     where u.id = ${id}
    returning ${userColumns(tx)}`;
  if (row) await revokeAllForUser(tx, id, 'user_deactivated');
  return row;
}

/** deactivateUser under the last-administrator guard; 404 for no such account. */
export async function deactivateAccount(tx: TransactionSql, id: string, by: string): Promise<UserView> {
  await assertAnotherActiveAdminRemains(tx, id);
  const row = await deactivateUser(tx, id, by);
  if (!row) throw notFound('No such user');
  return toUserViews([row])[0] as UserView;
}

/**
 * Grants a role (idempotent; 404 for no such account) and, only when something changed, ends the
 * person's sessions, in one statement. True when the role was newly granted.
 */
export async function grantRole(sql: AnySql, userId: string, role: Role, grantedBy: string): Promise<boolean> {
  const [result] = await sql<{ found: boolean; granted: boolean }[]>`
    with target as (select id from users where id = ${userId}),
    granted as (
      insert into user_roles (user_id, role_name, granted_by)
      select id, ${role}, ${grantedBy}::uuid from target
      on conflict (user_id, role_name) do nothing
      returning user_id),
    revoked as (
      update refresh_tokens set revoked_at = now(), revoke_reason = 'roles_changed'
       where user_id in (select user_id from granted) and revoked_at is null)
    select exists (select 1 from target) as found, exists (select 1 from granted) as granted`;
  if (!result?.found) throw notFound('No such user');
  return result.granted;
}

/**
 * Removes a role (404 for no such account; the admin role under the last-administrator guard) and,
 * when it was held, ends the person's sessions. True when the role was held.
 */
export async function removeRole(tx: TransactionSql, userId: string, role: Role): Promise<boolean> {
  const [target] = await tx`select 1 from users where id = ${userId}`;
  if (!target) throw notFound('No such user');
  if (role === 'admin') await assertAnotherActiveAdminRemains(tx, userId);
  const removed = await tx`delete from user_roles where user_id = ${userId} and role_name = ${role} returning 1`;
  if (removed.length === 0) return false;
  await revokeAllForUser(tx, userId, 'roles_changed');
  return true;
}

/** The fixed role catalogue (eight rows), by name. */
export function listRoles(sql: AnySql) {
  return sql<{ name: Role; description: string }[]>`select name, description from roles order by name`;
}
