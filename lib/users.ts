// People: accounts with encrypted names and email, a blind index for lookups and uniqueness,
// and their roles. Shared by sign-in, the admin user endpoints and the student endpoints.
import type postgres from 'postgres';
import type { Role } from './access';
import { decryptRows, emailBlindIndex, encrypt, nameSearchTokens } from './crypto';
import { BYTEA_ARRAY, TEXT_ARRAY } from './db';
import { conflict } from './errors';
import { hashPassword } from './passwords';

type Sql = postgres.Sql | postgres.TransactionSql;

export const USER_STATUSES = ['active', 'inactive', 'locked', 'pending'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export interface NewUser {
  email: string;
  firstName: string;
  lastName: string;
  /** Plaintext password to hash, or null for an account activated later. */
  password: string | null;
  roles: readonly Role[];
  status?: UserStatus;
  grantedBy?: string | null;
}

/**
 * Creates an account and its roles in one statement. Email uniqueness is the database's unique
 * blind index, so two concurrent sign-ups with one address cannot both succeed: the loser gets 409.
 */
export async function insertUser(sql: Sql, user: NewUser): Promise<{ id: string }> {
  const passwordHash = user.password === null ? null : await hashPassword(user.password);
  const [row] = await sql<{ id: string }[]>`
    with created as (
      insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext,
                         name_search_tokens, password_hash, status)
      values (${encrypt(user.email.trim(), 'users.email')}, ${emailBlindIndex(user.email)},
              ${encrypt(user.firstName, 'users.first_name')}, ${encrypt(user.lastName, 'users.last_name')},
              ${sql.array(nameSearchTokens(user.firstName, user.lastName), BYTEA_ARRAY)}, ${passwordHash},
              ${user.status ?? 'active'})
      on conflict (email_blind_index) do nothing
      returning id),
    granted as (
      insert into user_roles (user_id, role_name, granted_by)
      select created.id, role, ${user.grantedBy ?? null}::uuid
        from created, unnest(${sql.array([...user.roles], TEXT_ARRAY)}::text[]) as role)
    select id from created`;
  if (!row) throw conflict('An account with this email address already exists');
  return row;
}

export interface UserRow {
  id: string;
  email_ciphertext: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  status: UserStatus;
  roles: Role[];
  created_at: Date;
  updated_at: Date;
  deactivated_at: Date | null;
}

export interface UserView {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  status: UserStatus;
  roles: Role[];
  createdAt: string;
  updatedAt: string;
  deactivatedAt: string | null;
}

/** Columns every user query selects, roles aggregated in the same round trip. */
export const userColumns = (sql: Sql) => sql`
  u.id, u.email_ciphertext, u.first_name_ciphertext, u.last_name_ciphertext, u.status,
  u.created_at, u.updated_at, u.deactivated_at,
  coalesce((select array_agg(ur.role_name order by ur.role_name) from user_roles ur where ur.user_id = u.id),
           '{}') as roles`;

/** Decrypts a page of users in one in-process pass. */
export function toUserViews(rows: readonly UserRow[]): UserView[] {
  return decryptRows(rows, {
    email_ciphertext: 'users.email',
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  }).map((row) => ({
    id: row.id,
    email: row.email_ciphertext,
    firstName: row.first_name_ciphertext,
    lastName: row.last_name_ciphertext,
    status: row.status,
    roles: row.roles,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    deactivatedAt: row.deactivated_at?.toISOString() ?? null,
  }));
}

export async function findUserById(sql: Sql, id: string): Promise<UserView | null> {
  const rows = await sql<UserRow[]>`select ${userColumns(sql)} from users u where u.id = ${id}`;
  return toUserViews(rows)[0] ?? null;
}
