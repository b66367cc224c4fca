// Accounts and roles, for administrators: list and search people, create, update and deactivate
// accounts, grant and remove roles; and the role catalogue for every signed-in user.
//
// Searching by email or name with `GET /api/users?email=…&name=…` puts personal data in a URL, which
// proxies and request telemetry may record; `POST /api/users/search` takes the same filters in its body.
//
// Who may do what: `admin` and `staff` may list and read accounts (staff look people up in the
// course of their work); only `admin` creates, changes, deactivates and grants. There is no hard
// delete: an account is deactivated, and its history (enrollments, ledger, audit) stays attached.
//
// Sessions: deactivation and role changes revoke the person's refresh tokens, so new roles (or no
// access at all) apply at their next refresh. An access token already issued stays valid until it
// expires (at most ACCESS_TOKEN_TTL_SECONDS, 15 minutes): that is the residual window of a
// stateless token, accepted so that verifying a token needs no database round trip.
import { z } from 'zod';
import { type Caller, ROLES, type Role } from '../lib/access';
import { inviteAccount } from '../lib/account-links';
import type { TransactionSql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { conflict, notFound } from '../lib/errors';
import { created, json, noContent } from '../lib/http';
import { deliverNowInDevelopment } from '../lib/outbox';
import { limitSchema, nextLink } from '../lib/pagination';
import { revokeAllForUser } from '../lib/sessions';
import {
  EmailAddress,
  EmailLookup,
  findUserById,
  insertUser,
  listUsers,
  NameSearchInput,
  NewPassword,
  PersonName,
  toUserViews,
  USER_ORDER,
  USER_STATUSES,
  type UserRow,
  type UserView,
  updateAccount,
  userColumns,
  withPasswordPolicy,
} from '../lib/users';

/** Who may read and look up accounts (any account: these routes have no own-only case). */
const ACCOUNT_READERS: readonly Role[] = ['admin', 'staff'];

const ADMINS: readonly Role[] = ['admin'];

// ---------------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------------

const RoleName = z.enum(ROLES);

const UserIdParams = z.object({ id: z.uuid() });
const UserRoleParams = z.object({ id: z.uuid(), role: RoleName });

const NewUserBody = withPasswordPolicy(
  z.strictObject({
    email: EmailAddress,
    firstName: PersonName,
    lastName: PersonName,
    /** Without a password the account is `pending` until its owner sets one. */
    password: NewPassword.optional(),
    roles: z
      .array(RoleName)
      .min(1)
      .max(ROLES.length * 2)
      .transform((roles) => [...new Set(roles)]),
  }),
);

/**
 * `status` may be set to `active` (also reactivates a deactivated account) or `locked`. Deactivating
 * has its own route, which also records who did it; `pending` belongs to accounts without password.
 */
const UserPatchBody = z
  .strictObject({
    email: EmailAddress.optional(),
    firstName: PersonName.optional(),
    lastName: PersonName.optional(),
    status: z.enum(['active', 'locked']).optional(),
  })
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), 'Send at least one field to change');

const listShape = {
  limit: limitSchema,
  cursor: USER_ORDER.cursor,
  role: RoleName.optional(),
  status: z.enum(USER_STATUSES).optional(),
  /** Exact address (case and Unicode width do not matter), found through the blind index. */
  email: EmailLookup.optional(),
  /** Prefixes of name words: `chlo`, `chlo gar`. */
  name: NameSearchInput.optional(),
};
const UserListQuery = z.object(listShape);
/** The same filters in a body, for clients that must keep names and emails out of URLs and logs. */
const UserSearchBody = z.strictObject(listShape);

// ---------------------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------------------

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

function assertNotSelf(caller: Caller | null, userId: string, what: string): void {
  if (caller?.userId === userId) throw conflict(`You cannot ${what} yourself; ask another administrator`);
}

// ---------------------------------------------------------------------------------------------------
// List and search
// ---------------------------------------------------------------------------------------------------

