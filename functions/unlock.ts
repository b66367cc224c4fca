// The way back in for a student whose sign-in is throttled (lib/throttle.ts): an emailed one-time
// link that lets the source it is opened from try again. Two public, audited steps:
//   1. POST auth/unlock/request { email } → always 202, whether or not the address has an account and
//      whether or not it is locked; a link goes out (through the outbox) only when the account is
//      active and sign-in is refused to this source because of failed attempts (the account ceiling
//      or this source's own lockout), at most one per account per minute (lib/account-links.ts).
//   2. POST auth/unlock { token } → the source of this request counts as known for the account (its
//      failures are forgotten and the account ceiling no longer applies to it), as after a successful
//      sign-in. It signs nobody in: the password is still needed, so the link alone is worth nothing
//      to whoever reads the mailbox but not the password.
// The token is a one-time token (lib/one-time-links.ts): random, stored only as its hash, valid
// LINK_TTL, single use, and only the latest link of an account works.
import { z } from 'zod';
import { countLinkUse, requestLinkByEmail } from '../lib/account-links';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { invalidToken, looksLikeToken, portalLink, redeemToken } from '../lib/one-time-links';
import { deliverNowInDevelopment, type OutboxMessage } from '../lib/outbox';
import { recordSignInSuccess, signInLockedOut } from '../lib/throttle';
import { EmailLookup } from '../lib/users';

/** The emailed link is valid this long. */
const LINK_TTL_SECONDS = 30 * 60;

function unlockMessage(email: string, token: string): OutboxMessage {
  return {
    kind: 'sign_in_unlock',
    recipient: email,
    subject: 'Signing in to the Atlanta Academy of Dental Assisting',
    body: [
      'Hello,',
      '',
      'Signing in to your account was paused after repeated wrong passwords, and someone, hopefully',
      `you, asked to be let through. Open this link within ${LINK_TTL_SECONDS / 60} minutes on the device and network`,
      'you want to sign in from; then sign in with your password as usual:',
      '',
      portalLink('sign-in/unlock', token),
      '',
      'The link does not sign anyone in and does not change your password. If you did not ask for it,',
      'someone may be guessing your password: ignore this message and consider changing your password.',
    ].join('\n'),
  };
}

/** The same body, whatever happened: the answer must not tell whether the address has an account. */
const REQUEST_ACCEPTED = {
  message: `If this address belongs to an account whose sign-in is paused, a link is on its way to it; it is valid for ${LINK_TTL_SECONDS / 60} minutes.`,
};

endpoint({
  name: 'auth-unlock-request',
  methods: ['POST'],
  route: 'auth/unlock/request',
  access: 'public',
  audit: true,
  phi: true,
  maxBodyBytes: 4096,
  body: z.strictObject({ email: EmailLookup }),
  // Over the limit the request is refused, and its count is kept (the statement's only write then).
  commitRefusals: true,
  handler: async function authUnlockRequest({ sql, body, clientIp, audit, afterCommit }) {
    // The same work whatever the address: the database decides inside one statement whether a
    // message is queued, so neither the answer nor its timing tells anything.
    await requestLinkByEmail(sql, {
      purpose: 'sign_in_unlock',
      scope: 'unlock-request',
      email: body.email,
      clientIp,
      ttlSeconds: LINK_TTL_SECONDS,
      eligible: (q, accountKey) => q`u.status = 'active' and ${signInLockedOut(q, accountKey, clientIp)}`,
      message: (token) => unlockMessage(body.email, token),
    });
    audit.event = 'unlock_requested';
    afterCommit(deliverNowInDevelopment);
    return json(REQUEST_ACCEPTED, 202);
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
  // A wrong token is refused and must still count against its source (the only write before it).
  commitRefusals: true,
  handler: async function authUnlock({ sql, body, clientIp, audit }) {
    await countLinkUse(sql, 'unlock', clientIp);
    if (!looksLikeToken(body.token)) throw invalidToken('token', 'from the sign-in page');
    // The token is used up and the source trusted in the request's transaction, with its audit row.
    const [account] = await sql<{ id: string; email_blind_index: Buffer }[]>`
      with redeemed as (${redeemToken(sql, 'sign_in_unlock', body.token)})
      select u.id, u.email_blind_index from users u join redeemed r on r.user_id = u.id`;
    if (!account) throw invalidToken('token', 'from the sign-in page');
    await recordSignInSuccess(sql, account.email_blind_index, clientIp);
    audit.actingUserId = account.id;
    audit.event = 'sign_in_unlocked';
    return json({ message: 'This device may sign in again: sign in with your password.' });
  },
});
