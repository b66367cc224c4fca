// Student self-registration (functions/registration.ts): the three steps' statements, their tokens,
// limits and message. Both tokens are one-time tokens (lib/one-time-links.ts: random, stored only as a
// hash, expiring, single use), of two purposes: the emailed one only verifies, the registration token
// only completes, and the request's status says which step is next.
import { z } from 'zod';
import { decrypt, emailBlindIndex, encrypt } from './crypto';
import type { AnySql, TransactionSql } from './db';
import { badRequest } from './errors';
import {
  countedLinkRequest,
  countLinkUse,
  invalidToken as invalidLink,
  issueToken,
  LINK_SOURCE_LIMIT,
  looksLikeToken,
  newToken,
  portalLink,
  redeemToken,
} from './one-time-links';
import { type OutboxMessage, queueForIssuedLink } from './outbox';
import { checkPasswordPolicy } from './password-policy';
import { emailIndexMatches, insertUser } from './users';

/** The emailed link is valid this long. */
export const REQUEST_TTL_SECONDS = 30 * 60;
/** The registration token (after the link was opened) is valid this long. */
const COMPLETION_TTL_SECONDS = 15 * 60;
/** At most one email per address per this interval, whoever asks (no mail-bombing an address). */
const RESEND_INTERVAL_SECONDS = 60;
const USER_AGENT_MAX = 512;
/** A registration request is forgotten this many days after it expired (the outbox timer prunes). */
const REGISTRATION_RETENTION_DAYS = 30;

// ---------------------------------------------------------------------------------------------------
// Tokens, limits, messages
// ---------------------------------------------------------------------------------------------------

/** One answer for an unknown, malformed, expired or already used token: nothing to learn from it. */
const invalidToken = (field: string) => invalidLink(field, 'the registration');

const weakPassword = (reason: string) => badRequest(reason, [{ field: 'body.password', message: reason }]);

/** The scope of a step's rate limit; each step counts separately per source. */
const scopeOf = (step: 'request' | 'verify' | 'complete') => `register-${step}`;

/**
 * Counts the request against its source (one round trip); 429 with Retry-After over the limit. The
 * count must survive the request's refusal (a wrong token is what the limit is for): the routes that
 * call this declare `commitRefusals`.
 */
export async function enforceSourceLimit(
  sql: TransactionSql,
  step: 'verify' | 'complete',
  clientIp: string | null,
): Promise<void> {
  await countLinkUse(sql, scopeOf(step), clientIp);
}

function verificationMessage(email: string, token: string): OutboxMessage {
  const link = portalLink('register/verify', token);
  return {
    kind: 'registration_verification',
    recipient: email,
    subject: 'Confirm your email address for the Atlanta Academy of Dental Assisting',
    body: [
      'Hello,',
      '',
      'Someone, hopefully you, asked to create a student account at the Atlanta Academy of Dental',
      `Assisting with this email address. To continue, open this link within ${REQUEST_TTL_SECONDS / 60} minutes:`,
      '',
      link,
      '',
      'If you did not ask for this, ignore this message: no account is created without the link.',
    ].join('\n'),
  };
}

// ---------------------------------------------------------------------------------------------------
// 1. Request a link
// ---------------------------------------------------------------------------------------------------

/**
 * Records a request for a link to `email` and queues the link (one statement, whatever the outcome);
 * 429 over the source's limit. The caller delivers the outbox after commit.
 */
export async function requestRegistration(
  sql: TransactionSql,
  email: string,
  from: { ip: string | null; userAgent: string | null },
): Promise<void> {
  // The same work whether or not the address has an account (token, ciphertexts, one statement
  // that always writes the source's counter and commits), so the response time does not tell
  // either: the database decides inside the statement.
  const blindIndex = emailBlindIndex(email);
  const { token, hash } = newToken();
  const queued = queueForIssuedLink(sql, verificationMessage(email, token));
  const userAgent = from.userAgent?.slice(0, USER_AGENT_MAX) ?? null;
  // An address with an account gets nothing (not even an "already registered" notice): a notice
  // would make this public route a way to mail any student or staff member at will, and the
  // sign-in page is where that person goes anyway. Within RESEND_INTERVAL of the last link the
  // request is left as it is (no second email); otherwise the new token replaces the old one.
  // Over the source's limit nothing but the counter is written. The counter is bumped in this same
  // statement (countedLinkRequest), so there is one round trip whatever the outcome.
  const issued = issueToken(sql, {
    purpose: 'registration_verify',
    owner: { registrationRequestId: sql`(select id from upserted)` },
    hash,
    ttlSeconds: REQUEST_TTL_SECONDS,
  });
  await countedLinkRequest(
    sql,
    scopeOf('request'),
    from.ip,
    sql`
    upserted as (
      insert into registration_requests as r
             (email_ciphertext, email_blind_index, expires_at, request_ip, user_agent)
      select ${encrypt(email, 'registration_requests.email')}, ${blindIndex},
             now() + make_interval(secs => ${REQUEST_TTL_SECONDS}), ${from.ip}::inet, ${userAgent}
        from bucket
       where bucket.count <= ${LINK_SOURCE_LIMIT}
         and not exists (select 1 from users u where ${emailIndexMatches(sql, sql`u.email_blind_index`, email)})
      on conflict (email_blind_index) do update
         set email_ciphertext = excluded.email_ciphertext,
             status = 'pending', expires_at = excluded.expires_at, verified_at = null, completed_at = null,
             request_ip = excluded.request_ip, user_agent = excluded.user_agent
       where r.updated_at <= now() - make_interval(secs => ${RESEND_INTERVAL_SECONDS})
      returning r.id),
    issued as (${issued}),
    queued as (${queued})`,
  );
}

