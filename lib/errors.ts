// Every error a client can see is an HttpError, rendered as application/problem+json (RFC 9457)
// by lib/http. Anything else that escapes a handler becomes a logged 500 that says nothing more.
import { type ZodError, z } from 'zod';

export interface FieldError {
  /** Where the bad value was: `body.email`, `query.limit`, `params.id`. */
  field: string;
  message: string;
}

export interface ProblemInit {
  status: number;
  /** Stable machine-readable slug; becomes `urn:aada:problem:<slug>`. */
  slug: string;
  title: string;
  detail?: string | undefined;
  errors?: FieldError[] | undefined;
  headers?: Record<string, string> | undefined;
}

/**
 * The problem document every error answer is (what lib/http's problemReply writes): the one shared
 * `Problem` component of the OpenAPI document.
 */
export const ProblemSchema = z.object({
  type: z.string().describe('`urn:aada:problem:<slug>`: stable, for programs to branch on'),
  title: z.string(),
  status: z.int().min(400).max(599),
  detail: z.string().optional(),
  errors: z
    .array(z.object({ field: z.string().describe('`body.email`, `query.limit`, `params.id`'), message: z.string() }))
    .optional(),
  requestId: z.string().optional(),
});

/** The `type` of a problem document: `urn:aada:problem:<slug>`. */
export const problemType = (slug: string): string => `urn:aada:problem:${slug}`;

export class HttpError extends Error {
  readonly status: number;
  readonly slug: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;

  constructor(init: ProblemInit) {
    super(init.detail ?? init.title);
    this.name = 'HttpError';
    this.status = init.status;
    this.slug = init.slug;
    this.title = init.title;
    this.detail = init.detail;
    this.errors = init.errors;
    this.headers = init.headers ?? {};
  }
}

export const badRequest = (detail: string, errors?: FieldError[]) =>
  new HttpError({ status: 400, slug: 'validation-error', title: 'Your request is not valid', detail, errors });

export const unauthorized = (detail = 'Sign in to continue') =>
  new HttpError({ status: 401, slug: 'unauthorized', title: 'Authentication required', detail });

export const forbidden = (detail = 'You are not allowed to do this') =>
  new HttpError({ status: 403, slug: 'forbidden', title: 'Forbidden', detail });

export const notFound = (detail = 'No such resource') =>
  new HttpError({ status: 404, slug: 'not-found', title: 'Not found', detail });

/**
 * No function serves the path (the app's fallback answers it). Its own type, not `not-found`, so a client
 * (the bench driver, a portal) can tell a route that does not exist from a record that does not.
 */
export const ROUTE_NOT_FOUND_SLUG = 'route-not-found';
export const routeNotFound = () =>
  new HttpError({
    status: 404,
    slug: ROUTE_NOT_FOUND_SLUG,
    title: 'No such route',
    detail: 'No operation is served at this path; GET /api/openapi.json lists them',
  });

export const conflict = (detail: string) => new HttpError({ status: 409, slug: 'conflict', title: 'Conflict', detail });

export const payloadTooLarge = (limit: number) =>
  new HttpError({
    status: 413,
    slug: 'payload-too-large',
    title: 'Request body too large',
    detail: `The request body may be at most ${limit} bytes`,
  });

export const unsupportedMediaType = (expected: string) =>
  new HttpError({
    status: 415,
    slug: 'unsupported-media-type',
    title: 'Unsupported media type',
    detail: `Send the body as ${expected}`,
  });

export const methodNotAllowed = (allowed: readonly string[]) =>
  new HttpError({
    status: 405,
    slug: 'method-not-allowed',
    title: 'Method not allowed',
    detail: `This route answers ${allowed.join(', ')}`,
    headers: { Allow: allowed.join(', ') },
  });

export const uriTooLong = (limit: number) =>
  new HttpError({
    status: 414,
    slug: 'uri-too-long',
    title: 'URL too long',
    detail: `The path and query may be at most ${limit} bytes`,
  });

export const tooManyRequests = (retryAfterSeconds: number) =>
  new HttpError({
    status: 429,
    slug: 'rate-limited',
    title: 'Too many requests',
    detail: `Try again in ${retryAfterSeconds} seconds`,
    headers: { 'Retry-After': String(retryAfterSeconds) },
  });

export const serviceUnavailable = (detail: string, retryAfterSeconds = 5) =>
  new HttpError({
    status: 503,
    slug: 'service-unavailable',
    title: 'Service temporarily unavailable',
    detail,
    headers: { 'Retry-After': String(retryAfterSeconds) },
  });

