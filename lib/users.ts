// People: accounts with encrypted names and email, a blind index for lookups and uniqueness,
// and their roles. Shared by sign-in, the admin user endpoints and the student endpoints.
//
// Why one file over 350 lines: every route and command that creates, changes or finds a person goes
// through here (the name and email rules, the search tokens, create, update, the list), so there is one
// rule for each; they share the encrypted columns and blind indexes.
import type postgres from 'postgres';
import { z } from 'zod';
import { ROLES, type Role } from './access';
import {
  decrypt,
  decryptRows,
  emailBlindIndex,
  emailBlindIndexes,
  encrypt,
  nameSearchToken,
  nameSearchTokenSets,
  nameSearchTokens,
  normalizeEmail,
  normalizeName,
} from './crypto';
import { BYTEA_ARRAY, TEXT_ARRAY } from './db';
import { constraintProblem, declareConstraints } from './errors';
import { keyset, type Page, pageOf } from './pagination';
import { checkPasswordPolicy } from './password-policy';
import { hashPassword, PASSWORD_MAX_LENGTH } from './passwords';
import { singleLine } from './text';

type Sql = postgres.Sql | postgres.TransactionSql;

/** The unique blind index of account emails: one account per address. */
const EMAIL_TAKEN = 'users_email_blind_index_key';

declareConstraints({
  [EMAIL_TAKEN]: { status: 409, field: 'body.email', message: 'An account with this email address already exists' },
});

// ---------------------------------------------------------------------------------------------------
// What a person's name and email address may be: one rule for every route and command that takes them
// ---------------------------------------------------------------------------------------------------

/** Read before any normalising work; the real limits are checked on the normalised value. */
const RAW_INPUT_MAX = 1_000;

/**
 * A person's name: free text by the shared rule (lib/text.ts: NFC, trimmed, 1 to 100 characters, no
 * control or invisible characters, the zero-width (non-)joiners only inside words of the scripts that
 * need them, a bound on stacked marks), and within it letters of any script with their marks, spaces,
 * apostrophes (' and ’), hyphens and periods ("O'Brien", "Mary-Jane", "J. R.", "Nguyễn", "'t Hooft").
 * Digits, brackets, quotes, semicolons and angle brackets are refused (SQL and markup fragments never
 * reach storage), and so is a leading hyphen or period (a spreadsheet would read a formula).
 */
export const PersonName = singleLine(100, {
  pattern: {
    regex: /^['\u2019]?\p{L}(?:[\p{L}\p{M} '\u2019.-]|[\u200C\u200D](?=\p{L}))*$/u,
    message: 'Use letters, spaces, apostrophes, hyphens and periods only',
  },
});

/**
 * Invisible and control characters (zero-width joiners and spaces, bidirectional overrides, BOM,
 * NUL, line separators) are never part of an address anyone types: refusing them stops look-alike
 * addresses at the door, before trimming could hide them.
 */
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/**
 * An email address as the person typed it, refused if it holds invisible or control characters, then
 * normalised as the blind index compares addresses (lib/crypto normalizeEmail: NFKC, trimmed, lower
 * case). NFKC folds compatibility forms (fullwidth `ａｄｍｉｎ@…`) into the address they spell, so they
 * reach that same account and never a different one.
 */
const emailInput = z
  .string()
  .max(RAW_INPUT_MAX)
  .refine((value) => !INVISIBLE_OR_CONTROL.test(value), 'Must not contain invisible or control characters')
  .transform(normalizeEmail);

/**
 * An address to store (an account, a registration): normalised as above and held to zod's address
 * syntax, at most 254 characters. That syntax is ASCII, so look-alike letters of other scripts
 * (Cyrillic `а`) are refused instead of creating a second account for "the same" address.
 */
export const EmailAddress = emailInput.pipe(z.email('Enter an email address').max(254));

/**
 * An address to look an account up by (sign-in, the exact-address filter of the user list): normalised
 * like a stored one, but with no syntax rule beyond its length, because an address that is not
 * well-formed simply finds no account, and a sign-in must answer the same for it as for any unknown one.
 */
export const EmailLookup = emailInput.pipe(z.string().min(1, 'Enter an email address').max(254));

const NAME_WORDS_MAX = 4;

/** A typed name search: the tokens the index narrows by, and the check on the decrypted names. */
export interface NameSearch {
  /**
   * Per index key (lib/crypto.ts nameSearchTokenSets), one token per typed word long enough to have one
   * (an initial only filters the decrypted rows); more than one list while the index key rotates.
   */
  tokenSets: Buffer[][];
  /**
   * A prefix token covers the first NAME_PREFIX_MAX characters of a word, so longer searches (and
   * the rare truncated-HMAC collision) are settled here: every typed word must begin one of the
   * person's name words.
   */
  matches(person: { firstName: string; lastName: string }): boolean;
}

