// Refresh tokens: the sessions behind the 15-minute access tokens. A token is 32 random bytes
// (base64url); the database keeps only its SHA-256, so a stolen table cannot be replayed. Each sign-in
// starts a family; every refresh rotates the token inside its family (the old one is revoked with
// reason 'rotated' and points at its successor). A rotated token presented again means two parties
// hold the family (a thief and the user): the whole family is revoked and the caller audits it.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Sql, TransactionSql } from './db';
import { toUserViews, type UserRow, type UserView, userColumns } from './users';

type Db = Sql | TransactionSql;

export const REFRESH_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;
const TOKEN_BYTES = 32;
/** What `randomBytes(32).toString('base64url')` looks like; anything else is not worth a query. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const USER_AGENT_MAX = 512;

/** Why a session ended (the CHECK constraint of refresh_tokens.revoke_reason lists the same). */
export type RevokeReason =
  | 'logout'
  | 'logout_all'
  | 'reuse_detected'
  | 'password_changed'
  | 'user_deactivated'
  | 'roles_changed'
  | 'admin_revoked';

/** Where a session was started or refreshed from (kept with the token for the user's session list). */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}

export interface IssuedSession {
  /** The secret: handed to the client once, never stored or logged. */
  refreshToken: string;
  familyId: string;
  expiresAt: Date;
}

export function hashRefreshToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function newToken(): { token: string; hash: Buffer } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  return { token, hash: hashRefreshToken(token) };
}

const ttl = (sql: Db) => sql`now() + make_interval(secs => ${REFRESH_TOKEN_TTL_SECONDS})`;

/** Starts a session (a new family) for a user who just proved who they are. */
export async function issueSession(sql: Db, user: { id: string }, client: ClientInfo): Promise<IssuedSession> {
  const { token, hash } = newToken();
  const familyId = randomUUID();
  const [row] = await sql<{ expires_at: Date }[]>`
    insert into refresh_tokens (user_id, family_id, token_hash, expires_at, client_ip, user_agent)
    values (${user.id}, ${familyId}, ${hash}, ${ttl(sql)}, ${client.ip}::inet,
            ${client.userAgent?.slice(0, USER_AGENT_MAX) ?? null})
    returning expires_at`;
  return { refreshToken: token, familyId, expiresAt: (row as { expires_at: Date }).expires_at };
}

export type Rotation =
  | { outcome: 'rotated'; session: IssuedSession; user: UserView }
  /** A rotated token came back: its family is now revoked. */
  | { outcome: 'reused'; userId: string; familyId: string }
  /** Unknown, expired, revoked (logout, …) or its user is no longer active. */
  | { outcome: 'invalid' };

interface RotationRow extends Partial<UserRow> {
  presented_user_id: string;
  presented_family_id: string;
  presented_revoke_reason: string | null;
  successor_expires_at: Date | null;
}

/**
 * Exchanges a refresh token for its successor in ONE statement: the conditional UPDATE revokes the
 * presented token only if it is still live, and the successor is inserted only if that UPDATE
 * matched. Of two concurrent refreshes with one token, the second waits on the row lock, finds it
 * revoked and gets 'invalid': exactly one succeeds. (Both ran at once, so that is a race of the
 * user's own tabs, not a replay; a replay after the rotation committed is 'reused'.)
 * The user's status and roles are read in the same statement: a deactivated user cannot refresh,
 * and role changes take effect at the next refresh.
 */
export async function rotate(sql: Db, presentedToken: string, client: ClientInfo): Promise<Rotation> {
  if (!TOKEN_SHAPE.test(presentedToken)) return { outcome: 'invalid' };
  const presentedHash = hashRefreshToken(presentedToken);
  const successor = newToken();
  const successorId = randomUUID();
  // Every CTE sees the table as it was when the statement began: `presented` tells why the UPDATE
  // matched nothing. The successor's FK to itself is checked at the end of the statement.
  const [row] = await sql<RotationRow[]>`
    with presented as (
      select user_id, family_id, revoke_reason from refresh_tokens where token_hash = ${presentedHash}),
    used as (
      update refresh_tokens t
         set used_at = now(), revoked_at = now(), revoke_reason = 'rotated', replaced_by = ${successorId}
        from users
       where t.token_hash = ${presentedHash} and t.revoked_at is null and t.expires_at > now()
         and users.id = t.user_id and users.status = 'active'
      returning t.user_id, t.family_id),
    successor as (
      insert into refresh_tokens (id, user_id, family_id, token_hash, expires_at, client_ip, user_agent)
      select ${successorId}, user_id, family_id, ${successor.hash}, ${ttl(sql)}, ${client.ip}::inet,
             ${client.userAgent?.slice(0, USER_AGENT_MAX) ?? null}
        from used
      returning user_id, expires_at)
    select p.user_id as presented_user_id, p.family_id as presented_family_id,
           p.revoke_reason as presented_revoke_reason, s.expires_at as successor_expires_at, ${userColumns(sql)}
      from presented p
      left join successor s on true
      left join users u on u.id = s.user_id`;
  if (!row) return { outcome: 'invalid' };
  if (row.successor_expires_at && row.id) {
    const [user] = toUserViews([row as RotationRow & UserRow]);
    const session = {
      refreshToken: successor.token,
      familyId: row.presented_family_id,
      expiresAt: row.successor_expires_at,
    };
    return { outcome: 'rotated', session, user: user as UserView };
  }
  if (row.presented_revoke_reason === 'rotated') {
    await revokeFamily(sql, row.presented_family_id, 'reuse_detected');
    return { outcome: 'reused', userId: row.presented_user_id, familyId: row.presented_family_id };
  }
  return { outcome: 'invalid' };
}

/** Ends every live token of one family (one sign-in and its rotations). Returns how many. */
export async function revokeFamily(sql: Db, familyId: string, reason: RevokeReason): Promise<number> {
  const rows = await sql`
    update refresh_tokens set revoked_at = now(), revoke_reason = ${reason}
     where family_id = ${familyId} and revoked_at is null`;
  return rows.count;
}

/**
 * Ends every live session of a user (logout everywhere, password change, deactivation), except
 * the family `exceptFamily` when given (the session that changed the password stays signed in).
 */
export async function revokeAllForUser(
  sql: Db,
  userId: string,
  reason: RevokeReason,
  exceptFamily?: string | null,
): Promise<number> {
  const rows = await sql`
    update refresh_tokens set revoked_at = now(), revoke_reason = ${reason}
     where user_id = ${userId} and revoked_at is null
       ${exceptFamily ? sql`and family_id <> ${exceptFamily}` : sql``}`;
  return rows.count;
}

/** Logout: ends the family of the presented token, whatever state the token itself is in. */
export async function revokeFamilyOfToken(
  sql: Db,
  presentedToken: string,
  reason: RevokeReason,
): Promise<{ userId: string; familyId: string } | null> {
  if (!TOKEN_SHAPE.test(presentedToken)) return null;
  const [row] = await sql<{ user_id: string; family_id: string }[]>`
    with presented as (
      select user_id, family_id from refresh_tokens where token_hash = ${hashRefreshToken(presentedToken)}),
    revoked as (
      update refresh_tokens t set revoked_at = now(), revoke_reason = ${reason}
        from presented p
       where t.family_id = p.family_id and t.revoked_at is null)
    select user_id, family_id from presented`;
  return row ? { userId: row.user_id, familyId: row.family_id } : null;
}
