// One-time tokens: the one mechanism behind every emailed link and every single-use token of the
// API (the registration link and the registration token after it, the sign-in unlock link, the
// invitation of an account created by staff and the password reset link; lib/account-links.ts).
// A token is 32 random bytes (base64url, 43 characters); the database keeps only its SHA-256 in `one_time_tokens`, with its purpose, its owner (a user or a
// registration request), when it expires and when it was used. Redeeming is one UPDATE that only
// matches an unused, unexpired token of the given purpose, so a token works once, in its own flow,
// and never after its time; a new token for the same purpose and owner replaces the previous one,
// so only the latest link works.
//
// A random token rather than a signed JWT: single use needs the row anyway, and it cannot be mistaken
// for an access token signed with the same key. Issuing and redeeming are returned unexecuted, so a
// caller can run them as CTEs of its own statement and keep one round trip (registration does).
// Every step of every emailed link is also counted per source address here (`countLinkUse`,
// `countedLinkRequest`): registration and lib/account-links.ts apply the same limit, each step under its own scope.
import { createHash, randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { z } from 'zod';
import { config } from './config';
import type { Sql, TransactionSql } from './db';
import { badRequest, type HttpError } from './errors';
import {
  hitRateLimit,
  type RateLimitBucket,
  rateLimitDecision,
  rateLimitHit,
  refuseOverLimit,
  sourceKey,
} from './throttle';

type Db = Sql | TransactionSql;

/**
 * The answer of a step of an emailed link (asking for one, using one): a sentence for the person, the
 * same whatever happened where the answer must not tell whether the address has an account.
 */
export const LinkNotice = z.strictObject({ message: z.string() });
export const linkNotice = (message: string): z.infer<typeof LinkNotice> => ({ message });

/** What a token is for; each flow redeems only its own. */
export type TokenPurpose =
  | 'registration_verify'
  | 'registration_complete'
  | 'sign_in_unlock'
  | 'account_invitation'
  | 'password_reset'
  | 'agreement_signing';

/** Whose a token is: a user, a registration request (a person without an account yet) or an agreement. */
export type TokenOwner =
  | { userId: string | postgres.Fragment }
  | { registrationRequestId: string | postgres.Fragment }
  | { signedDocumentId: string | postgres.Fragment };

function ownerOf(owner: TokenOwner): { column: string; value: string | postgres.Fragment } {
  if ('userId' in owner) return { column: 'user_id', value: owner.userId };
  if ('registrationRequestId' in owner)
    return { column: 'registration_request_id', value: owner.registrationRequestId };
  return { column: 'signed_document_id', value: owner.signedDocumentId };
}

export interface NewToken {
  /** What the link carries; never stored. */
  token: string;
  hash: Buffer;
}

/** What `randomBytes(32).toString('base64url')` looks like; anything else is not worth a query. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest();

export function newToken(): NewToken {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

/** Whether a presented value could be a token at all (a malformed one costs no query). */
export const looksLikeToken = (value: string): boolean => TOKEN_SHAPE.test(value);

/** A link to a page of the portal (lib/config.ts requires an https one in production). */
export function portalLink(page: string, token: string): string {
  return `${config().APP_PUBLIC_URL.replace(/\/+$/, '')}/${page}?token=${token}`;
}

/**
 * One answer for an unknown, malformed, expired, used or replaced token: nothing to learn from it.
 * `what` says which flow to start again ("the registration").
 */
export function invalidToken(field: string, what: string): HttpError {
  return badRequest(`This link or token is invalid or has expired; start ${what} again`, [
    { field: `body.${field}`, message: 'Invalid or expired' },
  ]);
}

export interface IssueOptions {
  purpose: TokenPurpose;
  owner: TokenOwner;
  hash: Buffer;
  ttlSeconds: number;
  /**
   * When the owner's previous token of this purpose was issued less than this long ago, it is kept
   * and nothing is issued (the statement returns no row): at most one email per owner per interval.
   */
  minIntervalSeconds?: number;
}

/**
 * Issues (or replaces) the owner's token of a purpose: `insert … on conflict … do update … returning`.
 * An owner given as SQL (`sql\`(select id from upserted)\``) that comes out NULL issues nothing.
 */
export function issueToken(sql: Db, options: IssueOptions): postgres.PendingQuery<{ id: string; expires_at: Date }[]> {
  const { purpose, owner, hash, ttlSeconds, minIntervalSeconds = 0 } = options;
  const { column, value: ownerValue } = ownerOf(owner);
  const ownerColumn = sql(column);
  const ownerExpression = typeof ownerValue === 'string' ? sql`${ownerValue}::uuid` : ownerValue;
  return sql<{ id: string; expires_at: Date }[]>`
    insert into one_time_tokens as t (purpose, token_hash, ${ownerColumn}, issued_at, expires_at)
    select ${purpose}, ${hash}, owner.id, now(), now() + make_interval(secs => ${ttlSeconds})
      from (select ${ownerExpression} as id) owner
     where owner.id is not null
    on conflict (purpose, ${ownerColumn}) where ${ownerColumn} is not null do update
       set token_hash = excluded.token_hash, issued_at = excluded.issued_at, expires_at = excluded.expires_at,
           used_at = null
     where t.issued_at <= now() - make_interval(secs => ${minIntervalSeconds})
    returning t.id, t.expires_at`;
}

export interface RedeemedToken {
  user_id: string | null;
  registration_request_id: string | null;
  signed_document_id: string | null;
}

/**
 * Uses a token: marks an unused, unexpired token of `purpose` with this hash as used and returns its
 * owner; no row for anything else. Inside a transaction, a rollback gives the token back.
 */
export function redeemToken(
  sql: Db,
  purpose: TokenPurpose,
  token: string,
  options: { readableForSeconds?: number } = {},
): postgres.PendingQuery<RedeemedToken[]> {
  // A token that stays readable after use (an agreement's status and copy) gets a new expiry for that.
  const expires = options.readableForSeconds
    ? sql`now() + make_interval(secs => ${options.readableForSeconds})`
    : sql`expires_at`;
  return sql<RedeemedToken[]>`
    update one_time_tokens set used_at = now(), expires_at = ${expires}
     where token_hash = ${hashToken(token)} and purpose = ${purpose} and used_at is null and expires_at > now()
    returning user_id, registration_request_id, signed_document_id`;
}

/**
 * The owner of an unexpired token without using it (the steps before a token's single use, and reads
 * after it when `used` is allowed); no row for anything else.
 */
export function findToken(
  sql: Db,
  purpose: TokenPurpose,
  token: string,
  options: { used: 'refused' | 'allowed' },
): postgres.PendingQuery<(RedeemedToken & { used_at: Date | null })[]> {
  return sql<(RedeemedToken & { used_at: Date | null })[]>`
    select user_id, registration_request_id, signed_document_id, used_at from one_time_tokens
     where token_hash = ${hashToken(token)} and purpose = ${purpose} and expires_at > now()
       ${options.used === 'refused' ? sql`and used_at is null` : sql``}`;
}

/** Used and expired tokens are kept this long (for the audit trail's sake), then deleted. */
export const SPENT_TOKEN_RETENTION_DAYS = 1;

// ---------------------------------------------------------------------------------------------------
// The limits on an emailed link's steps (asking for a link, presenting its token), per source address
// ---------------------------------------------------------------------------------------------------

/** Requests per source address and step per window, for every step of every emailed link. */
export const LINK_SOURCE_LIMIT = 10;
export const LINK_SOURCE_WINDOW_SECONDS = 60;

/**
 * Counts a step that presents a token against its source (`scope` names the step) and refuses it with
 * 429 past the limit; the routes commit refusals, so guessing tokens is counted too.
 */
export async function countLinkUse(sql: Db, scope: string, clientIp: string | null): Promise<void> {
  refuseOverLimit(
    await hitRateLimit(sql, sourceKey(sql, scope, clientIp), LINK_SOURCE_LIMIT, LINK_SOURCE_WINDOW_SECONDS),
  );
}

/**
 * Runs a request for a link as one statement that first counts it against its source, as the CTE
 * `bucket`: `steps` are the CTEs after it (each writing nothing once `bucket.count` is over
 * LINK_SOURCE_LIMIT: issuing the token, queuing its email). One round trip whatever the outcome, so the
 * answer's timing tells nothing; 429 over the limit (its count is kept when the route commits refusals).
 */
export async function countedLinkRequest(
  sql: Db,
  scope: string,
  clientIp: string | null,
  steps: postgres.Fragment,
): Promise<void> {
  const [bucket] = await sql<RateLimitBucket[]>`
    with bucket as (${rateLimitHit(sql, sourceKey(sql, scope, clientIp), LINK_SOURCE_WINDOW_SECONDS)}),
    ${steps}
    select count, retry_after from bucket`;
  refuseOverLimit(rateLimitDecision(bucket, LINK_SOURCE_LIMIT));
}