const nameWords = (name: string) => normalizeName(name).split(' ').filter(Boolean);

/**
 * `name=` of a people search (users and students alike): up to NAME_WORDS_MAX name beginnings, one
 * of at least two letters (`chlo`, `chlo gar`, `j garcia`); accents and case do not matter.
 */
export const NameSearchInput = singleLine(100)
  .transform(nameWords)
  .refine(
    (words) => words.length <= NAME_WORDS_MAX && words.some((word) => nameSearchToken(word) !== null),
    `Type up to ${NAME_WORDS_MAX} name beginnings, one of at least 2 letters`,
  )
  .transform(
    (words): NameSearch => ({
      tokenSets: nameSearchTokenSets(words),
      matches: (person) => {
        const own = [...nameWords(person.firstName), ...nameWords(person.lastName)];
        return words.every((word) => own.some((candidate) => candidate.startsWith(word)));
      },
    }),
  );

/** A row's name tokens hold every typed word's token under one of the index keys (lib/crypto.ts). */
export function nameTokensMatch(sql: Sql, search: NameSearch): postgres.Fragment {
  return search.tokenSets
    .map((tokens) => sql`u.name_search_tokens @> ${sql.array(tokens, BYTEA_ARRAY)}::bytea[]`)
    .reduce((all, one) => sql`${all} or ${one}`);
}

/**
 * `column` (an email blind index) is the address's index under any configured index key: while the key
 * rotates, rows not yet re-indexed still carry the previous key's index.
 */
export function emailIndexMatches(sql: Sql, column: postgres.Fragment, email: string): postgres.Fragment {
  return sql`${column} = any(${sql.array(emailBlindIndexes(email), BYTEA_ARRAY)}::bytea[])`;
}

/**
 * Holds, until the transaction ends, every other creation or change to the same address, whichever
 * index key its instance writes with. The unique index refuses two rows with one index, but while the
 * key rotates an address may be indexed under either key, so a new row is checked against every key's
 * index under this lock. Keyed by the index under the oldest configured key, the one every instance
 * shares while the new key is being deployed (lib/crypto.ts indexKeys).
 */
export async function lockEmail(sql: Sql, email: string): Promise<void> {
  const indexes = emailBlindIndexes(email);
  const oldest = indexes[indexes.length - 1] as Buffer;
  const lockKey = oldest.subarray(oldest.length - 8).toString('hex');
  await sql`select pg_advisory_xact_lock(('x' || ${lockKey})::bit(64)::bigint)`;
}

/** The address is indexed under an older key by another account (the unique index judges the current key). */
function heldUnderOlderKey(sql: Sql, email: string, except: string | null): postgres.Fragment {
  const older = emailBlindIndexes(email).slice(1);
  if (older.length === 0) return sql`false`;
  return sql`exists (select 1 from users o where o.email_blind_index = any(${sql.array(older, BYTEA_ARRAY)}::bytea[])
                       and o.id is distinct from ${except}::uuid)`;
}

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
  await lockEmail(sql, user.email);
  const [row] = await sql<{ id: string }[]>`
    with created as (
      insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext,
                         name_search_tokens, password_hash, status)
      select ${encrypt(user.email.trim(), 'users.email')}, ${emailBlindIndex(user.email)},
             ${encrypt(user.firstName, 'users.first_name')}, ${encrypt(user.lastName, 'users.last_name')},
             ${sql.array(nameSearchTokens(user.firstName, user.lastName), BYTEA_ARRAY)}, ${passwordHash},
             ${user.status ?? 'active'}
       where not ${heldUnderOlderKey(sql, user.email, null)}
      on conflict (email_blind_index) do nothing
      returning id),
    granted as (
      insert into user_roles (user_id, role_name, granted_by)
      select created.id, role, ${user.grantedBy ?? null}::uuid
        from created, unnest(${sql.array([...user.roles], TEXT_ARRAY)}::text[]) as role)
    select id from created`;
  if (!row) throw constraintProblem(EMAIL_TAKEN, user);
  return row;
}

// ---------------------------------------------------------------------------------------------------
// Creating and changing an account: one path for the user and the student routes
// ---------------------------------------------------------------------------------------------------

/** A password chosen for a new account; the full rule needs the address too (withPasswordPolicy). */
export const NewPassword = z.string().max(PASSWORD_MAX_LENGTH);

/**
 * The one password rule (lib/password-policy.ts) on a body that creates an account: checked against
 * its `email`, and named `password` wherever the body came from. An administrator creating a user
 * meets the same rule as a registrar creating a student or a student registering.
 */
export function withPasswordPolicy<S extends z.ZodType<{ email: string; password?: string | undefined }>>(schema: S) {
  return schema.superRefine((account, ctx) => {
    if (account.password === undefined) return;
    const problem = checkPasswordPolicy(account.password, { email: account.email });
    if (problem) ctx.addIssue({ code: 'custom', path: ['password'], message: problem });
  });
}