endpoint({
  name: 'users-list',
  methods: ['GET'],
  route: 'users',
  access: ACCOUNT_READERS,
  phi: true,
  query: UserListQuery,
  handler: async ({ sql, query, request }) => {
    const page = await listUsers(sql, query, query.cursor, query.limit);
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'users-search',
  methods: ['POST'],
  route: 'users/search',
  access: ACCOUNT_READERS,
  phi: true,
  body: UserSearchBody,
  handler: async ({ sql, body }) => json(await listUsers(sql, body, body.cursor, body.limit)),
});

// ---------------------------------------------------------------------------------------------------
// One person
// ---------------------------------------------------------------------------------------------------

endpoint({
  name: 'users-get',
  methods: ['GET'],
  route: 'users/{id}',
  access: ACCOUNT_READERS,
  phi: true,
  params: UserIdParams,
  handler: async ({ sql, params }) => {
    const user = await findUserById(sql, params.id);
    if (!user) throw notFound('No such user');
    return json(user);
  },
});

endpoint({
  name: 'users-create',
  methods: ['POST'],
  route: 'users',
  access: ADMINS,
  phi: true,
  body: NewUserBody,
  handler: async ({ sql, body, caller, audit, afterCommit }) => {
    const { id } = await insertUser(sql, {
      email: body.email,
      firstName: body.firstName,
      lastName: body.lastName,
      password: body.password ?? null,
      roles: body.roles,
      status: body.password === undefined ? 'pending' : 'active',
      grantedBy: caller?.userId ?? null,
    });
    // Without a password the account is pending until its owner chooses one through the invitation.
    if (body.password === undefined) {
      await inviteAccount(sql, { id, email: body.email });
      afterCommit(deliverNowInDevelopment);
    }
    audit.resourceIds.id = id;
    audit.event = 'user_created';
    const user = await findUserById(sql, id);
    return created(user, `/api/users/${id}`);
  },
});

interface PatchTarget {
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  has_password: boolean;
}

/**
 * Applies a patch inside the request's transaction, under a row lock (updateAccount re-tokenises the
 * names from both). Locking takes the account's sessions; activating needs a password.
 */
async function patchUser(
  tx: TransactionSql,
  id: string,
  patch: z.infer<typeof UserPatchBody>,
): Promise<UserView | null> {
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

endpoint({
  name: 'users-update',
  methods: ['PATCH'],
  route: 'users/{id}',
  access: ADMINS,
  phi: true,
  params: UserIdParams,
  body: UserPatchBody,
  handler: async ({ sql, params, body, caller }) => {
    if (body.status === 'locked') assertNotSelf(caller, params.id, 'lock');
    // An address another account holds violates its unique blind index: 409 (lib/users.ts EMAIL_TAKEN).
    const user = await patchUser(sql, params.id, body);
    if (!user) throw notFound('No such user');
    return json(user);
  },
});

endpoint({
  name: 'users-deactivate',
  methods: ['POST'],
  route: 'users/{id}/deactivate',
  access: ADMINS,
  phi: true,
  params: UserIdParams,
  handler: async ({ sql, params, caller, audit }) => {
    assertNotSelf(caller, params.id, 'deactivate');
    await assertAnotherActiveAdminRemains(sql, params.id);
    // Deactivating twice keeps the first date and author.
    const [row] = await sql<UserRow[]>`
      update users as u set status = 'inactive',
             deactivated_at = coalesce(u.deactivated_at, now()),
             deactivated_by = coalesce(u.deactivated_by, ${caller?.userId ?? null}::uuid)
       where u.id = ${params.id}
      returning ${userColumns(sql)}`;
    if (!row) throw notFound('No such user');
    await revokeAllForUser(sql, params.id, 'user_deactivated');
    audit.event = 'user_deactivated';
    return json(toUserViews([row])[0]);
  },
});

// ---------------------------------------------------------------------------------------------------
// Roles of a person
// ---------------------------------------------------------------------------------------------------

endpoint({
  name: 'users-roles-assign',
  methods: ['PUT'],
  route: 'users/{id}/roles/{role}',
  access: ADMINS,
  params: UserRoleParams,
  handler: async ({ sql, params, caller, audit }) => {
    // One statement: grant (idempotent) and, only when something changed, end the person's sessions.
    const [result] = await sql<{ found: boolean; granted: boolean }[]>`
      with target as (select id from users where id = ${params.id}),
      granted as (
        insert into user_roles (user_id, role_name, granted_by)
        select id, ${params.role}, ${caller?.userId ?? null}::uuid from target
        on conflict (user_id, role_name) do nothing
        returning user_id),
      revoked as (
        update refresh_tokens set revoked_at = now(), revoke_reason = 'roles_changed'
         where user_id in (select user_id from granted) and revoked_at is null)
      select exists (select 1 from target) as found, exists (select 1 from granted) as granted`;
    if (!result?.found) throw notFound('No such user');
    if (result.granted) audit.event = 'role_granted';
    return noContent();
  },
});

endpoint({
  name: 'users-roles-remove',
  methods: ['DELETE'],
  route: 'users/{id}/roles/{role}',
  access: ADMINS,
  params: UserRoleParams,
  handler: async ({ sql, params, caller, audit }) => {
    if (params.role === 'admin') assertNotSelf(caller, params.id, 'remove the administrator role from');
    const [target] = await sql`select 1 from users where id = ${params.id}`;
    if (!target) throw notFound('No such user');
    if (params.role === 'admin') await assertAnotherActiveAdminRemains(sql, params.id);
    const removed = await sql`
      delete from user_roles where user_id = ${params.id} and role_name = ${params.role} returning 1`;
    if (removed.length > 0) {
      await revokeAllForUser(sql, params.id, 'roles_changed');
      audit.event = 'role_revoked';
    }
    return noContent();
  },
});

// ---------------------------------------------------------------------------------------------------
// The role catalogue
// ---------------------------------------------------------------------------------------------------

endpoint({
  name: 'roles-list',
  methods: ['GET'],
  route: 'roles',
  // Decision 1 of docs/access-policy.md: the catalogue explains the roles on the records readers see.
  access: ACCOUNT_READERS,
  // The fixed catalogue (eight rows) carries no personal data: cacheable per user.
  cache: 'private',
  handler: async ({ sql }) => {
    const rows = await sql<{ name: Role; description: string }[]>`
      select name, description from roles order by name`;
    return json({ items: rows });
  },
});