// ---------------------------------------------------------------------------------------------------
// 2. Open the link
// ---------------------------------------------------------------------------------------------------

/** The answer of an opened link: the token that completes the registration, and until when it does. */
export const RegistrationTokenView = z.strictObject({ registrationToken: z.string(), expiresAt: z.iso.datetime() });

export const toRegistrationTokenView = (verified: {
  registrationToken: string;
  expiresAt: Date;
}): z.infer<typeof RegistrationTokenView> => ({
  registrationToken: verified.registrationToken,
  expiresAt: verified.expiresAt.toISOString(),
});

/**
 * Uses the emailed token and issues the registration token, in one statement; the one answer of
 * invalidToken for any token that does not verify. (The caller counts the attempt first.)
 */
export async function verifyRegistration(sql: TransactionSql, token: string) {
  if (!looksLikeToken(token)) throw invalidToken('token');
  const registration = newToken();
  // One statement: the emailed token is used up, its pending request moves on, and the registration
  // token is issued to that request (nothing when the token or the request's step is wrong).
  const issued = issueToken(sql, {
    purpose: 'registration_complete',
    owner: { registrationRequestId: sql`(select id from verified)` },
    hash: registration.hash,
    ttlSeconds: COMPLETION_TTL_SECONDS,
  });
  const [row] = await sql<{ id: string; expires_at: Date }[]>`
    with redeemed as (${redeemToken(sql, 'registration_verify', token)}),
    verified as (
      update registration_requests r
         set status = 'verified', verified_at = now(),
             expires_at = now() + make_interval(secs => ${COMPLETION_TTL_SECONDS})
        from redeemed
       where r.id = redeemed.registration_request_id and r.status = 'pending'
      returning r.id),
    issued as (${issued})
    select (select id from verified) as id, expires_at from issued`;
  if (!row) throw invalidToken('token');
  return { requestId: row.id, registrationToken: registration.token, expiresAt: row.expires_at };
}

// ---------------------------------------------------------------------------------------------------
// 3. Create the account
// ---------------------------------------------------------------------------------------------------

/** The answer of a completed registration: the new account (a student), nothing personal. */
export const RegisteredView = z.strictObject({ id: z.uuid(), roles: z.array(z.literal('student')) });

export const toRegisteredView = (userId: string): z.infer<typeof RegisteredView> => ({
  id: userId,
  roles: ['student'],
});

export interface RegistrationCompletion {
  registrationToken: string;
  firstName: string;
  lastName: string;
  password: string;
}

/**
 * Claims the verified request and creates the student's account, inside a savepoint so that a refusal
 * rolls both back and keeps only the attempt's count. (The caller counts the attempt first.)
 */
export async function completeRegistration(
  sql: TransactionSql,
  input: RegistrationCompletion,
): Promise<{ userId: string; requestId: string }> {
  // Length and the common list first: an over-long password costs neither a query nor a hash.
  const early = checkPasswordPolicy(input.password);
  if (early) throw weakPassword(early);
  if (!looksLikeToken(input.registrationToken)) throw invalidToken('registrationToken');
  return sql.savepoint(async (tx) => {
    // Using the token and claiming the request first makes completion single use: a concurrent
    // second attempt waits on the token's row and then finds it used. Any error below rolls both back.
    const [claimed] = await tx<{ id: string; email_ciphertext: string }[]>`
      with redeemed as (${redeemToken(tx, 'registration_complete', input.registrationToken)})
      update registration_requests r set status = 'completed', completed_at = now()
        from redeemed
       where r.id = redeemed.registration_request_id and r.status = 'verified'
      returning r.id, r.email_ciphertext`;
    if (!claimed) throw invalidToken('registrationToken');
    const email = decrypt(claimed.email_ciphertext, 'registration_requests.email');
    const reason = checkPasswordPolicy(input.password, { email });
    if (reason) throw weakPassword(reason);
    // 409 when the address got an account meanwhile (the blind index is unique).
    const user = await insertUser(tx, {
      email,
      firstName: input.firstName,
      lastName: input.lastName,
      password: input.password,
      roles: ['student'],
    });
    return { userId: user.id, requestId: claimed.id };
  });
}

/** Deletes the requests that expired over REGISTRATION_RETENTION_DAYS ago; returns how many. */
export async function pruneExpiredRegistrations(sql: AnySql): Promise<number> {
  const [row] = await sql<{ removed: number }[]>`
    with removed as (
      delete from registration_requests
       where expires_at < now() - make_interval(days => ${REGISTRATION_RETENTION_DAYS})
      returning 1)
    select count(*)::int as removed from removed`;
  return row?.removed ?? 0;
}
