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
// Sessions (lib/account-admin.ts): deactivation and role changes revoke the person's refresh tokens, so
// new roles (or no access at all) apply at their next refresh. An access token already issued stays valid until it
// expires (at most ACCESS_TOKEN_TTL_SECONDS, 15 minutes): that is the residual window of a
// stateless token, accepted so that verifying a token needs no database round trip.
import { z } from 'zod';
import { type Caller, ROLES, type Role } from '../lib/access';
import { createAccount, deactivateAccount, grantRole, listRoles, patchAccount, removeRole } from '../lib/account-admin';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { conflict, notFound } from '../lib/errors';
import { created, json, noContent } from '../lib/http';
import { deliverNowInDevelopment } from '../lib/outbox';
import { limitSchema, nextLink } from '../lib/pagination';
import {
  EmailAddress,
  EmailLookup,
  findUserById,
  listUsers,
  NameSearchInput,
  NewPassword,
  PersonName,
  USER_ORDER,
  USER_STATUSES,
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
type UserIdParams = z.infer<typeof UserIdParams>;
const UserRoleParams = z.object({ id: z.uuid(), role: RoleName });
type UserRoleParams = z.infer<typeof UserRoleParams>;

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
// List and search
// ---------------------------------------------------------------------------------------------------

async function listPeople({ sql, query, request }: ReadInput<unknown, z.infer<typeof UserListQuery>>) {
  const page = await listUsers(sql, query, query.cursor, query.limit);
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'users-list',
  methods: ['GET'],
  route: 'users',
  access: ACCOUNT_READERS,
  phi: true,
  query: UserListQuery,
  handler: listPeople,
});

async function searchPeople({ sql, body }: ChangeInput<unknown, unknown, z.infer<typeof UserSearchBody>>) {
  return json(await listUsers(sql, body, body.cursor, body.limit));
}

endpoint({
  name: 'users-search',
  methods: ['POST'],
  route: 'users/search',
  access: ACCOUNT_READERS,
  phi: true,
  body: UserSearchBody,
  handler: searchPeople,
});

// ---------------------------------------------------------------------------------------------------
// One person
// ---------------------------------------------------------------------------------------------------

function assertNotSelf(caller: Caller, userId: string, what: string): void {
  if (caller.userId === userId) throw conflict(`You cannot ${what} yourself; ask another administrator`);
}

async function readPerson({ sql, params }: ReadInput<UserIdParams>) {
  const user = await findUserById(sql, params.id);
  if (!user) throw notFound('No such user');
  return json(user);
}

endpoint({
  name: 'users-get',
  methods: ['GET'],
  route: 'users/{id}',
  access: ACCOUNT_READERS,
  phi: true,
  params: UserIdParams,
  handler: readPerson,
});

async function createPerson({
  sql,
  body,
  caller,
  audit,
  afterCommit,
}: ChangeInput<unknown, unknown, z.infer<typeof NewUserBody>>) {
  const { id, invited } = await createAccount(sql, body, caller.userId);
  if (invited) afterCommit(deliverNowInDevelopment);
  audit.resourceIds.id = id;
  audit.event = 'user_created';
  const user = await findUserById(sql, id);
  return created(user, `/api/users/${id}`);
}

endpoint({
  name: 'users-create',
  methods: ['POST'],
  route: 'users',
  access: ADMINS,
  phi: true,
  body: NewUserBody,
  handler: createPerson,
});

async function changePerson({
  sql,
  params,
  body,
  caller,
}: ChangeInput<UserIdParams, unknown, z.infer<typeof UserPatchBody>>) {
  if (body.status === 'locked') assertNotSelf(caller, params.id, 'lock');
  // An address another account holds violates its unique blind index: 409 (lib/users.ts EMAIL_TAKEN).
  const user = await patchAccount(sql, params.id, body);
  if (!user) throw notFound('No such user');
  return json(user);
}

endpoint({
  name: 'users-update',
  methods: ['PATCH'],
  route: 'users/{id}',
  access: ADMINS,
  phi: true,
  params: UserIdParams,
  body: UserPatchBody,
  handler: changePerson,
});

async function deactivatePerson({ sql, params, caller, audit }: ChangeInput<UserIdParams>) {
  assertNotSelf(caller, params.id, 'deactivate');
  const user = await deactivateAccount(sql, params.id, caller.userId);
  audit.event = 'user_deactivated';
  return json(user);
}

endpoint({
  name: 'users-deactivate',
  methods: ['POST'],
  route: 'users/{id}/deactivate',
  access: ADMINS,
  phi: true,
  params: UserIdParams,
  handler: deactivatePerson,
});

// ---------------------------------------------------------------------------------------------------
// Roles of a person
// ---------------------------------------------------------------------------------------------------

async function assignRole({ sql, params, caller, audit }: ChangeInput<UserRoleParams>) {
  if (await grantRole(sql, params.id, params.role, caller.userId)) audit.event = 'role_granted';
  return noContent();
}

endpoint({
  name: 'users-roles-assign',
  methods: ['PUT'],
  route: 'users/{id}/roles/{role}',
  access: ADMINS,
  params: UserRoleParams,
  handler: assignRole,
});

async function unassignRole({ sql, params, caller, audit }: ChangeInput<UserRoleParams>) {
  if (params.role === 'admin') assertNotSelf(caller, params.id, 'remove the administrator role from');
  if (await removeRole(sql, params.id, params.role)) audit.event = 'role_revoked';
  return noContent();
}

endpoint({
  name: 'users-roles-remove',
  methods: ['DELETE'],
  route: 'users/{id}/roles/{role}',
  access: ADMINS,
  params: UserRoleParams,
  handler: unassignRole,
});

// ---------------------------------------------------------------------------------------------------
// The role catalogue
// ---------------------------------------------------------------------------------------------------

async function roleCatalogue({ sql }: ReadInput) {
  return json({ items: await listRoles(sql) });
}

endpoint({
  name: 'roles-list',
  methods: ['GET'],
  route: 'roles',
  // Decision 1 of docs/access-policy.md: the catalogue explains the roles on the records readers see.
  access: ACCOUNT_READERS,
  // The fixed catalogue (eight rows) carries no personal data: cacheable per user.
  cache: 'private',
  handler: roleCatalogue,
});
