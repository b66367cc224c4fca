// The route wrapper: every HTTP function is one `endpoint({...})` declaration. The wrapper
// authenticates, checks the declared roles (deny by default), parses path, query and body with
// zod, runs the handler, writes the audit row, maps errors to problem+json and builds the response
// through lib/http. A mutating request (POST, PUT, PATCH, DELETE) runs its handler in one
// transaction that also holds its audit row: the change and its record commit together or not at
// all. Handlers get their database handle as `sql` and never call db() themselves.
// Only `app` is imported at run time: it is the one named export that Node detects in this
// CommonJS bundle when it is loaded from ESM (vitest), so the same code runs everywhere.

import type { HttpMethod, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { app } from '@azure/functions';
import { type ZodType, z } from 'zod';
import { type Caller, hasAnyRole, type Role } from './access';
import { type AuditEntry, auditableIds, recordAudit, writeAudit } from './audit';
import { csrfTokenMatches, presentedAccessToken, verifyAccessToken } from './auth';
import { config } from './config';
import { closePool, db, type Sql, type TransactionSql } from './db';
import {
  badRequest,
  fieldErrors,
  forbidden,
  fromDatabaseError,
  HttpError,
  methodNotAllowed,
  payloadTooLarge,
  routeNotFound,
  serviceUnavailable,
  unauthorized,
  unsupportedMediaType,
  uriTooLong,
} from './errors';
import {
  type CachePolicy,
  type CorsMode,
  ifNoneMatchHits,
  notModified,
  preflightHeaders,
  problemReply,
  type Reply,
  respond,
  versionTag,
  withETag,
} from './http';
import { isSessionEnded } from './revocations';
import { type CompiledTemplate, compileTemplate, matchTemplate, trimSlashes } from './route-templates';

/** Who may call a route: `'public'` (anyone, said explicitly) or the roles that may. */
export type Access = 'public' | readonly Role[];

/** A protected route always has a caller; a public one may be called anonymously. */
export type CallerOf<A extends Access> = A extends 'public' ? Caller | null : Caller;

/** The methods that change state: their handlers run in the request's transaction. */
type MutatingMethod = Exclude<HttpMethod, 'GET' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT'>;

/**
 * A handler's database handle: the request's transaction for a mutating method, the pool for a read.
 * (A read holds no transaction: it needs no atomicity, and a pooled connection is freed per query.)
 */
export type SqlFor<M extends HttpMethod> = M extends MutatingMethod ? TransactionSql : Sql;

export interface HandlerInput<P, Q, B, A extends Access = Access, M extends HttpMethod = HttpMethod> {
  /**
   * Every query of the handler goes through this. For POST/PUT/PATCH/DELETE it is the request's
   * transaction: what the handler writes commits with the audit row once the handler returned, and
   * rolls back when the handler throws (use `sql.savepoint` where only part must roll back).
   */
  sql: SqlFor<M>;
  /** Runs `task` once the request's transaction committed (never when it rolled back). */
  afterCommit: (task: () => void) => void;
  params: P;
  query: Q;
  body: B;
  caller: CallerOf<A>;
  request: HttpRequest;
  context: InvocationContext;
  requestId: string;
  clientIp: string | null;
  /** What the audit row should add: ids the request created or reached, a security event. */
  audit: AuditNotes;
  /** The body's bytes as sent, on a route declared with `rawBody` (undefined when there is no body). */
  rawBody?: Buffer | undefined;
}

/**
 * The input of a named handler, by the kind of route: `ChangeInput` for a protected POST, PUT, PATCH
 * or DELETE (`sql` is the request's transaction), `ReadInput` for a protected GET (`sql` is the pool),
 * and the `Public…` pair for `access: 'public'` routes (the caller may be null). Type arguments are
 * the parsed params, query and body (`z.infer<typeof Schema>`).
 */
export type ChangeInput<P = unknown, Q = unknown, B = unknown> = HandlerInput<P, Q, B, readonly Role[], MutatingMethod>;
export type ReadInput<P = unknown, Q = unknown> = HandlerInput<P, Q, unknown, readonly Role[], 'GET'>;
export type PublicChangeInput<P = unknown, Q = unknown, B = unknown> = HandlerInput<P, Q, B, 'public', MutatingMethod>;
export type PublicReadInput<P = unknown, Q = unknown> = HandlerInput<P, Q, unknown, 'public', 'GET'>;

export interface AuditNotes {
  resourceIds: Record<string, string>;
  event: string | null;
  /** For routes that act for a user before any token exists (sign-in, refresh). */
  actingUserId: string | null;
  /** The route the row names when it is not the function's own template (the fallback's answers). */
  route?: string;
}

export interface EndpointSpec<P, Q, B, A extends Access = Access, M extends HttpMethod = HttpMethod> {
  /** Function name, unique in the app: `programs-list`. */
  name: string;
  methods: readonly M[];
  /** Route template without the `api/` prefix: `programs/{id:guid}`. */
  route: string;
  /** `'public'` for anonymous routes (must be said explicitly), else the roles that may call. */
  access: A;
  /** Defaults to `no-store`. */
  cache?: CachePolicy;
  /**
   * `credentialed` (the default): CORS for the configured origins only (lib/http.ts corsHeaders).
   * `anonymous`: `*` without credentials, for public capability addresses whose callers have an opaque
   * origin (the signed H5P asset addresses, read by a player in a sandboxed frame); lib/http.ts says why.
   */
  cors?: CorsMode;
  /** Whether the route reads or changes PII/PHI (audited as such; never cacheable). */
  phi?: boolean;
  params?: ZodType<P>;
  query?: ZodType<Q>;
  body?: ZodType<B>;
  maxBodyBytes?: number;
  /**
   * The handler reads the body itself (`rawBody`: its bytes, up to the body limit, whatever the content
   * type): for routes whose bodies are not JSON (multipart, documents of any type). No `body` schema then.
   */
  rawBody?: boolean;
  /**
   * The handler streams the request body itself from `request.body` (a file upload of up to hundreds of
   * megabytes, never held whole): the wrapper neither reads nor parses it, and only refuses (413) a
   * declared Content-Length over `maxBodyBytes`. The handler must bound what it reads; what it leaves
   * unread is drained after the answer like any refused body.
   */
  streamedBody?: boolean;
  /**
   * Headers on every answer of the route, errors and refusals included (the xAPI version header), derived
   * from the request.
   */
  headers?: (request: HttpRequest) => Record<string, string>;
  /**
   * Audit every request even though the route is public (sign-in, refresh, registration).
   * Protected and PHI routes are always audited.
   */
  audit?: boolean;
  /**
   * A 4xx the handler throws still commits what it wrote (with the audit row). Only for routes whose
   * writes before a refusal are records of the attempt itself, which a failed attempt must leave
   * behind: sign-in throttling counts a wrong password, a rate limit counts a refused request, a
   * reused refresh token revokes its family. Anything else such a handler writes that must not
   * survive a refusal goes inside `sql.savepoint(...)`. A 5xx or unexpected error still rolls back.
   */
  commitRefusals?: boolean;
  /**
   * Public cacheable reads only: a value that changes whenever anything the route serves changes (the
   * catalogue's version, kept by a trigger). The ETag is derived from it and the URL, so a matching
   * If-None-Match is answered 304 after one tiny read, before the handler runs; without it the ETag
   * is a hash of the body, and a 304 costs what a 200 does.
   */
  version?: (sql: Sql) => Promise<string>;
  handler: (input: HandlerInput<P, Q, B, A, M>) => Promise<Reply>;
}

export interface DeclaredRoute {
  name: string;
  methods: readonly HttpMethod[];
  route: string;
  access: 'public' | readonly Role[];
  cache: CachePolicy;
  phi: boolean;
  audited: boolean;
  /** The zod schemas that validate requests; the OpenAPI document is generated from them. */
  schemas: { params?: ZodType; query?: ZodType; body?: ZodType };
  /** The route's own body limit; `bodyLimitOf` gives the one in force. */
  maxBodyBytes: number | undefined;
}

const declared: DeclaredRoute[] = [];

/** Every route the app declared, for the authorization matrix and the OpenAPI document. */
export function declaredRoutes(): readonly DeclaredRoute[] {
  return declared;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Every method served on a route template, over all the functions declared with it. A template served by
 * several functions (GET and PATCH of `auth/me`) gets each preflight from just one of them, which must answer
 * for all: a browser sends the real request only when the preflight lists its method.
 */
export function methodsServedOn(route: string): string[] {
  const methods = new Set<string>();
  for (const other of declared) if (other.route === route) for (const method of other.methods) methods.add(method);
  return [...methods];
}

/** The most body bytes a route accepts (larger bodies get a 413): its own limit, else MAX_REQUEST_BODY_BYTES. */
export function bodyLimitOf(route: { maxBodyBytes?: number | undefined }): number {
  return route.maxBodyBytes ?? config().MAX_REQUEST_BODY_BYTES;
}

function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {};
  for (const key of new Set(search.keys())) {
    const values = search.getAll(key);
    result[key] = values.length === 1 ? (values[0] as string) : values;
  }
  return result;
}

/** `application/json` or a `+json` type; its charset, when given, must be UTF-8 (RFC 8259 §8.1). */
function checkJsonContentType(contentType: string): void {
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)) throw unsupportedMediaType('application/json');
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType)?.[1];
  // Decoding another charset as UTF-8 would store mojibake (or let bytes past the text rules): refuse it.
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') throw unsupportedMediaType('UTF-8 encoded JSON');
}

