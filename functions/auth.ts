// Sign-in and sessions: login, refresh, logout, logout everywhere, the caller's own profile and
// password change. Browsers get the access and refresh tokens as HttpOnly cookies (plus a readable
// CSRF cookie they echo in X-CSRF-Token); tools ask for `"client": "tool"` and get the refresh token
// in the body instead, then send `Authorization: Bearer` and refresh with `{ "refreshToken": … }`.
// The cookies and answers are lib/session-cookies.ts; the account's SQL is lib/own-account.ts.
import { z } from 'zod';
import { ROLES } from '../lib/access';
import { decrypt, emailBlindIndex, emailBlindIndexes } from '../lib/crypto';
import { type ChangeInput, endpoint, type PublicChangeInput, type ReadInput } from '../lib/endpoint';
import { badRequest, tooManyRequests, unauthorized } from '../lib/errors';
import { json } from '../lib/http';
import {
  findPasswordAccount,
  findSignInAccount,
  setPassword,
  updateOwnNames,
  upgradePasswordHash,
} from '../lib/own-account';
import { checkPasswordPolicy } from '../lib/password-policy';
import { decoyPasswordHash, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, verifyPassword } from '../lib/passwords';
import {
  clientInfo,
  deviceCookie,
  presentedRefreshToken,
  SignedInView,
  signedIn,
  signedOut,
} from '../lib/session-cookies';
import { issueSession, revokeAllForUser, revokeFamilyOfToken, rotate } from '../lib/sessions';
import {
  checkSignIn,
  presentedDevice,
  recordSignInFailure,
  recordSignInSuccess,
  type ThrottleDecision,
} from '../lib/throttle';
import { EmailLookup, findUserById, PersonName, toUserViews, UserView } from '../lib/users';

const AUTH_BODY_MAX_BYTES = 4096;
/** Any signed-in user. */
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

function throttled(decision: Exclude<ThrottleDecision, { allowed: true }>, audit: { event: string | null }): never {
  audit.event = 'login_throttled';
  throw tooManyRequests(decision.retryAfterSeconds);
}

// ------------------------------------------------------------------------------------------------
// Sign-in
// ------------------------------------------------------------------------------------------------

async function login({
  sql,
  body,
  request,
  clientIp,
  audit,
}: PublicChangeInput<unknown, unknown, z.infer<typeof LoginBody>>) {
  // The throttle counts under the current index key; the account is found under any (a key rotation).
  const accountIndexes = emailBlindIndexes(body.email);
  const accountKey = accountIndexes[0] as Buffer;
  // The cookie's own account is checked inside checkSignIn; another account's cookie counts for nothing.
  const presented = presentedDevice(request);
  const [account, decision] = await Promise.all([
    findSignInAccount(sql, body.email),
    checkSignIn(sql, accountIndexes, clientIp, presented),
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
    verification.needsRehash ? upgradePasswordHash(sql, account, body.password) : undefined,
  ]);
  return signedIn(toUserViews([account])[0] as UserView, session, body.client, [deviceCookie(account.id)]);
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
  responses: { 200: SignedInView },
  problems: [401, 429],
  handler: login,
});

async function refresh({
  sql,
  body,
  request,
  clientIp,
  audit,
}: PublicChangeInput<unknown, unknown, z.infer<typeof TokenBody>>) {
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
}

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
  responses: { 200: SignedInView },
  // 403: the refresh cookie without its CSRF header.
  problems: [401, 403],
  handler: refresh,
});

async function logout({ sql, body, request, audit }: PublicChangeInput<unknown, unknown, z.infer<typeof TokenBody>>) {
  const presented = presentedRefreshToken(request, body?.refreshToken);
  if (presented) {
    const ended = await revokeFamilyOfToken(sql, presented.token, 'logout');
    audit.actingUserId = ended?.userId ?? null;
  }
  // Idempotent: an unknown, expired or already revoked token still signs the browser out.
  return signedOut();
}

