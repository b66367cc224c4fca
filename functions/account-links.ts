// The ways into an account that has no usable password: the invitation staff send with a new
// account (and may send again), and "forgot password". Both links open the portal's "choose your
// password" page, which posts here; lib/account-links.ts holds the shared steps.
//   POST auth/password-reset/request { email } → always 202; a link goes out only to an active or
//     pending account, at most one per account per minute, the source rate-limited.
//   POST auth/password-reset { token, password } → the password is set, the link used up, every
//     session of the account ended; a pending account becomes active. It signs nobody in.
//   POST users/{id}/invitation, POST students/{id}/invitation → a new invitation for a pending
//     account (the previous link stops working), by whoever may manage that account.
import { z } from 'zod';
import type { Role } from '../lib/access';
import {
  countLinkUse,
  INVITATION_TTL_SECONDS,
  RESET_LINK_TTL_SECONDS,
  requestLinkByEmail,
  resendInvitation,
  resetMessage,
  setPasswordWithLink,
} from '../lib/account-links';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { deliverNowInDevelopment } from '../lib/outbox';
import { STUDENT_MANAGER_ROLES } from '../lib/students';
import { recordSignInSuccess } from '../lib/throttle';
import { EmailLookup, NewPassword } from '../lib/users';

const ADMINS: readonly Role[] = ['admin'];
const Id = z.object({ id: z.uuid() });

/** The same body, whatever happened: the answer must not tell whether the address has an account. */
const RESET_REQUESTED = {
  message: `If this address belongs to an account, a link to choose a new password is on its way to it; it is valid for ${RESET_LINK_TTL_SECONDS / 60} minutes.`,
};

endpoint({
  name: 'auth-password-reset-request',
  methods: ['POST'],
  route: 'auth/password-reset/request',
  access: 'public',
  audit: true,
  phi: true,
  maxBodyBytes: 4096,
  body: z.strictObject({ email: EmailLookup }),
  // Over the limit the request is refused, and its count is kept (the statement's only write then).
  commitRefusals: true,
  handler: async function requestPasswordReset({ sql, body, clientIp, audit, afterCommit }) {
    await requestLinkByEmail(sql, {
      purpose: 'password_reset',
      scope: 'password-reset-request',
      email: body.email,
      clientIp,
      ttlSeconds: RESET_LINK_TTL_SECONDS,
      eligible: (q) => q`u.status in ('active', 'pending')`,
      message: (token) => resetMessage(body.email, token),
    });
    audit.event = 'password_reset_requested';
    afterCommit(deliverNowInDevelopment);
    return json(RESET_REQUESTED, 202);
  },
});

endpoint({
  name: 'auth-password-reset',
  methods: ['POST'],
  route: 'auth/password-reset',
  access: 'public',
  audit: true,
  maxBodyBytes: 4096,
  body: z.strictObject({ token: z.string().max(1_000), password: NewPassword }),
  // A wrong token is refused and must still count against its source (the only write before it).
  commitRefusals: true,
  handler: async function resetPassword({ sql, body, clientIp, audit }) {
    await countLinkUse(sql, 'password-reset', clientIp);
    const account = await setPasswordWithLink(sql, body.token, body.password);
    // Whoever holds the link holds the mailbox: this source may sign in at once, past any lockout.
    await recordSignInSuccess(sql, account.email_blind_index, clientIp);
    audit.actingUserId = account.id;
    audit.event = 'password_reset';
    return json({ message: 'Your password is set. Sign in with it; every other session was signed out.' });
  },
});

const INVITATION_SENT = {
  message: `A new invitation is on its way; it is valid for ${INVITATION_TTL_SECONDS / 86_400} days, and earlier links no longer work.`,
};

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