/**
 * Reads a JSON body, refusing more than `limit` bytes without buffering past it. A refused body is left
 * to `discardUnreadBody` (the reader's lock released, the stream not cancelled): see there why.
 */
async function readJsonBody(request: HttpRequest, limit: number): Promise<unknown> {
  const bytes = await readBodyBytes(request, limit, () =>
    checkJsonContentType(request.headers.get('content-type') ?? ''),
  );
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw badRequest('The body is not valid UTF-8 JSON', [{ field: 'body', message: 'Malformed JSON' }]);
  }
}

/** The body's bytes, refusing more than `limit` without buffering past it; `check` runs once a body is known to come. */
async function readBodyBytes(
  request: HttpRequest,
  limit: number,
  check: () => void = () => {},
): Promise<Buffer | undefined> {
  const declaredLength = Number(request.headers.get('content-length') ?? '0');
  const hasBody = declaredLength > 0 || request.headers.has('transfer-encoding');
  if (!hasBody || !request.body) return undefined;
  if (declaredLength > limit) throw payloadTooLarge(limit);
  check();
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw payloadTooLarge(limit);
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return size === 0 ? undefined : Buffer.concat(chunks);
}

/** A streamed body (`rawBody`) whose declared length is over the limit is refused before it is read. */
function refuseDeclaredLength(request: HttpRequest, limit: number): void {
  if (Number(request.headers.get('content-length') ?? '0') > limit) throw payloadTooLarge(limit);
}