endpoint({
  name: 'auth-logout',
  methods: ['POST'],
  route: 'auth/logout',
  access: 'public',
  audit: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: TokenBody,
  responses: { 204: null },
  problems: [403],
  handler: logout,
});

async function logoutEverywhere({ sql, caller }: ChangeInput) {
  await revokeAllForUser(sql, caller.userId, 'logout_all');
  return signedOut();
}

endpoint({
  name: 'auth-logout-all',
  methods: ['POST'],
  route: 'auth/logout-all',
  access: EVERYONE,
  responses: { 204: null },
  handler: logoutEverywhere,
});

// ------------------------------------------------------------------------------------------------
// The caller's own account
// ------------------------------------------------------------------------------------------------

async function readOwnProfile({ sql, caller, audit }: ReadInput) {
  audit.resourceIds.userId = caller.userId;
  const user = await findUserById(sql, caller.userId);
  // A token outlives a deactivation by up to 15 minutes; the profile is not served meanwhile.
  if (user?.status !== 'active') throw unauthorized(SESSION_ENDED);
  return json(user);
}

endpoint({
  name: 'auth-me-get',
  methods: ['GET'],
  route: 'auth/me',
  access: EVERYONE,
  phi: true,
  responses: { 200: UserView },
  handler: readOwnProfile,
});

async function changeOwnProfile({
  sql,
  caller,
  body,
  audit,
}: ChangeInput<unknown, unknown, z.infer<typeof ProfileUpdate>>) {
  audit.resourceIds.userId = caller.userId;
  const saved = await updateOwnNames(sql, caller.userId, body);
  if (!saved) throw unauthorized(SESSION_ENDED);
  return json(toUserViews([saved])[0]);
}

endpoint({
  name: 'auth-me-update',
  methods: ['PATCH'],
  route: 'auth/me',
  access: EVERYONE,
  phi: true,
  maxBodyBytes: AUTH_BODY_MAX_BYTES,
  body: ProfileUpdate,
  responses: { 200: UserView },
  handler: changeOwnProfile,
});

async function changeOwnPassword({
  sql,
  caller,
  body,
  clientIp,
  audit,
}: ChangeInput<unknown, unknown, z.infer<typeof PasswordChange>>) {
  const { userId, sessionId } = caller;
  const account = await findPasswordAccount(sql, userId);
  if (account?.status !== 'active') throw unauthorized(SESSION_ENDED);
  // A stolen access token must not become a way to guess the password: sign-in's throttle applies, under
  // the key sign-in counts with (the stored index may still be under a previous index key).
  const email = decrypt(account.email_ciphertext, 'users.email');
  const accountKey = emailBlindIndex(email);
  const decision = await checkSignIn(sql, accountKey, clientIp);
  if (!decision.allowed) throttled(decision, audit);
  const verification = await verifyPassword(account.password_hash ?? (await decoyPasswordHash()), body.currentPassword);
  if (!verification.ok) {
    audit.event = 'password_change_failed';
    await recordSignInFailure(sql, accountKey, clientIp);
    throw badRequest('The current password is not correct', [
      { field: 'body.currentPassword', message: 'Not correct' },
    ]);
  }
  const policyProblem = checkPasswordPolicy(body.newPassword, { email });
  if (policyProblem) {
    throw badRequest('Choose another password', [{ field: 'body.newPassword', message: policyProblem }]);
  }
  // The session that made the change (the access token's `sid`) stays signed in; every other ends.
  await setPassword(sql, userId, body.newPassword);
  await revokeAllForUser(sql, userId, 'password_changed', sessionId);
  await recordSignInSuccess(sql, accountKey, clientIp);
  audit.event = 'password_changed';
  return { kind: 'empty' as const, status: 204 };
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
  responses: { 204: null },
  problems: [429],
  handler: changeOwnPassword,
});
