// The audit trail (HIPAA §164.312(b)): one append-only row per request to a protected or PHI route,
// whatever its outcome, written before a PHI response leaves, and in the same transaction as the
// change a mutating request made. Never any PII: who is a user id.
import type { Caller } from './access';
import { type Sql, TEXT_ARRAY, type TransactionSql } from './db';

export interface AuditEntry {
  requestId: string;
  caller: Caller | null;
  /** A user the request acted for without a token (a sign-in, a refresh), when known. */
  actingUserId?: string | null | undefined;
  method: string;
  /** Route template, never the raw URL (which may carry personal data in its query). */
  route: string;
  resourceIds: Record<string, string>;
  status: number;
  durationMs: number;
  clientIp: string | null;
  userAgent: string | null;
  phi: boolean;
  event?: string | null | undefined;
}

const USER_AGENT_MAX = 512;
const ID_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Path parameters worth recording: ids. Anything else a client puts in a path (an email typed where an
 * id belongs, a 10 kB string) is recorded as `(invalid)`, so the trail never stores PII by accident.
 */
export function auditableIds(params: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(params).map(([name, value]) => [name, ID_SHAPE.test(value) ? value : '(invalid)']),
  );
}

/**
 * Writes one audit row through `sql`: a mutation's own transaction (so the change and its record
 * commit together), or the pool for a read and for a refusal that changed nothing.
 */
export async function writeAudit(sql: Sql | TransactionSql, entry: AuditEntry): Promise<void> {
  const userId = entry.caller?.userId ?? entry.actingUserId ?? null;
  const resourceIds = Object.keys(entry.resourceIds).length > 0 ? entry.resourceIds : null;
  await sql`
    insert into audit_log (request_id, user_id, token_id, roles, method, route, resource_ids, status, duration_ms,
                           client_ip, user_agent, phi, event)
    values (${entry.requestId}, ${userId}, ${entry.caller?.tokenId ?? null}, ${sql.array(entry.caller ? [...entry.caller.roles] : [], TEXT_ARRAY)}, ${entry.method},
            ${entry.route}, ${resourceIds ? sql.json(resourceIds) : null}, ${entry.status},
            ${Math.max(0, Math.round(entry.durationMs))}, ${entry.clientIp}::inet,
            ${entry.userAgent?.slice(0, USER_AGENT_MAX) ?? null}, ${entry.phi}, ${entry.event ?? null})`;
}
