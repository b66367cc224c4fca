// The types of a route declaration: who may call it (`Access`), what its handler gets
// (`HandlerInput`, and the `ChangeInput` / `ReadInput` shorthands for named handlers), what it
// declares (`EndpointSpec`) and what the route table keeps of it (`DeclaredRoute`). Apart from the
// code of lib/endpoint.ts so that the wrapper's parts can share them without importing each other.

import type { HttpMethod, HttpRequest, InvocationContext } from '@azure/functions';
import type { ZodType } from 'zod';
import type { Caller, Role } from './access';
import type { Sql, TransactionSql } from './db';
import type { CachePolicy, CorsMode, Reply } from './http';

/** Who may call a route: `'public'` (anyone, said explicitly) or the roles that may. */
export type Access = 'public' | readonly Role[];

/** A protected route always has a caller; a public one may be called anonymously. */
export type CallerOf<A extends Access> = A extends 'public' ? Caller | null : Caller;

/** The methods that change state: their handlers run in the request's transaction. */
export type MutatingMethod = Exclude<HttpMethod, 'GET' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT'>;

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

/**
 * A 2xx answer whose body is not JSON: the media types it may have (a PDF, a CSV or NDJSON export, a file
 * as it was stored, which is any type).
 */
export interface MediaBody {
  media: readonly string[];
}

/**
 * What a route's 2xx answer carries, per status: the zod schema of its JSON body (the view's own schema,
 * from lib/<area>.ts), a `mediaBody`, or `null` for no body (204). The OpenAPI document publishes these,
 * and under test the wrapper holds every answer to them (lib/response-contract.ts); a route without any
 * is listed by test/openapi-contract.test.ts until it has them.
 */
export type SuccessStatus = 200 | 201 | 202 | 204 | 206 | 207;
export type SuccessBody = ZodType | MediaBody | null;
/** A 503 is declared only where it is not a problem document (the readiness report while migrations are pending). */
export type Responses = Partial<Record<SuccessStatus | 503, SuccessBody>>;

/**
 * Error statuses a route's handler answers itself, beyond those the wrapper gives every route of its kind
 * (400 for a route with input, 401/403 for a protected one, 404 for a record named in the path, 413/415 for
 * a body, 414 and 503 for all): the OpenAPI document lists each with the problem schema.
 */
export type HandlerProblemStatus = 400 | 401 | 403 | 404 | 409 | 410 | 412 | 416 | 422 | 429 | 502 | 503;

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
  /** The bodies of its 2xx answers, for the OpenAPI document and the contract check. */
  responses?: Responses;
  /** The error statuses the handler itself may answer (the wrapper's own are derived). */
  problems?: readonly HandlerProblemStatus[];
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
  /** What the route's 2xx answers carry; undefined when the route has not declared them yet. */
  responses: Responses | undefined;
  problems: readonly HandlerProblemStatus[];
  /** How the body is read: parsed JSON, bytes handed to the handler, or streamed by it. */
  bodyKind: 'json' | 'raw' | 'streamed';
  /** The route's own body limit; `bodyLimitOf` gives the one in force. */
  maxBodyBytes: number | undefined;
}
