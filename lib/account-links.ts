// Emailed links that let a person into their account: the invitation an account created by staff
// gets, the "forgot password" reset link, and the sign-in unlock link (functions/account-links.ts
// declares their routes). Every one is a one-time token of lib/one-time-links.ts and goes out through
// the outbox; this module holds their messages and statements:
//   - asking for a link by email address (`requestLinkByEmail`): the same statement, the same work and
//     the same answer whether or not the address has an account, so nothing can be learnt from it;
//   - choosing a password with an invitation or reset link (`setPasswordWithLink`): the token is used
//     up, the password checked by the one password rule, every session of the account ended;
//   - redeeming an unlock link (`redeemUnlockLink`): the token is used up; the route then trusts the
//     source it was opened from. It signs nobody in: the password is still needed.
import type postgres from 'postgres';
import { decrypt, emailBlindIndex } from './crypto';
import type { Sql, TransactionSql } from './db';
import { badRequest, conflict, forbidden, notFound } from './errors';
import {
  countedLinkRequest,
  hashToken,
  invalidToken,
  issueToken,
  LINK_SOURCE_LIMIT,
  looksLikeToken,
  newToken,
  portalLink,
  redeemToken,
  type TokenPurpose,
} from './one-time-links';
import { enqueueMessage, type OutboxMessage, queueForIssuedLink } from './outbox';
import { checkPasswordPolicy } from './password-policy';
import { hashPassword } from './passwords';
import { revokeAllForUser } from './sessions';
import { signInLockedOut } from './throttle';
import { emailIndexMatches } from './users';

type Db = Sql | TransactionSql;

/** At most one email per account and purpose per this interval, whoever asks. */
export const LINK_RESEND_INTERVAL_SECONDS = 60;

/** A reset link is short-lived: it opens the account to whoever reads the mailbox. */
export const RESET_LINK_TTL_SECONDS = 30 * 60;
/** An invitation waits for its owner for a week (the account has no password until then). */
export const INVITATION_TTL_SECONDS = 7 * 24 * 60 * 60;
/** An unlock link lets one more source try the password; short-lived like a reset link. */
export const UNLOCK_LINK_TTL_SECONDS = 30 * 60;

/** The portal page both the invitation and the reset link open: "choose your password". */
const SET_PASSWORD_PAGE = 'account/set-password';

/** A kind of link a person asks for by email address ("forgot password", "let me sign in again"). */
export interface EmailedLink {
  purpose: TokenPurpose;
  /** The rate limit's scope for this step (`unlock-request`, `password-reset-request`). */
  scope: string;
  ttlSeconds: number;
  /** Which accounts get a link, as a condition on `users u` (e.g. only those whose sign-in is paused). */
  eligible: (sql: Db, accountKey: Buffer, clientIp: string | null) => postgres.Fragment;
  message: (email: string, token: string) => OutboxMessage;
}

/**
 * Counts the request against its source and, when the address belongs to an eligible account and the
 * source is under its limit, issues the link and queues its email: one statement whatever the outcome.
 * Over the limit it throws 429 (its count is kept when the route commits refusals).
 */
export async function requestLinkByEmail(
  sql: Db,
  link: EmailedLink,
  email: string,
  clientIp: string | null,
): Promise<void> {
  const accountKey = emailBlindIndex(email);
  const { token, hash } = newToken();
  const issued = issueToken(sql, {
    purpose: link.purpose,
    owner: { userId: sql`(select id from account)` },
    hash,
    ttlSeconds: link.ttlSeconds,
    minIntervalSeconds: LINK_RESEND_INTERVAL_SECONDS,
  });
  await countedLinkRequest(
    sql,
    link.scope,
    clientIp,
    sql`
    account as (
      select u.id from users u, bucket
       where ${emailIndexMatches(sql, sql`u.email_blind_index`, email)} and bucket.count <= ${LINK_SOURCE_LIMIT}
         and ${link.eligible(sql, accountKey, clientIp)}),
    issued as (${issued}),
    queued as (${queueForIssuedLink(sql, link.message(email, token))})`,
  );
}

const linkValidity = (seconds: number) =>
  seconds >= 24 * 60 * 60 ? `${Math.round(seconds / 86_400)} days` : `${Math.round(seconds / 60)} minutes`;

function resetMessage(email: string, token: string): OutboxMessage {
  return {
    kind: 'password_reset',
    recipient: email,
    subject: 'Resetting your Atlanta Academy of Dental Assisting password',
    body: [
      'Hello,',
      '',
      `Someone, hopefully you, asked to reset the password of your account. Open this link within ${linkValidity(RESET_LINK_TTL_SECONDS)}`,
      'to choose a new password; every device signed in to your account will be signed out:',
      '',
      portalLink(SET_PASSWORD_PAGE, token),
      '',
      'If you did not ask for it, ignore this message: your password stays as it is.',
    ].join('\n'),
  };
}

function unlockMessage(email: string, token: string): OutboxMessage {
  return {
    kind: 'sign_in_unlock',
    recipient: email,
    subject: 'Signing in to the Atlanta Academy of Dental Assisting',
    body: [
      'Hello,',
      '',
      'Signing in to your account was paused after repeated wrong passwords, and someone, hopefully',
      `you, asked to be let through. Open this link within ${linkValidity(UNLOCK_LINK_TTL_SECONDS)} on the device and network`,
      'you want to sign in from; then sign in with your password as usual:',
      '',
      portalLink('sign-in/unlock', token),
      '',
      'The link does not sign anyone in and does not change your password. If you did not ask for it,',
      'someone may be guessing your password: ignore this message and consider changing your password.',
    ].join('\n'),
  };
}

