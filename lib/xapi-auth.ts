// Who is calling the LRS and what they may do. Content and tools authenticate with an LRS credential over
// HTTP Basic (lib/xapi-credentials.ts) and get its scopes. The LMS's own bearer tokens work too: an admin
// has every scope, staff read everything, and a student reads and writes only statements and documents
// about themselves (their agent is their LMS account: homePage APP_PUBLIC_URL, name their user id).
// Browser cookies are not accepted here: xAPI clients send an Authorization header.
import type { Caller } from './access';
import { hasAnyRole } from './access';
import { config } from './config';
import type { AnySql } from './db';
import { forbidden, HttpError, unauthorized } from './errors';
import { isSessionEnded } from './revocations';
import { type LrsScope, verifyBasic } from './xapi-credentials';
import { agentHash } from './xapi-index';
import type { XapiRequest } from './xapi-protocol';

export interface LrsClient {
  scopes: ReadonlySet<LrsScope>;
  /** What the LRS sets as `authority` on what this client stores. */
  authority: Record<string, unknown>;
  authorityHash: Buffer;
  /** A student: everything they read or write is about this agent (its blind index). */
  ownAgent: Buffer | null;
  /** For the audit row: the credential, when the client used one. */
  credentialId: string | null;
  /**
   * A student's own LMS token: their user id. Only what a student sends about themselves moves their
   * module progress (lib/xapi-progress.ts); an LRS credential can assert anything about anyone.
   */
  learnerId: string | null;
  /** An admin's LMS token (not an `all` credential): may void a statement that moved a student's progress. */
  lmsAdmin: boolean;
}

/** The agent that stands for an LMS user in statements and documents. */
export function userAgent(userId: string): Record<string, unknown> {
  return { objectType: 'Agent', account: { homePage: config().APP_PUBLIC_URL, name: userId } };
}

function credentialAgent(key: string): Record<string, unknown> {
  return {
    objectType: 'Agent',
    name: 'LRS credential',
    account: { homePage: `${config().APP_PUBLIC_URL}/lrs`, name: key },
  };
}

function scopesOfUser(caller: Caller): LrsScope[] {
  if (hasAnyRole(caller, ['admin'])) return ['all'];
  if (hasAnyRole(caller, ['staff'])) return ['all/read'];
  // Activity profiles are course content: a student reads them through statements/read (functions/xapi.ts).
  if (hasAnyRole(caller, ['student'])) return ['statements/write', 'statements/read', 'state', 'agents_profile'];
  return [];
}

/** The client of a request: its Basic credential or bearer token (the wrapper verified the token: `caller`). */
export async function lrsClient(sql: AnySql, request: XapiRequest, caller: Caller | null): Promise<LrsClient> {
  const authorization = request.headers.get('authorization');
  if (authorization && /^basic\s/i.test(authorization)) {
    const credential = await verifyBasic(sql, authorization);
    if (!credential) throw unauthorized('Unknown or revoked LRS credential');
    const authority = credentialAgent(credential.key);
    return {
      scopes: credential.scopes,
      authority,
      authorityHash: agentHash(authority) as Buffer,
      ownAgent: null,
      credentialId: credential.id,
      learnerId: null,
      lmsAdmin: false,
    };
  }
  // The wrapper verified the token of the request's own Authorization header; one the alternate syntax
  // carried in its form body it never saw, so that must be the same header.
  const bearer = !!authorization && /^bearer\s/i.test(authorization) && authorization === request.sentAuthorization;
  if (!bearer || !caller) {
    throw withChallenge(unauthorized('Send an LRS credential (HTTP Basic) or a bearer token'));
  }
  if (await isSessionEnded(caller.sessionId)) throw unauthorized('Your session has ended');
  const scopes = scopesOfUser(caller);
  if (scopes.length === 0) throw forbidden('Your role does not use the learning record store');
  const authority = userAgent(caller.userId);
  const own = hasAnyRole(caller, ['admin', 'staff']) ? null : agentHash(authority);
  return {
    scopes: new Set(scopes),
    authority,
    authorityHash: agentHash(authority) as Buffer,
    ownAgent: own,
    credentialId: null,
    learnerId: own ? caller.userId : null,
    lmsAdmin: hasAnyRole(caller, ['admin']),
  };
}

function withChallenge(error: HttpError): HttpError {
  return new HttpError({
    status: error.status,
    slug: error.slug,
    title: error.title,
    detail: error.detail,
    headers: { 'WWW-Authenticate': 'Basic realm="xAPI"' },
  });
}

/** Refuses a client none of whose scopes allows the action (403). */
export function requireScope(client: LrsClient, ...allowed: LrsScope[]): void {
  if (client.scopes.has('all')) return;
  if (!allowed.some((scope) => client.scopes.has(scope)))
    throw forbidden('This LRS credential lacks the scope for this');
}

export const READ_STATEMENTS: LrsScope[] = ['all/read', 'statements/read', 'statements/read/mine'];

/** Reads limited to what the client stored itself (statements/read/mine without a wider read scope). */
export function readsOnlyOwnStored(client: LrsClient): boolean {
  return !client.scopes.has('all') && !client.scopes.has('all/read') && !client.scopes.has('statements/read');
}
