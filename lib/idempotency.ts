// Idempotency-Key for POSTs that must never happen twice (a payment), with the semantics payment APIs
// use (Stripe's; the IETF httpapi idempotency-key draft): the first answer to a key is stored with the
// request's fingerprint and replayed byte for byte to a retry with the same payload; the same key with
// another payload is a 422; a retry while the first request is still running is a 409. Keys belong to
// the caller who sent them (two clerks' keys never collide) and to a scope (the kind of request).
//
// It runs inside the request's transaction: a transaction-scoped advisory lock on the key settles a
// race (the loser is told to retry), the stored answer commits with the change it describes, and a
// request that fails (4xx or 5xx) stores nothing, so its retry runs afresh. Answers are stored
// encrypted: they describe a student's payment. Keys are kept (the table is never pruned), which more
// than meets the draft's "at least 24 hours".
import { createHash } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { decrypt, encrypt } from './crypto';
import type { TransactionSql } from './db';
import { badRequest, HttpError } from './errors';
import type { Reply } from './http';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
/** Visible ASCII, 1 to 255 characters: a UUID or any random token a client makes. */
const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;

/** The key of a request, or a 400 naming the header when it is missing or malformed. */
export function idempotencyKeyOf(request: HttpRequest): string {
  const raw = request.headers.get(IDEMPOTENCY_HEADER);
  // A structured-field string ("…") as the draft writes it, or the bare token most clients send.
  const key = raw && /^".*"$/.test(raw) ? raw.slice(1, -1) : raw;
  if (key && KEY_SHAPE.test(key)) return key;
  throw badRequest(`Send an ${IDEMPOTENCY_HEADER} header: a unique value per payment (a UUID), repeated on retries`, [
    {
      field: 'headers.idempotency-key',
      message: key ? 'Use 1 to 255 visible ASCII characters' : 'Required',
    },
  ]);
}

/** JSON with object keys in sorted order: the same payload always has the same fingerprint. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const fingerprintOf = (payload: unknown): Buffer => createHash('sha256').update(canonical(payload)).digest();

export interface IdempotentRequest {
  callerId: string;
  /** What kind of request the key is for (`payment`). */
  scope: string;
  key: string;
  /** The request as it matters: its target and validated body. */
  payload: unknown;
}

/** What a first request answered, as stored: status, exact body bytes (as text) and headers. */
interface StoredAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

const replayOf = (answer: StoredAnswer): Reply => ({
  kind: 'bytes',
  status: answer.status,
  body: Buffer.from(answer.body, 'utf8'),
  contentType: 'application/json; charset=utf-8',
  headers: { ...answer.headers, 'Idempotent-Replayed': 'true' },
});

/** A signed 64-bit advisory lock id for the key (PostgreSQL's advisory locks take a bigint). */
const lockIdOf = (request: IdempotentRequest) =>
  createHash('sha256')
    .update(`${request.callerId}\n${request.scope}\n${request.key}`)
    .digest()
    .readBigInt64BE(0)
    .toString();

/**
 * Runs `work` once for this caller's key: its JSON answer (a 2xx) is stored in `sql`'s transaction
 * and returned; a retry with the same payload gets those bytes again, flagged `Idempotent-Replayed`.
 */
export async function onceForKey(
  sql: TransactionSql,
  request: IdempotentRequest,
  work: () => Promise<{ status: number; body: unknown; headers?: Record<string, string> }>,
): Promise<{ reply: Reply; replayed: boolean }> {
  const fingerprint = fingerprintOf(request.payload);
  // A key whose first request has committed is answered from its stored row without the lock, so
  // retries of a finished payment never queue behind each other (they used to get 409 from the
  // lock while nothing was running). Only a key with no stored answer takes the lock, and looks
  // again once it holds it: the first request may have committed in between.
  const before = await storedReplay(sql, request, fingerprint);
  if (before) return before;
  const [lock] = await sql<{ held: boolean }[]>`select pg_try_advisory_xact_lock(${lockIdOf(request)}::bigint) as held`;
  if (!lock?.held) throw stillRunning();
  const after = await storedReplay(sql, request, fingerprint);
  if (after) return after;
  const outcome = await work();
  const answer: StoredAnswer = {
    status: outcome.status,
    body: JSON.stringify(outcome.body),
    headers: outcome.headers ?? {},
  };
  await sql`
    insert into idempotency_keys (caller_id, scope, key, request_hash, response_status, response_ciphertext)
    values (${request.callerId}, ${request.scope}, ${request.key}, ${fingerprint}, ${answer.status},
            ${encrypt(JSON.stringify(answer), 'idempotency_keys.response')})`;
  return { reply: { ...replayOf(answer), headers: answer.headers }, replayed: false };
}

/** The stored answer replayed, a 422 for another payload under the key, or null for a key never used. */
async function storedReplay(
  sql: TransactionSql,
  request: IdempotentRequest,
  fingerprint: Buffer,
): Promise<{ reply: Reply; replayed: boolean } | null> {
  const [stored] = await sql<{ request_hash: Buffer; response_ciphertext: string }[]>`
    select request_hash, response_ciphertext from idempotency_keys
     where caller_id = ${request.callerId} and scope = ${request.scope} and key = ${request.key}`;
  if (!stored) return null;
  if (!stored.request_hash.equals(fingerprint)) throw keyReused();
  return {
    reply: replayOf(JSON.parse(decrypt(stored.response_ciphertext, 'idempotency_keys.response'))),
    replayed: true,
  };
}

const stillRunning = () =>
  new HttpError({
    status: 409,
    slug: 'idempotency-key-in-use',
    title: 'A request with this Idempotency-Key is still being processed',
    detail: 'Retry in a moment: you will get its answer',
    headers: { 'Retry-After': '1' },
  });

const keyReused = () =>
  new HttpError({
    status: 422,
    slug: 'idempotency-key-reused',
    title: 'This Idempotency-Key was used for a different request',
    detail: 'Use a new key for a new payment; a retry must repeat the original request exactly',
    errors: [{ field: 'headers.idempotency-key', message: 'Already used with another payload' }],
  });