/** How much of a refused or unread request body is read and dropped before the stream is cancelled. */
const UNREAD_BODY_DISCARD_BYTES = 8 * 1024 * 1024;

/**
 * Disposes of what is left of a request body once the answer is decided (refused at its limit, or never read
 * because the request failed earlier), in the background. It is read and dropped, not cancelled: under
 * Azure's HTTP stream proxy the body is the worker's Node IncomingMessage, and cancelling destroys it, which
 * destroys its socket before the 413 (or 401…) is written. Past UNREAD_BODY_DISCARD_BYTES the stream is
 * cancelled (the connection goes; a client still sending that much after its answer has no claim on it),
 * and only between reads: Node 20's undici closes the stream of an async-iterable body from a microtask,
 * which throws (uncaught) when the stream was cancelled while a read was pending.
 */
function discardUnreadBody(request: HttpRequest): void {
  const body = request.body as ReadableStream<Uint8Array> | null;
  if (!body || body.locked) return;
  const reader = body.getReader();
  const drop = async () => {
    let dropped = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      dropped += value.byteLength;
      if (dropped > UNREAD_BODY_DISCARD_BYTES) return reader.cancel();
    }
  };
  // A client gone mid-body makes the read fail: nothing is left to answer.
  drop().catch(() => undefined);
}

function parseWith<T>(schema: ZodType<T> | undefined, value: unknown, where: 'params' | 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw badRequest(`Check the ${where} of your request`, fieldErrors(where, result.error));
  return result.data;
}

/**
 * The client address as the platform reports it. Azure's front end appends the address it saw to
 * X-Forwarded-For, so the last entry is the trustworthy one (earlier entries are client-supplied).
 */
export function clientIpOf(request: HttpRequest): string | null {
  const forwarded = request.headers.get('x-forwarded-for');
  const last = forwarded?.split(',').pop()?.trim();
  if (!last) return null;
  // "1.2.3.4:5678" → "1.2.3.4"; "[::1]:5678" → "::1"; bare IPv6 stays as is.
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(last);
  if (bracketed) return bracketed[1] ?? null;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(last);
  // The shape alone lets 999.1.1.1 through, which the inet columns would refuse.
  if (v4) return z.ipv4().safeParse(v4[1]).success ? (v4[1] ?? null) : null;
  return z.ipv6().safeParse(last).success ? last : null;
}

