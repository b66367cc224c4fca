// LRS credentials: the key and secret that course content and tools present to /api/xapi over HTTP Basic,
// with the scopes of xAPI's authorization section. Admins create them (the secret is shown once) and revoke
// them. The secret is 256 random bits and stored as its SHA-256: a slow password hash (argon2) defends a
// secret a person chose, which can be guessed; nobody can enumerate 2^256 secrets, so a fast hash loses
// nothing and keeps Basic authentication, which every xAPI request carries, at one indexed lookup.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { type AnySql, TEXT_ARRAY } from './db';
import { keyset, type Page, pageOf } from './pagination';

export const LRS_SCOPES = [
  'all',
  'all/read',
  'statements/read',
  'statements/read/mine',
  'statements/write',
  'state',
  'activities_profile',
  'agents_profile',
] as const;
export type LrsScope = (typeof LRS_SCOPES)[number];

export interface CredentialView {
  id: string;
  key: string;
  label: string;
  scopes: LrsScope[];
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
}

interface CredentialRow {
  id: string;
  key: string;
  label: string;
  scopes: LrsScope[];
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
}

const toView = (row: CredentialRow): CredentialView => ({
  id: row.id,
  key: row.key,
  label: row.label,
  scopes: row.scopes,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  revokedAt: row.revoked_at?.toISOString() ?? null,
});

const secretHash = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();

/** Creates a credential; the secret is in the answer only, never stored or shown again. */
export async function createCredential(
  sql: AnySql,
  input: { label: string; scopes: readonly LrsScope[] },
  createdBy: string,
): Promise<CredentialView & { secret: string }> {
  // Hex: no tool reads a key or secret starting with '-' as an option, and nothing needs escaping anywhere.
  const key = randomBytes(15).toString('hex');
  const secret = randomBytes(32).toString('hex');
  const [row] = await sql<CredentialRow[]>`
    insert into lrs_credentials (id, key, secret_sha256, label, scopes, created_by)
    values (${randomUUID()}, ${key}, ${secretHash(secret)}, ${input.label}, ${sql.array([...new Set(input.scopes)], TEXT_ARRAY)}, ${createdBy})
    returning id, key, label, scopes, created_by, created_at, revoked_at`;
  return { ...toView(row as CredentialRow), secret };
}

export const CREDENTIAL_ORDER = keyset(
  [
    ['c.created_at', 'time'],
    ['c.id', 'uuid'],
  ],
  'desc',
);

export async function listCredentials(
  sql: AnySql,
  limit: number,
  cursor: readonly [string, string] | undefined,
): Promise<Page<CredentialView>> {
  const rows = await sql<(CredentialRow & { page_key: string[] })[]>`
    select c.id, c.key, c.label, c.scopes, c.created_by, c.created_at, c.revoked_at, ${CREDENTIAL_ORDER.key(sql)}
      from lrs_credentials c
     where ${CREDENTIAL_ORDER.after(sql, cursor)}
     ${CREDENTIAL_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
  return pageOf(rows, limit, (read) => read.map(toView));
}

/** Revokes a credential (once: a second revoke keeps the first time); null when there is none. */
export async function revokeCredential(sql: AnySql, id: string, revokedBy: string): Promise<CredentialView | null> {
  const [row] = await sql<CredentialRow[]>`
    update lrs_credentials
       set revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, ${revokedBy})
     where id = ${id}
     returning id, key, label, scopes, created_by, created_at, revoked_at`;
  return row ? toView(row) : null;
}

export interface VerifiedCredential {
  id: string;
  key: string;
  scopes: ReadonlySet<LrsScope>;
}

/** The credential an `Authorization: Basic` header names, when its secret is right and it is not revoked. */
export async function verifyBasic(sql: AnySql, authorization: string): Promise<VerifiedCredential | null> {
  const match = /^Basic\s+([A-Za-z0-9+/=]{1,400})$/i.exec(authorization.trim());
  if (!match) return null;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const key = decoded.slice(0, colon);
  const secret = decoded.slice(colon + 1);
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(key)) return null;
  const [row] = await sql<{ id: string; secret_sha256: Buffer; scopes: LrsScope[]; revoked_at: Date | null }[]>`
    select id, secret_sha256, scopes, revoked_at from lrs_credentials where key = ${key}`;
  if (!row || row.revoked_at !== null) return null;
  if (!timingSafeEqual(row.secret_sha256, secretHash(secret))) return null;
  return { id: row.id, key, scopes: new Set(row.scopes) };
}