/** "Forgot password": any account that can still be opened, active or waiting for its first password. */
export const PASSWORD_RESET_LINK: EmailedLink = {
  purpose: 'password_reset',
  scope: 'password-reset-request',
  ttlSeconds: RESET_LINK_TTL_SECONDS,
  eligible: (sql) => sql`u.status in ('active', 'pending')`,
  message: resetMessage,
};

/** "Let me sign in again": only an active account whose sign-in is refused to this source. */
export const SIGN_IN_UNLOCK_LINK: EmailedLink = {
  purpose: 'sign_in_unlock',
  scope: 'unlock-request',
  ttlSeconds: UNLOCK_LINK_TTL_SECONDS,
  eligible: (sql, accountKey, clientIp) => sql`u.status = 'active' and ${signInLockedOut(sql, accountKey, clientIp)}`,
  message: unlockMessage,
};

function invitationMessage(email: string, token: string): OutboxMessage {
  return {
    kind: 'account_invitation',
    recipient: email,
    subject: 'Your Atlanta Academy of Dental Assisting account',
    body: [
      'Hello,',
      '',
      'The Atlanta Academy of Dental Assisting has opened an account for you. Open this link within',
      `${linkValidity(INVITATION_TTL_SECONDS)} to choose your password; then sign in with this email address:`,
      '',
      portalLink(SET_PASSWORD_PAGE, token),
      '',
      'If you did not expect this message, ignore it or tell the school.',
    ].join('\n'),
  };
}

/**
 * Issues (or replaces) the invitation of a pending account and queues its email, in the caller's
 * transaction (the account's creation, or a resend). Only the latest invitation works.
 */
export async function inviteAccount(tx: TransactionSql, account: { id: string; email: string }): Promise<void> {
  const { token, hash } = newToken();
  await issueToken(tx, {
    purpose: 'account_invitation',
    owner: { userId: account.id },
    hash,
    ttlSeconds: INVITATION_TTL_SECONDS,
  });
  await enqueueMessage(tx, invitationMessage(account.email, token));
}

/**
 * Sends a pending account a new invitation (the previous link stops working). `studentsOnly`: the
 * caller manages students, so the account must be a student's and nobody else's (a registrar must not
 * be able to mail a link into an administrator's account that also takes a course).
 */
export async function resendInvitation(tx: TransactionSql, userId: string, options: { studentsOnly: boolean }) {
  const [account] = await tx<{ email_ciphertext: string; status: string; roles: string[] }[]>`
    select u.email_ciphertext, u.status, array(select r.role_name from user_roles r where r.user_id = u.id) as roles
      from users u where u.id = ${userId} for update of u`;
  const isStudent = account?.roles.includes('student') ?? false;
  if (!account || (options.studentsOnly && !isStudent))
    throw notFound(options.studentsOnly ? 'No such student' : 'No such account');
  if (options.studentsOnly && account.roles.length > 1) {
    throw forbidden('This account also holds staff roles; an administrator manages it through /api/users');
  }
  if (account.status !== 'pending') {
    throw conflict('This account is not waiting for an invitation; its owner can use "Forgot password"');
  }
  await inviteAccount(tx, { id: userId, email: decrypt(account.email_ciphertext, 'users.email') });
}

/** The links that lead to "choose your password". */
const SET_PASSWORD_PURPOSES: readonly TokenPurpose[] = ['account_invitation', 'password_reset'];

interface LinkOwner {
  id: string;
  email_ciphertext: string;
  email_blind_index: Buffer;
}

/**
 * Sets the password of the account an invitation or reset link belongs to, and uses the link up. A
 * pending account becomes active; a locked or deactivated one is not reopened by a link (its token
 * counts as invalid). Every session of the account ends. Returns the account, for the audit trail.
 * The password rule is checked before the token is used, so a refused password keeps the link working.
 */
export async function setPasswordWithLink(tx: TransactionSql, token: string, password: string): Promise<LinkOwner> {
  const refuse = () => invalidToken('token', 'from "Forgot password"');
  if (!looksLikeToken(token)) throw refuse();
  const [owner] = await tx<LinkOwner[]>`
    select u.id, u.email_ciphertext, u.email_blind_index
      from one_time_tokens t join users u on u.id = t.user_id
     where t.token_hash = ${hashToken(token)} and t.purpose = any(${tx.array([...SET_PASSWORD_PURPOSES])}::text[])
       and t.used_at is null and t.expires_at > now() and u.status in ('active', 'pending')
       for update of t, u`;
  if (!owner) throw refuse();
  const problem = checkPasswordPolicy(password, { email: decrypt(owner.email_ciphertext, 'users.email') });
  if (problem) throw badRequest('Choose another password', [{ field: 'body.password', message: problem }]);
  const passwordHash = await hashPassword(password);
  await tx`
    with used as (
      update one_time_tokens set used_at = now()
       where user_id = ${owner.id} and purpose = any(${tx.array([...SET_PASSWORD_PURPOSES])}::text[]) and used_at is null)
    update users set password_hash = ${passwordHash}, status = 'active' where id = ${owner.id}`;
  await revokeAllForUser(tx, owner.id, 'password_changed');
  return owner;
}

/**
 * Uses up an unlock link in the caller's transaction and returns its account (for trusting the source
 * and the audit row); an unknown, used, expired or superseded token is a 400 naming `token`.
 */
export async function redeemUnlockLink(tx: Db, token: string): Promise<{ id: string; email_blind_index: Buffer }> {
  const refuse = () => invalidToken('token', 'from the sign-in page');
  if (!looksLikeToken(token)) throw refuse();
  const [account] = await tx<{ id: string; email_blind_index: Buffer }[]>`
    with redeemed as (${redeemToken(tx, 'sign_in_unlock', token)})
    select u.id, u.email_blind_index from users u join redeemed r on r.user_id = u.id`;
  if (!account) throw refuse();
  return account;
}