/**
 * The problem an error means to the client. A violated constraint some area declared
 * (`declareConstraints`, lib/errors.ts) names the field; `body` is the parsed request body, to name
 * the field the caller sent.
 */
function toHttpError(error: unknown, context: InvocationContext, requestId: string, body?: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const mapped = fromDatabaseError(error, body);
  if (mapped) {
    if (mapped.status >= 500) context.warn(`request ${requestId}: database unavailable (${describe(error)})`);
    return mapped;
  }
  context.error(`request ${requestId}: unexpected error ${loggable(error)}`);
  return new HttpError({
    status: 500,
    slug: 'internal-error',
    title: 'Something went wrong on our side',
    detail: `Quote request id ${requestId} when you report this`,
  });
}

function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  return String(e?.code ?? e?.message ?? 'unknown');
}

/**
 * What the log may say about an unexpected error: its kind, code and stack frames. Not its message,
 * nor a database error's detail: PostgreSQL puts offending values (names, emails) in both.
 */
function loggable(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const code = (error as { code?: unknown }).code;
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '));
  return [`${error.name}${code ? ` ${String(code)}` : ''}`, ...frames.slice(0, 8)].join('\n');
}

/** Declares one route: registers it with the Functions runtime behind the wrapper. */
export function endpoint<
  P = undefined,
  Q = undefined,
  B = undefined,
  A extends Access = Access,
  M extends HttpMethod = HttpMethod,
>(spec: EndpointSpec<P, Q, B, A, M>): void {
  const cache = spec.cache ?? 'no-store';
  if (spec.phi && cache !== 'no-store') throw new Error(`${spec.name}: a PHI route must be no-store`);
  // The version-derived ETag names no caller: it is only right for what every caller sees alike.
  if (spec.version && cache !== 'public') throw new Error(`${spec.name}: a version key needs the public cache`);
  if (spec.rawBody && spec.body) throw new Error(`${spec.name}: a raw body has no body schema`);
  // `*` CORS only where no cookie or token is read: a capability address, never personal data.
  if (spec.cors === 'anonymous' && (spec.access !== 'public' || spec.phi || spec.methods.some((m) => m !== 'GET'))) {
    throw new Error(`${spec.name}: anonymous CORS is for public GET routes without personal data`);
  }
  declared.push({
    name: spec.name,
    audited: spec.access !== 'public' || spec.phi === true || spec.audit === true,
    schemas: { params: spec.params, query: spec.query, body: spec.body },
    methods: spec.methods,
    route: spec.route,
    access: spec.access,
    cache,
    phi: spec.phi ?? false,
    maxBodyBytes: spec.maxBodyBytes,
  });

  app.http(spec.name, {
    methods: servedMethods(spec.methods),
    route: spec.route,
    // Function keys are not how this API authenticates: the wrapper checks tokens and roles.
    authLevel: 'anonymous',
    handler: (request, context) => handle(spec, cache, request, context),
  });
}

