// Sign-in and sessions: login, refresh, logout, logout everywhere, the caller's own profile and
// password change. Browsers get the access and refresh tokens as HttpOnly cookies (plus a readable
// CSRF cookie they echo in X-CSRF-Token); tools ask for `"client": "tool"` and get the refresh token
// in the body instead, then send `Authorization: Bearer` and refresh with `{ "refreshToken": … }`.
import { randomBytes } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { z } from 'zod';
import { type Caller, ROLES } from '../lib/access';
import {
  ACCESS_COOKIE,
  ACCESS_TOKEN_TTL_SECONDS,
  CSRF_COOKIE,
  cookieValue,
  csrfTokenMatches,
  issueAccessToken,
  REFRESH_COOKIE,
} from '../lib/auth';
import { decrypt, emailBlindIndex, encrypt, nameSearchTokens } from '../lib/crypto';
import { BYTEA_ARRAY, type Sql, type TransactionSql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { badRequest, forbidden, tooManyRequests, unauthorized } from '../lib/errors';
import { type Cookie, json, type Reply } from '../lib/http';
import { checkPasswordPolicy } from '../lib/password-policy';
import {
  decoyPasswordHash,
  hashPassword,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  verifyPassword,
} from '../lib/passwords';
import {
  type ClientInfo,
  type IssuedSession,
  issueSession,
  REFRESH_TOKEN_TTL_SECONDS,
  revokeAllForUser,
  revokeFamilyOfToken,
  rotate,
} from '../lib/sessions';
import {
  checkSignIn,
  DEVICE_COOKIE,
  DEVICE_COOKIE_TTL_SECONDS,
  newDeviceCookie,
  presentedDevice,
  recordSignInFailure,
  recordSignInSuccess,
  type ThrottleDecision,
} from '../lib/throttle';
import {
  EmailLookup,
  findUserById,
  PersonName,
  toUserViews,
  type UserRow,
  type UserView,
  userColumns,
} from '../lib/users';

/** The refresh cookie only travels to the auth routes (`api` is the route prefix of host.json). */
const REFRESH_COOKIE_PATH = '/api/auth';
const AUTH_BODY_MAX_BYTES = 4096;
const EVERYONE = ROLES;

const WRONG_CREDENTIALS = 'The email address or password is not correct';
const SESSION_ENDED = 'Your session has ended; sign in again';

// ------------------------------------------------------------------------------------------------
// Input
// ------------------------------------------------------------------------------------------------

const passwordInput = z.string().min(1).max(PASSWORD_MAX_LENGTH);

/** `tool`: the refresh token comes back in the body (and no cookies are set); `browser`: cookies only. */
const clientKind = z.enum(['browser', 'tool']).default('browser');

/** A refresh token in a body (tools); its shape is checked where it is used, where a bad one is a 401. */
const refreshTokenInput = z.string().max(256);

const LoginBody = z.strictObject({ email: EmailLookup, password: passwordInput, client: clientKind });
const TokenBody = z.strictObject({ refreshToken: refreshTokenInput.optional() }).optional();

const ProfileUpdate = z
  .strictObject({ firstName: PersonName.optional(), lastName: PersonName.optional() })
  .refine((body) => body.firstName !== undefined || body.lastName !== undefined, 'Send firstName, lastName or both');

/** The length rule is in the schema; the common-password and email rules are checked after it. */
const PasswordChange = z
  .strictObject({
    currentPassword: passwordInput,
    newPassword: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH),
  })
  .refine((body) => body.newPassword !== body.currentPassword, {
    path: ['newPassword'],
    message: 'Must differ from the current password',
  });

// ------------------------------------------------------------------------------------------------
// Tokens and cookies
// ------------------------------------------------------------------------------------------------

type ClientKind = z.infer<typeof clientKind>;

function cookie(name: string, value: string, path: string, maxAge: number, httpOnly = true): Cookie {
  return { name, value, path, maxAge, httpOnly, secure: true, sameSite: 'Strict' };
}

