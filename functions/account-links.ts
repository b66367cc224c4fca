// The ways into an account by an emailed link; lib/account-links.ts holds their messages and statements.
//   POST auth/password-reset/request { email } → always 202; a link goes out only to an active or
//     pending account, at most one per account per minute, the source rate-limited.
//   POST auth/password-reset { token, password } → the password is set, the link used up, every
//     session of the account ended; a pending account becomes active. It signs nobody in.
//   POST auth/unlock/request { email } → always 202, whether or not the address has an account and
//     whether or not it is locked; a link goes out only when the account is active and sign-in is
//     refused to this source because of failed attempts (lib/throttle.ts: the account ceiling or this
//     source's own lockout), at most one per account per minute.
//   POST auth/unlock { token } → the source of this request counts as known for the account (its
//     failures are forgotten and the account ceiling no longer applies to it), as after a successful
//     sign-in. It signs nobody in: the password is still needed, so the link alone is worth nothing
//     to whoever reads the mailbox but not the password.
//   POST users/{id}/invitation, POST students/{id}/invitation → a new invitation for a pending
//     account (the previous link stops working), by whoever may manage that account.
// Every token is a one-time token (lib/one-time-links.ts): random, stored only as its hash, expiring,
// single use, and only the latest link of an account and purpose works.
import { z } from 'zod';
import type { Role } from '../lib/access';
import {
  type EmailedLink,
  INVITATION_TTL_SECONDS,
  PASSWORD_RESET_LINK,
  RESET_LINK_TTL_SECONDS,
  redeemUnlockLink,
  requestLinkByEmail,
  resendInvitation,
  SIGN_IN_UNLOCK_LINK,
  setPasswordWithLink,
  UNLOCK_LINK_TTL_SECONDS,
} from '../lib/account-links';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { countLinkUse, LinkNotice, linkNotice } from '../lib/one-time-links';
import { deliverNowInDevelopment } from '../lib/outbox';
import { STUDENT_MANAGER_ROLES } from '../lib/students';
import { recordSignInSuccess } from '../lib/throttle';
import { EmailLookup, NewPassword } from '../lib/users';

const ADMINS: readonly Role[] = ['admin'];
const Id = z.object({ id: z.uuid() });

/**
 * A "send me a link" step. The answer is the same body whatever happened (it must not tell whether
 * the address has an account), and the database decides inside one statement whether a message is
 * queued, so neither the answer nor its timing tells anything.
 */
function linkRequestRoute(name: string, route: string, link: EmailedLink, event: string, accepted: string): void {
  endpoint({
    name,
    methods: ['POST'],
    route,
    access: 'public',
    audit: true,
    phi: true,
    maxBodyBytes: 4096,
    body: z.strictObject({ email: EmailLookup }),
    responses: { 202: LinkNotice },
    problems: [429],
    // Over the limit the request is refused, and its count is kept (the statement's only write then).
    commitRefusals: true,
    handler: async function requestEmailedLink({ sql, body, clientIp, audit, afterCommit }) {
      await requestLinkByEmail(sql, link, body.email, clientIp);
      audit.event = event;
      afterCommit(deliverNowInDevelopment);
      return json(linkNotice(accepted), 202);
    },
  });
}

linkRequestRoute(
  'auth-password-reset-request',
  'auth/password-reset/request',
  PASSWORD_RESET_LINK,
  'password_reset_requested',
  `If this address belongs to an account, a link to choose a new password is on its way to it; it is valid for ${RESET_LINK_TTL_SECONDS / 60} minutes.`,
);

linkRequestRoute(
  'auth-unlock-request',
  'auth/unlock/request',
  SIGN_IN_UNLOCK_LINK,
  'unlock_requested',
  `If this address belongs to an account whose sign-in is paused, a link is on its way to it; it is valid for ${UNLOCK_LINK_TTL_SECONDS / 60} minutes.`,
);

endpoint({
  name: 'auth-password-reset',
  methods: ['POST'],
  route: 'auth/password-reset',
  access: 'public',
  audit: true,
  maxBodyBytes: 4096,
  body: z.strictObject({ token: z.string().max(1_000), password: NewPassword }),
  responses: { 200: LinkNotice },
  problems: [429],
  // A wrong token is refused and must still count against its source (the only write before it).
  commitRefusals: true,
  handler: async function resetPassword({ sql, body, clientIp, audit }) {
    await countLinkUse(sql, 'password-reset', clientIp);
    const account = await setPasswordWithLink(sql, body.token, body.password);
    // Whoever holds the link holds the mailbox: this source may sign in at once, past any lockout.
    await recordSignInSuccess(sql, account.email_blind_index, clientIp);
    audit.actingUserId = account.id;
    audit.event = 'password_reset';
    return json(linkNotice('Your password is set. Sign in with it; every other session was signed out.'));
  },
});

endpoint({
  name: 'auth-unlock',
  methods: ['POST'],
  route: 'auth/unlock',
  access: 'public',
  audit: true,
  maxBodyBytes: 4096,
  body: z.strictObject({ token: z.string().max(1_000) }),
  responses: { 200: LinkNotice },
  problems: [429],
  // A wrong token is refused and must still count against its source (the only write before it).
  commitRefusals: true,
  handler: async function authUnlock({ sql, body, clientIp, audit }) {
    await countLinkUse(sql, 'unlock', clientIp);
    // The token is used up and the source trusted in the request's transaction, with its audit row.
    const account = await redeemUnlockLink(sql, body.token);
    await recordSignInSuccess(sql, account.email_blind_index, clientIp);
    audit.actingUserId = account.id;
    audit.event = 'sign_in_unlocked';
    return json(linkNotice('This device may sign in again: sign in with your password.'));
  },
});

const INVITATION_SENT = linkNotice(
  `A new invitation is on its way; it is valid for ${INVITATION_TTL_SECONDS / 86_400} days, and earlier links no longer work.`,
);

/**
 * A new invitation for a pending account, by whoever may create that account: administrators for any
 * account, student managers for student-only accounts.
 */
function invitationResendRoute(name: string, route: string, access: readonly Role[], studentsOnly: boolean): void {
  endpoint({
    name,
    methods: ['POST'],
    route,
    access,
    phi: true,
    params: Id,
    responses: { 202: LinkNotice },
    // 409: the account is not waiting for an invitation.
    problems: [409],
    handler: async function resendAccountInvitation({ sql, params, audit, afterCommit }) {
      audit.resourceIds.id = params.id;
      await resendInvitation(sql, params.id, { studentsOnly });
      audit.event = 'invitation_sent';
      afterCommit(deliverNowInDevelopment);
      return json(INVITATION_SENT, 202);
    },
  });
}

invitationResendRoute('users-invitation-resend', 'users/{id}/invitation', ADMINS, false);
invitationResendRoute('students-invitation-resend', 'students/{id}/invitation', STUDENT_MANAGER_ROLES, true);