/** The order methods are listed in (`Allow`), whatever order the routes were declared in. */
const METHOD_ORDER: readonly HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** What a function registers: its methods, HEAD wherever GET is served (RFC 9110 §9.3.2), and OPTIONS (CORS). */
function servedMethods(methods: readonly HttpMethod[]): HttpMethod[] {
  const served = new Set<HttpMethod>([...methods, ...(methods.includes('GET') ? (['HEAD'] as const) : []), 'OPTIONS']);
  return METHOD_ORDER.filter((method) => served.has(method));
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The longest path and query the app serves: Azure Functions limits an HTTP trigger's URL to 4 KB
 * (4,096 bytes) before the app sees it, so the app refuses the same URLs locally (414) and nothing
 * works on a laptop that cannot work in Azure. Past Node's 16 KB header limit the local host answers
 * the 414 itself, as Azure's front end does.
 */
export const MAX_URL_BYTES = 4096;

function checkUrlLength(request: HttpRequest): void {
  const url = new URL(request.url);
  if (Buffer.byteLength(url.pathname + url.search) > MAX_URL_BYTES) throw uriTooLong(MAX_URL_BYTES);
}

/**
 * Establishes the caller. A route that is public ignores a bad token (the caller is anonymous);
 * a protected route answers 401 for a missing, malformed, expired or forged token, and requires the
 * CSRF header when the token came from the browser's cookie on a state-changing request.
 */
async function authenticate(request: HttpRequest, isPublic: boolean): Promise<Caller | null> {
  const presented = presentedAccessToken(request);
  const caller = presented?.token ? await verifyAccessToken(presented.token) : null;
  if (isPublic) return caller;
  if (!caller) throw unauthorized(presented ? 'Your session is not valid; sign in again' : undefined);
  if (await isSessionEnded(caller.sessionId)) throw unauthorized('Your session has ended');
  if (presented?.via === 'cookie' && UNSAFE_METHODS.has(request.method) && !csrfTokenMatches(request)) {
    throw forbidden('Missing or wrong CSRF token');
  }
  return caller;
}

function authorize(caller: Caller | null, access: 'public' | readonly Role[]): void {
  if (access === 'public') return;
  if (!caller || !hasAnyRole(caller, access)) throw forbidden();
}

async function handle<P, Q, B, A extends Access, M extends HttpMethod>(
  spec: EndpointSpec<P, Q, B, A, M>,
  cache: CachePolicy,
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const started = performance.now();
  const requestId = context.invocationId;
  const origin = request.headers.get('origin');
  const respondCtx = {
    policy: cache,
    cors: spec.cors ?? 'credentialed',
    requestId,
    origin,
    ifNoneMatch: request.headers.get('if-none-match'),
  };
  if (request.method === 'OPTIONS') {
    // Every method served on the path, whichever function took the preflight: Azure gives it to the first
    // function by name whose template matches (`students-get` for `students/search`), not the most specific.
    const methods = methodsServedOnPath(requestSegments(spec.route, request.params));
    // Through the one response helper, like every answer: security headers and a request id on it too.
    return respond(
      { kind: 'empty', status: 204, headers: preflightHeaders(origin, methods) },
      // A preflight lists methods for the configured origins only, whatever the route's CORS mode: the
      // anonymous routes are simple GETs, which browsers send without one.
      { ...respondCtx, policy: 'no-store', cors: 'credentialed' },
    );
  }
  const isPublic = spec.access === 'public';
  const audited = !isPublic || spec.phi === true || spec.audit === true;
  const notes: AuditNotes = { resourceIds: auditableIds(request.params), event: null, actingUserId: null };
  const clientIp = clientIpOf(request);
  let caller: Caller | null = null;
  const auditEntry = (status: number): AuditEntry => ({
    requestId,
    caller,
    actingUserId: notes.actingUserId,
    method: request.method,
    route: notes.route ?? spec.route,
    resourceIds: notes.resourceIds,
    status,
    durationMs: performance.now() - started,
    clientIp,
    userAgent: request.headers.get('user-agent'),
    phi: spec.phi === true,
    event: notes.event,
  });
  let outcome: Outcome;
  let policy = cache;
  // The parsed body, once there is one: a declared constraint's problem names the field it sent.
  let sentBody: unknown;
  try {
    checkUrlLength(request);
    caller = await authenticate(request, isPublic);
    authorize(caller, spec.access);
    const params = parseWith(spec.params, request.params, 'params');
    const query = parseWith(spec.query, queryObject(request.query), 'query');
    if (spec.streamedBody) refuseDeclaredLength(request, bodyLimitOf(spec));
    const hasBody = BODY_METHODS.has(request.method) && !spec.streamedBody;
    const rawBody = hasBody && spec.rawBody ? await readBodyBytes(request, bodyLimitOf(spec)) : undefined;
    const jsonBody = hasBody && !spec.rawBody ? await readJsonBody(request, bodyLimitOf(spec)) : undefined;
    const body = parseWith(spec.body, jsonBody, 'body');
    sentBody = body;
    // authenticate() and authorize() guarantee a caller on every route that is not public.
    const checkedCaller = caller as CallerOf<A>;
    const input = {
      params,
      query,
      body,
      rawBody,
      caller: checkedCaller,
      request,
      context,
      requestId,
      clientIp,
      audit: notes,
    };
    if (UNSAFE_METHODS.has(request.method)) {
      outcome = await runMutation(spec, input, audited ? auditEntry : null, context);
      // Mutations are never cacheable, whatever the route declared.
      policy = 'no-store';
    } else {
      const afterRead: (() => void)[] = [];
      const tag = spec.version ? versionTag(await spec.version(db()), request.url) : null;
      const reply =
        tag && ifNoneMatchHits(respondCtx.ifNoneMatch, tag)
          ? notModified(tag)
          : withETag(
              await spec.handler({ ...input, sql: db() as SqlFor<M>, afterCommit: (task) => afterRead.push(task) }),
              tag,
            );
      outcome = { reply, recorded: false, afterCommit: afterRead };
    }
  } catch (error) {
    outcome = { reply: problemReply(toHttpError(error, context, requestId, sentBody), requestId), recorded: false };
  }
  let { reply } = outcome;
  if (audited && !outcome.recorded) {
    try {
      await recordAudit(auditEntry(reply.status));
    } catch (error) {
      // No audit row, no personal data: the response is withheld rather than sent unrecorded
      // (a 5xx already says nothing and may say more precisely why).
      context.error(`request ${requestId}: audit write failed`, describe(error));
      if (reply.status < 500) {
        reply = problemReply(serviceUnavailable('The request could not be recorded; try again'), requestId);
      }
    }
  }
  for (const task of outcome.afterCommit ?? []) runAfterCommit(task, context, requestId);
  discardUnreadBody(request);
  if (spec.headers) reply = { ...reply, headers: { ...spec.headers(request), ...reply.headers } } as Reply;
  return respond(reply, { ...respondCtx, policy, head: request.method === 'HEAD' });
}

/** Work after commit never changes the answer: a failure costs a log line. */
function runAfterCommit(task: () => void, context: InvocationContext, requestId: string): void {
  try {
    task();
  } catch (error) {
    context.warn(`request ${requestId}: work after commit failed (${describe(error)})`);
  }
}

/** What a request produced: its reply, whether its audit row is written, what runs after commit. */
interface Outcome {
  reply: Reply;
  recorded: boolean;
  afterCommit?: (() => void)[];
}

/** Thrown inside the transaction to roll it back while keeping the reply that explains why. */
class RolledBack extends Error {
  constructor(readonly reply: Reply) {
    super('rolled back');
  }
}

/**
 * Runs a mutating handler in one transaction with its audit row (`auditEntry`, null for a route that
 * is not audited). The handler's reply commits with its row; a thrown error rolls back and its row is
 * written afterwards on its own (nothing changed); a row that cannot be written rolls the change back
 * and the client is told to retry (503).
 */
async function runMutation<P, Q, B, A extends Access, M extends HttpMethod>(
  spec: EndpointSpec<P, Q, B, A, M>,
  input: Omit<HandlerInput<P, Q, B, A, M>, 'sql' | 'afterCommit'>,
  auditEntry: ((status: number) => AuditEntry) | null,
  context: InvocationContext,
): Promise<Outcome> {
  const { requestId } = input;
  const afterCommit: (() => void)[] = [];
  let auditFailure: unknown;
  try {
    const reply = await db().begin(async (tx) => {
      let handled: Reply;
      try {
        handled = await spec.handler({ ...input, sql: tx as SqlFor<M>, afterCommit: (task) => afterCommit.push(task) });
      } catch (error) {
        handled = problemReply(toHttpError(error, context, requestId, input.body), requestId);
        // Only the handler's own refusals commit: after a failed statement the transaction is void.
        const keep = spec.commitRefusals && error instanceof HttpError && error.status < 500;
        if (!keep) throw new RolledBack(handled);
      }
      if (auditEntry) {
        try {
          await writeAudit(tx, auditEntry(handled.status));
        } catch (error) {
          auditFailure = error;
          throw error;
        }
      }
      return handled;
    });
    return { reply, recorded: auditEntry !== null, afterCommit };
  } catch (error) {
    if (error instanceof RolledBack) return { reply: error.reply, recorded: false };
    if (auditFailure !== undefined) {
      context.error(`request ${requestId}: audit write failed, change rolled back`, describe(auditFailure));
      const retry = serviceUnavailable('The request could not be recorded, so nothing was changed; try again');
      // Not recorded: the wrapper tries once more to record the refusal itself, on its own.
      return { reply: problemReply(retry, requestId), recorded: false };
    }
    // The transaction could not begin or commit (the database is unreachable): the handler's outcome,
    // if it ran, is unknown to the client, so it is told to retry.
    return { reply: problemReply(toHttpError(error, context, requestId, input.body), requestId), recorded: false };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The fallback: unknown routes and wrong methods, answered by the app (problem+json, audited) instead of
// the host's empty 404, so Azure and the local host answer alike.
// ---------------------------------------------------------------------------------------------------------

/**
 * The fallback function's name. Azure does not order routes by specificity: the host maps HTTP functions
 * in the order of their names (FunctionMetadataManager sorts them ordinal, ignoring case) and the first
 * route whose template and method both match wins (WebJobsRouteBuilder adds no precedence). A catch-all
 * therefore must be named to sort after every other function, which a test checks; the local host, which
 * orders by ASP.NET precedence, puts a catch-all last anyway.
 */
export const FALLBACK_FUNCTION = 'zz-fallback';
const FALLBACK_ROUTE = '{*path}';
/** What the audit row of an answer to an unknown route names: a fixed marker, never the path (it may hold PII). */
export const UNKNOWN_ROUTE_MARKER = '(unknown route)';
const ALL_METHODS: HttpMethod[] = [...METHOD_ORDER];

const compiledTemplates = new Map<string, CompiledTemplate>();
function compiledTemplate(route: string): CompiledTemplate {
  let template = compiledTemplates.get(route);
  if (!template) {
    template = compileTemplate(route, route);
    compiledTemplates.set(route, template);
  }
  return template;
}

/** The declared templates a path (below the route prefix, decoded) matches, whatever the method. */
export function templatesMatchingPath(path: string): string[] {
  // The host passes the catch-all's value decoded already.
  return templatesMatching(segmentsOf(path));
}

function segmentsOf(path: string): string[] {
  const trimmed = trimSlashes(path);
  return trimmed === '' ? [] : trimmed.split('/');
}

function templatesMatching(segments: string[]): string[] {
  const routes = new Set(declared.map((route) => route.route));
  return [...routes].filter((route) => matchTemplate(compiledTemplate(route), segments) !== null);
}

/** Every method the declared routes serve on a path: the union over every template it matches. */
function methodsServedOnPath(segments: string[]): string[] {
  const served = new Set(templatesMatching(segments).flatMap((route) => methodsServedOn(route)));
  return METHOD_ORDER.filter((method) => served.has(method));
}

/**
 * The path (segments below the route prefix) a request was for, rebuilt from the template its function
 * matched and the parameter values the host bound; the fallback's catch-all holds the whole path.
 */
function requestSegments(route: string, params: Record<string, string>): string[] {
  if (route === FALLBACK_ROUTE) return segmentsOf(params.path ?? '');
  return segmentsOf(route).map((segment) =>
    segment.replace(/\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g, (_whole, name: string) => params[name] ?? ''),
  );
}

const fallbackSpec: EndpointSpec<undefined, undefined, undefined, 'public', HttpMethod> = {
  name: FALLBACK_FUNCTION,
  methods: ALL_METHODS,
  route: FALLBACK_ROUTE,
  access: 'public',
  // Audited like the protected routes' refusals: a probe for routes is worth a row. Volume: an anonymous
  // client can add rows here as it can with any protected route's 401, one small row per request,
  // pruned after AUDIT_RETENTION_DAYS; the row names a template or the marker, never the path.
  audit: true,
  handler: async ({ request, audit }) => {
    audit.resourceIds = {};
    const segments = requestSegments(FALLBACK_ROUTE, request.params);
    const templates = templatesMatching(segments);
    if (templates.length === 0) {
      audit.route = UNKNOWN_ROUTE_MARKER;
      audit.event = 'unknown_route';
      throw routeNotFound();
    }
    audit.route = templates.join(' | ');
    audit.event = 'method_not_allowed';
    throw methodNotAllowed(servedMethods(methodsServedOnPath(segments) as HttpMethod[]));
  },
};

/** Registers the fallback: every method, every path below the route prefix no other function takes. */
function registerFallback(): void {
  app.http(FALLBACK_FUNCTION, {
    methods: ALL_METHODS,
    route: FALLBACK_ROUTE,
    authLevel: 'anonymous',
    handler: (request, context) => handle(fallbackSpec, 'no-store', request, context),
  });
}

let terminateHookRegistered = false;

/** Runs once per instance: HTTP streaming on, and the pool closed when the host stops the app. */
function setUpApp(): void {
  if (terminateHookRegistered) return;
  terminateHookRegistered = true;
  app.setup({ enableHttpStream: true });
  app.hook.appTerminate(() => closePool());
  registerFallback();
}
setUpApp();
