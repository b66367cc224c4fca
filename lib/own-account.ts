// The caller's own account, as sign-in and the profile routes (functions/auth.ts) reach it: the
// account behind an email's blind index with its password hash, a hash upgrade, the profile's names and
// a password change. Account columns and views are lib/users.ts.
import type { AnySql, TransactionSql } from './db';
import { hashPassword } from './passwords';
import { emailIndexMatches, type UserRow, updateAccount, userColumns } from './users';

export interface SignInAccount extends UserRow {
  password_hash: string | null;
}

/** The account of an email (its blind index under any index key), with its password hash; undefined for none. */
export async function findSignInAccount(sql: AnySql, email: string): Promise<SignInAccount | undefined> {
  const [row] = await sql<SignInAccount[]>`
    select ${userColumns(sql)}, u.password_hash from users u
     where ${emailIndexMatches(sql, sql`u.email_blind_index`, email)}`;
  return row;
}

/** Replaces a legacy bcrypt (or weaker Argon2) hash; skipped if the password changed meanwhile. */
export async function upgradePasswordHash(sql: AnySql, account: SignInAccount, password: string): Promise<void> {
  await sql`update users set password_hash = ${await hashPassword(password)}
             where id = ${account.id} and password_hash = ${account.password_hash}`;
}

/**
 * Changes the names of an active account (the search tokens cover both, so the row is locked and the
 * other name read first: lib/users.ts updateAccount). Undefined when the account is not active.
 */
export async function updateOwnNames(
  tx: TransactionSql,
  userId: string,
  names: { firstName?: string | undefined; lastName?: string | undefined },
): Promise<UserRow | undefined> {
  const [current] = await tx<{ first_name_ciphertext: string; last_name_ciphertext: string }[]>`
    select first_name_ciphertext, last_name_ciphertext from users where id = ${userId} and status = 'active'
       for update`;
  if (!current) return undefined;
  return updateAccount(tx, userId, current, { firstName: names.firstName, lastName: names.lastName });
}

export interface PasswordAccount {
  password_hash: string | null;
  email_blind_index: Buffer;
  email_ciphertext: string;
  status: string;
}

/** What a password change checks against: the hash, the throttle's key, the address and the status. */
export async function findPasswordAccount(sql: AnySql, userId: string): Promise<PasswordAccount | undefined> {
  const [account] = await sql<PasswordAccount[]>`
    select password_hash, email_blind_index, email_ciphertext, status from users where id = ${userId}`;
  return account;
}

/** Stores a new password's hash. */
export async function setPassword(sql: AnySql, userId: string, password: string): Promise<void> {
  const hash = await hashPassword(password);
  await sql`update users set password_hash = ${hash} where id = ${userId}`;
}