function sessionCookies(accessToken: string, refreshToken: string, csrfToken: string): Cookie[] {
  return [
    cookie(ACCESS_COOKIE, accessToken, '/', ACCESS_TOKEN_TTL_SECONDS),
    cookie(REFRESH_COOKIE, refreshToken, REFRESH_COOKIE_PATH, REFRESH_TOKEN_TTL_SECONDS),
    // Readable by the portal's script, which echoes it in X-CSRF-Token; it lives as long as the session.
    cookie(CSRF_COOKIE, csrfToken, '/', REFRESH_TOKEN_TTL_SECONDS, false),
  ];
}

function clearedCookies(): Cookie[] {
  return [
    cookie(ACCESS_COOKIE, '', '/', 0),
    cookie(REFRESH_COOKIE, '', REFRESH_COOKIE_PATH, 0),
    cookie(CSRF_COOKIE, '', '/', 0, false),
  ];
}

const signedOut = (): Reply => ({ kind: 'empty', status: 204, cookies: clearedCookies() });

/**
 * The device cookie a successful browser sign-in gets (lib/throttle.ts): it lets this browser past
 * the account ceiling later, from any network. Renewed on every sign-in; never cleared by a logout.
 */
const deviceCookie = (userId: string): Cookie =>
  cookie(DEVICE_COOKIE, newDeviceCookie(userId), '/', DEVICE_COOKIE_TTL_SECONDS);

/** The answer to a sign-in or a refresh: a fresh access token and CSRF token, the rotated session. */
async function signedIn(
  user: UserView,
  session: IssuedSession,
  client: ClientKind,
  extraCookies: Cookie[] = [],
): Promise<Reply> {
  const accessToken = await issueAccessToken(user, session.familyId);
  const csrfToken = randomBytes(32).toString('base64url');
  const body = {
    accessToken,
    tokenType: 'Bearer',
    expiresIn: ACCESS_TOKEN_TTL_SECONDS,
    // Never to a browser: script-readable refresh tokens would undo the HttpOnly cookie.
    ...(client === 'tool' ? { refreshToken: session.refreshToken } : {}),
    csrfToken,
    user: { id: user.id, email: user.email, firstName: user.firstName, lastName: user.lastName, roles: user.roles },
  };
  const cookies =
    client === 'browser' ? [...sessionCookies(accessToken, session.refreshToken, csrfToken), ...extraCookies] : [];
  return { kind: 'json', status: 200, body, cookies };
}

interface PresentedRefreshToken {
  token: string;
  via: 'body' | 'cookie';
}

/**
 * The refresh token of a request: the body's (tools) or the cookie's (browsers). The cookie is sent
 * by the browser on its own, so using it needs the CSRF header like any cookie-authenticated change.
 */
function presentedRefreshToken(request: HttpRequest, fromBody: string | undefined): PresentedRefreshToken | null {
  if (fromBody !== undefined) return { token: fromBody, via: 'body' };
  const fromCookie = cookieValue(request, REFRESH_COOKIE);
  if (!fromCookie) return null;
  if (!csrfTokenMatches(request)) throw forbidden('Missing or wrong CSRF token');
  return { token: fromCookie, via: 'cookie' };
}

const clientInfo = (request: HttpRequest, ip: string | null): ClientInfo => ({
  ip,
  userAgent: request.headers.get('user-agent'),
});

/** Protected routes always have a caller; this narrows the type and documents it. */
function signedInCaller(caller: Caller | null): Caller {
  if (!caller) throw unauthorized();
  return caller;
}

function throttled(decision: Exclude<ThrottleDecision, { allowed: true }>, audit: { event: string | null }): never {
  audit.event = 'login_throttled';
  throw tooManyRequests(decision.retryAfterSeconds);
}

// ------------------------------------------------------------------------------------------------
// Sign-in
// ------------------------------------------------------------------------------------------------

interface AccountRow extends UserRow {
  password_hash: string | null;
}

async function findAccount(sql: Sql | TransactionSql, accountKey: Buffer): Promise<AccountRow | undefined> {
  const [row] = await sql<AccountRow[]>`
    select ${userColumns(sql)}, u.password_hash from users u where u.email_blind_index = ${accountKey}`;
  return row;
}

