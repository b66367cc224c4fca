// The audit trail (HIPAA §164.312(b)): one append-only row per request to a protected or PHI route,
// whatever its outcome, written before a PHI response leaves, and in the same transaction as the
// change a mutating request made. Never any PII: who is a user id.

import type postgres from 'postgres';
import type { Caller } from './access';
import { type AnySql, db, type TransactionSql } from './db';

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

/** An audit row as the insert reads it (`jsonb_to_recordset` below). */
interface AuditRow {
  request_id: string;
  user_id: string | null;
  token_id: string | null;
  roles: string[];
  method: string;
  route: string;
  resource_ids: Record<string, string> | null;
  status: number;
  duration_ms: number;
  client_ip: string | null;
  user_agent: string | null;
  phi: boolean;
  event: string | null;
}

function rowOf(entry: AuditEntry): AuditRow {
  return {
    request_id: entry.requestId,
    user_id: entry.caller?.userId ?? entry.actingUserId ?? null,
    token_id: entry.caller?.tokenId ?? null,
    roles: entry.caller ? [...entry.caller.roles] : [],
    method: entry.method,
    route: entry.route,
    resource_ids: Object.keys(entry.resourceIds).length > 0 ? entry.resourceIds : null,
    status: entry.status,
    duration_ms: Math.max(0, Math.round(entry.durationMs)),
    client_ip: entry.clientIp,
    user_agent: entry.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
    phi: entry.phi,
    event: entry.event ?? null,
  };
}

/** One insert of any number of rows: one statement (and, on the pool, one commit) for all of them. */
async function insertRows(sql: AnySql, rows: readonly AuditRow[]): Promise<void> {
  await sql`
    insert into audit_log (request_id, user_id, token_id, roles, method, route, resource_ids, status, duration_ms,
                           client_ip, user_agent, phi, event)
    select r.request_id, r.user_id, r.token_id, array(select jsonb_array_elements_text(r.roles)), r.method, r.route,
           r.resource_ids, r.status, r.duration_ms, r.client_ip, r.user_agent, r.phi, r.event
      from jsonb_to_recordset(${sql.json(rows as unknown as postgres.JSONValue)}) as r(
             request_id text, user_id uuid, token_id uuid, roles jsonb, method text, route text, resource_ids jsonb,
             status integer, duration_ms integer, client_ip inet, user_agent text, phi boolean, event text)`;
}

/** Writes one audit row in a mutation's own transaction, so the change and its record commit together. */
export async function writeAudit(tx: TransactionSql, entry: AuditEntry): Promise<void> {
  await insertRows(tx, [rowOf(entry)]);
}

// Reads and refusals commit their rows on the pool. With fsync on, a commit is a disk flush, and every
// protected read would pay one; instead the rows of requests in flight at the same moment share one
// multi-row insert (group commit). Each request still waits until its own row is durable before its
// response leaves. A batch starts on the next turn of the event loop (setImmediate: well under a
// millisecond) or as soon as a running batch ends; at most MAX_BATCHES_IN_FLIGHT run at once, so
// under load the queue grows into bigger batches instead of more commits.
const MAX_BATCH_ROWS = 100;
const MAX_BATCHES_IN_FLIGHT = 2;

interface Waiting {
  row: AuditRow;
  durable: () => void;
  failed: (error: unknown) => void;
}

const waiting: Waiting[] = [];
let batchesInFlight = 0;
let flushScheduled = false;

/**
 * Records a read's (or a refusal's) audit row on the pool; resolves once the row is committed. A
 * batch that fails is retried row by row, so one bad row fails only its own request.
 */
export function recordAudit(entry: AuditEntry): Promise<void> {
  return new Promise((durable, failed) => {
    waiting.push({ row: rowOf(entry), durable, failed });
    scheduleFlush();
  });
}

function scheduleFlush(): void {
  if (flushScheduled || batchesInFlight >= MAX_BATCHES_IN_FLIGHT) return;
  flushScheduled = true;
  setImmediate(flush);
}

function flush(): void {
  flushScheduled = false;
  while (waiting.length > 0 && batchesInFlight < MAX_BATCHES_IN_FLIGHT) {
    const batch = waiting.splice(0, MAX_BATCH_ROWS);
    batchesInFlight++;
    commitBatch(batch)
      // commitBatch settles every waiter itself; this is for the unforeseen, and a waiter settles once.
      .catch((error: unknown) => {
        for (const waiter of batch) waiter.failed(error);
      })
      .finally(() => {
        batchesInFlight--;
        if (waiting.length > 0) scheduleFlush();
      });
  }
}

/**
 * Commits a batch in one insert; when that fails, row by row, so one bad row fails only its own request.
 * A waiter is told `durable` only once its row committed. db() throws (synchronously) while the server is
 * known to be gone: every db() call here is inside a try, so that fails the batch's requests, and only
 * theirs, at once.
 */
async function commitBatch(batch: readonly Waiting[]): Promise<void> {
  try {
    await insertRows(
      db(),
      batch.map((waiter) => waiter.row),
    );
  } catch (error) {
    if (batch.length === 1) return batch[0]?.failed(error);
    await Promise.all(batch.map(commitAlone));
    return;
  }
  for (const waiter of batch) waiter.durable();
}

async function commitAlone(waiter: Waiting): Promise<void> {
  try {
    await insertRows(db(), [waiter.row]);
  } catch (error) {
    return waiter.failed(error);
  }
  waiter.durable();
}