export interface AccountChange {
  email?: string | undefined;
  firstName?: string | undefined;
  lastName?: string | undefined;
  status?: UserStatus | undefined;
}

/**
 * Applies a change to an account whose row the caller has locked (`current` holds its stored names:
 * the search tokens cover both names, so changing one needs the other). A new email gets a new blind
 * index; the unique index refuses an address another account holds, while re-sending the account's
 * own address changes nothing. Becoming `active` clears a deactivation. One statement.
 */
export async function updateAccount(
  sql: Sql,
  id: string,
  current: { first_name_ciphertext: string; last_name_ciphertext: string },
  change: AccountChange,
): Promise<UserRow | undefined> {
  const tokens =
    change.firstName !== undefined || change.lastName !== undefined
      ? nameSearchTokens(
          change.firstName ?? decrypt(current.first_name_ciphertext, 'users.first_name'),
          change.lastName ?? decrypt(current.last_name_ciphertext, 'users.last_name'),
        )
      : null;
  const sealed = (value: string | undefined, field: 'users.email' | 'users.first_name' | 'users.last_name') =>
    value === undefined ? null : encrypt(value, field);
  const reactivated = change.status === 'active';
  if (change.email !== undefined) {
    await lockEmail(sql, change.email);
    const [taken] = await sql`select 1 where ${heldUnderOlderKey(sql, change.email, id)}`;
    if (taken) throw constraintProblem(EMAIL_TAKEN, change);
  }
  const [row] = await sql<UserRow[]>`
    update users as u set
      email_ciphertext = coalesce(${sealed(change.email, 'users.email')}::text, u.email_ciphertext),
      email_blind_index = coalesce(${change.email === undefined ? null : emailBlindIndex(change.email)}::bytea,
                                   u.email_blind_index),
      first_name_ciphertext = coalesce(${sealed(change.firstName, 'users.first_name')}::text, u.first_name_ciphertext),
      last_name_ciphertext = coalesce(${sealed(change.lastName, 'users.last_name')}::text, u.last_name_ciphertext),
      name_search_tokens = coalesce(${tokens ? sql.array(tokens, BYTEA_ARRAY) : null}::bytea[], u.name_search_tokens),
      status = coalesce(${change.status ?? null}::text, u.status),
      deactivated_at = case when ${reactivated} then null else u.deactivated_at end,
      deactivated_by = case when ${reactivated} then null else u.deactivated_by end
     where u.id = ${id}
    returning ${userColumns(sql)}`;
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

/** An account as the API shows it: decrypted names and address, its roles, never its password hash. */
export const UserView = z.strictObject({
  id: z.uuid(),
  email: z.email(),
  firstName: z.string(),
  lastName: z.string(),
  status: z.enum(USER_STATUSES),
  roles: z.array(z.enum(ROLES)),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  deactivatedAt: z.iso.datetime().nullable(),
});
export type UserView = z.infer<typeof UserView>;

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

// ---------------------------------------------------------------------------------------------------
// The list of people
// ---------------------------------------------------------------------------------------------------

/** People in creation order (oldest first), keyset on (created_at, id): index idx_users_created. */
export const USER_ORDER = keyset(
  [
    ['u.created_at', 'time'],
    ['u.id', 'uuid'],
  ],
  'asc',
);

export interface UserFilter {
  role?: Role | undefined;
  status?: UserStatus | undefined;
  /** Exact address, as the blind index compares it. */
  email?: string | undefined;
  name?: NameSearch | undefined;
}

/** One page of people (`limit + 1` rows, see pageOf). One statement, whatever the limit. */
export function userPageQuery(
  sql: Sql,
  filter: UserFilter,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<(UserRow & { page_key: string[] })[]>`
    select ${userColumns(sql)}, ${USER_ORDER.key(sql)}
      from users u
     where ${USER_ORDER.after(sql, after)}
       ${filter.status ? sql`and u.status = ${filter.status}` : sql``}
       ${filter.role ? sql`and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = ${filter.role})` : sql``}
       ${filter.email ? sql`and ${emailIndexMatches(sql, sql`u.email_blind_index`, filter.email)}` : sql``}
       ${filter.name ? sql`and (${nameTokensMatch(sql, filter.name)})` : sql``}
     ${USER_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

/** A page of people; a name search may make it short (the rule is pageOf's). */
export async function listUsers(
  sql: Sql,
  filter: UserFilter,
  after: readonly [string, string] | undefined,
  limit: number,
): Promise<Page<UserView>> {
  const rows = await userPageQuery(sql, filter, after, limit);
  return pageOf(rows, limit, toUserViews, (user) => filter.name?.matches(user) ?? true);
}