/** Replaces a legacy bcrypt (or weaker Argon2) hash; skipped if the password changed meanwhile. */
async function upgradeHash(sql: Sql | TransactionSql, account: AccountRow, password: string): Promise<void> {
  await sql`update users set password_hash = ${await hashPassword(password)}
             where id = ${account.id} and password_hash = ${account.password_hash}`;
}

endpoint({
  name: 'auth-login',
  methods: ['POST'],
  route: 'auth/login',
  access: 'public',
  audit: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: LoginBody,
  // A wrong password must count even though the request is refused (the throttle's failure record).
  commitRefusals: true,
  handler: async ({ sql, body, request, clientIp, audit }) => {
    const accountKey = emailBlindIndex(body.email);
    // The cookie's own account is checked inside checkSignIn; another account's cookie counts for nothing.
    const presented = presentedDevice(request);
    const [account, decision] = await Promise.all([
      findAccount(sql, accountKey),
      checkSignIn(sql, accountKey, clientIp, presented),
    ]);
    audit.actingUserId = account?.id ?? null;
    if (!decision.allowed) throttled(decision, audit);
    const deviceId = account && presented?.userId === account.id ? presented.deviceId : null;
    // An unknown account costs one real Argon2id verification too, so timing does not tell it apart.
    const verification = await verifyPassword(account?.password_hash ?? (await decoyPasswordHash()), body.password);
    if (!account || !verification.ok || account.status !== 'active') {
      // One message for an unknown email, a wrong password and an inactive account; the audit row knows which.
      audit.event = 'login_failed';
      await recordSignInFailure(sql, accountKey, clientIp, deviceId);
      throw unauthorized(WRONG_CREDENTIALS);
    }
    audit.event = 'login_succeeded';
    const [session] = await Promise.all([
      issueSession(sql, account, clientInfo(request, clientIp)),
      recordSignInSuccess(sql, accountKey, clientIp, deviceId),
      verification.needsRehash ? upgradeHash(sql, account, body.password) : undefined,
    ]);
    return signedIn(toUserViews([account])[0] as UserView, session, body.client, [deviceCookie(account.id)]);
  },
});

endpoint({
  name: 'auth-refresh',
  methods: ['POST'],
  route: 'auth/refresh',
  access: 'public',
  audit: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: TokenBody,
  // A reused refresh token revokes its family and is refused: the revocation must commit all the same.
  commitRefusals: true,
  handler: async ({ sql, body, request, clientIp, audit }) => {
    const presented = presentedRefreshToken(request, body?.refreshToken);
    if (!presented) throw unauthorized(SESSION_ENDED);
    const rotation = await rotate(sql, presented.token, clientInfo(request, clientIp));
    switch (rotation.outcome) {
      case 'rotated':
        audit.actingUserId = rotation.user.id;
        return signedIn(rotation.user, rotation.session, presented.via === 'body' ? 'tool' : 'browser');
      case 'reused':
        // A token already exchanged came back: someone else holds this session. Its family is revoked.
        audit.event = 'refresh_token_reuse';
        audit.actingUserId = rotation.userId;
        throw unauthorized(SESSION_ENDED);
      case 'invalid':
        throw unauthorized(SESSION_ENDED);
    }
  },
});

endpoint({
  name: 'auth-logout',
  methods: ['POST'],
  route: 'auth/logout',
  access: 'public',
  audit: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: TokenBody,
  handler: async ({ sql, body, request, audit }) => {
    const presented = presentedRefreshToken(request, body?.refreshToken);
    if (presented) {
      const ended = await revokeFamilyOfToken(sql, presented.token, 'logout');
      audit.actingUserId = ended?.userId ?? null;
    }
    // Idempotent: an unknown, expired or already revoked token still signs the browser out.
    return signedOut();
  },
});

endpoint({
  name: 'auth-logout-all',
  methods: ['POST'],
  route: 'auth/logout-all',
  access: EVERYONE,
  handler: async ({ sql, caller }) => {
    await revokeAllForUser(sql, signedInCaller(caller).userId, 'logout_all');
    return signedOut();
  },
});