/** Field errors from a failed zod parse, each named by where it came from (`body.email`). */
export function fieldErrors(where: 'body' | 'query' | 'params', error: ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    field: [where, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
}

// ---------------------------------------------------------------------------------------------------
// Constraint violations: one map from a constraint's name to the problem it means
// ---------------------------------------------------------------------------------------------------

/** What a violated constraint means to the client: its status, the field it concerns and why. */
export interface ConstraintProblem {
  /** 409 for a clash with what is stored (a unique value taken), 400 for a value the request got wrong. */
  status: 400 | 409;
  /**
   * Where the offending value was (`body.code`). A list names the first of them the request's body sent
   * (a CHECK across two fields is about whichever one the caller changed), else the first.
   */
  field: string | readonly string[];
  message: string;
}

const constraintProblems = new Map<string, ConstraintProblem>();

/**
 * Declares what violations of an area's constraints mean, by constraint name (name them explicitly in
 * the migration). Called once at load by the area's lib module: the wrapper then turns a unique,
 * foreign-key or check violation of one of them into that problem, so no handler catches database
 * errors. This module knows no area; each area brings its own names. One name, one meaning.
 */
export function declareConstraints(problems: Readonly<Record<string, ConstraintProblem>>): void {
  for (const [name, problem] of Object.entries(problems)) {
    const known = constraintProblems.get(name);
    if (known && JSON.stringify(known) !== JSON.stringify(problem)) {
      throw new Error(`constraint ${name} is declared twice with different meanings`);
    }
    constraintProblems.set(name, problem);
  }
}

/** Every declared constraint name (a test checks each exists in the schema: a typo would map nothing). */
export function declaredConstraintNames(): string[] {
  return [...constraintProblems.keys()];
}

function firstSentField(fields: string | readonly string[], body: unknown): string {
  if (typeof fields === 'string') return fields;
  const sent = fields.find((field) => {
    const key = field.startsWith('body.') ? field.slice('body.'.length) : undefined;
    return key !== undefined && (body as Record<string, unknown> | null | undefined)?.[key] !== undefined;
  });
  return sent ?? (fields[0] as string);
}

/**
 * The problem a declared constraint means, for code that learns of the clash without a database error
 * (an `on conflict do nothing` that inserted nothing): the same answer as the violation would give.
 */
export function constraintProblem(name: string, body?: unknown): HttpError {
  const problem = constraintProblems.get(name);
  if (!problem) throw new Error(`constraint ${name} is not declared (declareConstraints)`);
  const field = firstSentField(problem.field, body);
  const errors = [{ field, message: problem.message }];
  return problem.status === 409
    ? new HttpError({ status: 409, slug: 'conflict', title: 'Conflict', detail: problem.message, errors })
    : badRequest(problem.message, errors);
}

/** Integrity violations whose constraint can be declared: unique, foreign key, check, exclusion. */
const CONSTRAINT_VIOLATIONS = new Set(['23505', '23503', '23514', '23P01']);

/**
 * Database errors a client can cause or a caller should retry, by SQLSTATE; a violated constraint that
 * an area declared becomes its problem (`body` is the request's parsed body, to name the field it sent).
 * Messages are ours: PostgreSQL's own text can name tables, constraints and values, so it never reaches
 * a client.
 */
export function fromDatabaseError(error: unknown, body?: unknown): HttpError | undefined {
  const { code, constraint_name: constraint } = (error ?? {}) as { code?: unknown; constraint_name?: unknown };
  if (typeof code === 'string' && CONSTRAINT_VIOLATIONS.has(code) && typeof constraint === 'string') {
    if (constraintProblems.has(constraint)) return constraintProblem(constraint, body);
  }
  switch (code) {
    case '57014': // query_canceled: statement_timeout fired
      return serviceUnavailable('The database took too long to answer; try again');
    case '53300': // too_many_connections
    case '57P01': // admin_shutdown (connection terminated)
    case '57P03': // cannot_connect_now
    case '08000':
    case '08001':
    case '08003':
    case '08006':
    case 'CONNECT_TIMEOUT':
    case 'CONNECTION_CLOSED':
    case 'CONNECTION_ENDED':
    case 'CONNECTION_DESTROYED':
    case 'ECONNREFUSED':
    case 'ECONNRESET':
      return serviceUnavailable('The database is unavailable; try again');
    case '23505':
      return conflict('A record with these values already exists');
    case '23503':
      return conflict('The record refers to, or is referred to by, another record');
    case '23514':
    case '22P02':
    case '22003':
    case '22007':
    case '22008':
      return badRequest('A value is out of range or malformed');
    case '40001':
    case '40P01':
      return serviceUnavailable('The request conflicted with another one; try again', 1);
    default:
      return undefined;
  }
}