// ------------------------------------------------------------------------------------------------
// The caller's own account
// ------------------------------------------------------------------------------------------------

endpoint({
  name: 'auth-me-get',
  methods: ['GET'],
  route: 'auth/me',
  access: EVERYONE,
  phi: true,
  handler: async ({ sql, caller, audit }) => {
    const { userId } = signedInCaller(caller);
    audit.resourceIds.userId = userId;
    const user = await findUserById(sql, userId);
    // A token outlives a deactivation by up to 15 minutes; the profile is not served meanwhile.
    if (user?.status !== 'active') throw unauthorized(SESSION_ENDED);
    return json(user);
  },
});

endpoint({
  name: 'auth-me-update',
  methods: ['PATCH'],
  route: 'auth/me',
  access: EVERYONE,
  phi: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: ProfileUpdate,
  handler: async ({ sql, caller, body, audit }) => {
    const { userId } = signedInCaller(caller);
    audit.resourceIds.userId = userId;
    // The search tokens cover both names, so the other name is read under a row lock first.
    const [row] = await sql<UserRow[]>`
      select ${userColumns(sql)} from users u where u.id = ${userId} and u.status = 'active' for update of u`;
    if (!row) throw unauthorized(SESSION_ENDED);
    const current = toUserViews([row])[0] as UserView;
    const firstName = body.firstName ?? current.firstName;
    const lastName = body.lastName ?? current.lastName;
    const [saved] = await sql<UserRow[]>`
      update users u
         set first_name_ciphertext = ${encrypt(firstName, 'users.first_name')},
             last_name_ciphertext = ${encrypt(lastName, 'users.last_name')},
             name_search_tokens = ${sql.array(nameSearchTokens(firstName, lastName), BYTEA_ARRAY)}
       where u.id = ${userId}
      returning ${userColumns(sql)}`;
    if (!saved) throw unauthorized(SESSION_ENDED);
    return json(toUserViews([saved])[0]);
  },
});

interface PasswordAccountRow {
  password_hash: string | null;
  email_blind_index: Buffer;
  email_ciphertext: string;
  status: string;
}

endpoint({
  name: 'auth-password-change',
  methods: ['POST'],
  route: 'auth/password',
  access: EVERYONE,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: PasswordChange,
  // A wrong current password counts as a failed sign-in even though the change is refused.
  commitRefusals: true,
  handler: async ({ sql, caller, body, clientIp, audit }) => {
    const { userId, sessionId } = signedInCaller(caller);
    const [account] = await sql<PasswordAccountRow[]>`
      select password_hash, email_blind_index, email_ciphertext, status from users where id = ${userId}`;
    if (account?.status !== 'active') throw unauthorized(SESSION_ENDED);
    // A stolen access token must not become a way to guess the password: sign-in's throttle applies.
    const decision = await checkSignIn(sql, account.email_blind_index, clientIp);
    if (!decision.allowed) throttled(decision, audit);
    const verification = await verifyPassword(
      account.password_hash ?? (await decoyPasswordHash()),
      body.currentPassword,
    );
    if (!verification.ok) {
      audit.event = 'password_change_failed';
      await recordSignInFailure(sql, account.email_blind_index, clientIp);
      throw badRequest('The current password is not correct', [
        { field: 'body.currentPassword', message: 'Not correct' },
      ]);
    }
    const policyProblem = checkPasswordPolicy(body.newPassword, {
      email: decrypt(account.email_ciphertext, 'users.email'),
    });
    if (policyProblem) {
      throw badRequest('Choose another password', [{ field: 'body.newPassword', message: policyProblem }]);
    }
    const newHash = await hashPassword(body.newPassword);
    // The session that made the change (the access token's `sid`) stays signed in; every other ends.
    await sql`update users set password_hash = ${newHash} where id = ${userId}`;
    await revokeAllForUser(sql, userId, 'password_changed', sessionId);
    await recordSignInSuccess(sql, account.email_blind_index, clientIp);
    audit.event = 'password_changed';
    return { kind: 'empty', status: 204 };
  },
});
