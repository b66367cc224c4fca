// The OpenAPI 3.1 document, generated from the route table (lib/endpoint.ts) and the very zod schemas that
// validate requests and describe answers, so it cannot drift from what the API accepts and returns.
// Knows no area: every route says what it needs in its own `endpoint({...})` declaration.
import { z } from 'zod';
import { ACCESS_COOKIE, CSRF_HEADER, REFRESH_COOKIE } from './auth';
import type { DeclaredRoute, SuccessBody, SuccessStatus } from './endpoint-types';
import { ProblemSchema } from './errors';

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema: a request's as it is sent (`input`), an answer's as it is written (`output`). */
function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** `programs/{id:guid}` → `/api/programs/{id}`: OpenAPI has no route constraints. */
function openApiPath(route: string): string {
  return `/api/${route.replace(/\{\*?([A-Za-z0-9_]+)(?::[^}]*)?\??\}/g, '{$1}')}`;
}

function parametersOf(schema: z.ZodType | undefined, location: 'path' | 'query') {
  if (!schema) return [];
  const objectSchema = toJsonSchema(schema, 'input') as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(objectSchema.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === 'path' || (objectSchema.required ?? []).includes(name),
    schema: property,
  }));
}

/**
 * Routes that are public to the access check but authenticated by the refresh token itself (in the body or
 * the refresh cookie): the document must not call them "Public".
 */
const REFRESH_TOKEN_ROUTES = new Set(['auth-refresh', 'auth-logout']);
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Who may call an operation: a Bearer access token, or the access cookie, which on an unsafe method needs
 * the CSRF header too (double submit). `[]` is a public operation; `{}` marks a token sent in the body.
 */
function securityOf(route: DeclaredRoute, method: string): Record<string, string[]>[] {
  const unsafe = UNSAFE_METHODS.has(method);
  if (REFRESH_TOKEN_ROUTES.has(route.name))
    return [{}, unsafe ? { refreshCookie: [], csrf: [] } : { refreshCookie: [] }];
  if (route.access === 'public') return [];
  return [{ bearer: [] }, unsafe ? { cookie: [], csrf: [] } : { cookie: [] }];
}

/** The first segment of the route names its area: `students/{id}/statement` is under `students`. */
function tagOf(route: DeclaredRoute): string {
  return route.route.split('/')[0] as string;
}

/** `agreements-signing-copy` → "Agreements signing copy": the route's name, read as a sentence. */
function summaryOf(route: DeclaredRoute, method: string): string {
  const words = route.name.replace(/-/g, ' ');
  const sentence = `${words.charAt(0).toUpperCase()}${words.slice(1)}`;
  return route.methods.length > 1 ? `${sentence} (${method})` : sentence;
}

function accessText(route: DeclaredRoute): string {
  if (REFRESH_TOKEN_ROUTES.has(route.name))
    return 'Authenticated by the refresh token (the body or the refresh cookie).';
  return route.access === 'public' ? 'Public.' : `Roles: ${(route.access as readonly string[]).join(', ')}.`;
}

/** What each error status means here; each is a shared response whose body is the `Problem` component. */
const PROBLEM_STATUSES: Record<number, string> = {
  400: 'The request is not valid: `errors` names each field and why',
  401: 'Not signed in, the token is not valid, or the session has ended',
  403: 'Not allowed: the role, the ownership rule, or (cookie sign-in) a missing or wrong CSRF token',
  404: 'No such record, or none the caller may see',
  409: 'Conflicts with what is stored (a value taken, a state that does not allow it)',
  410: 'No longer available',
  412: 'A precondition (If-Match) failed',
  413: 'The request body is over the route limit',
  414: 'The path and query are over 4 KB',
  415: 'The body is not JSON in UTF-8',
  416: 'The range is not satisfiable',
  422: 'Understood but refused by a rule',
  429: 'Too many attempts: try again after `Retry-After` seconds',
  502: 'A service the API depends on failed',
  503: 'The database or the audit trail is unavailable, so nothing was done: retry after `Retry-After` seconds',
};

/**
 * Every error status an operation can answer: the wrapper's, from what the route declares (input, access,
 * body, a record named in the path), and those its handler gives (`problems`).
 */
function problemStatusesOf(route: DeclaredRoute, method: string): number[] {
  const statuses = new Set<number>(route.problems);
  const hasBody = BODY_METHODS.has(method);
  const { params, query, body } = route.schemas;
  if (params || query || body || (hasBody && route.bodyKind === 'json')) statuses.add(400);
  if (route.access !== 'public' || REFRESH_TOKEN_ROUTES.has(route.name)) statuses.add(401);
  if (route.access !== 'public') statuses.add(403);
  if (params) statuses.add(404);
  if (hasBody) statuses.add(413);
  if (hasBody && route.bodyKind === 'json') statuses.add(415);
  statuses.add(414);
  statuses.add(503);
  return [...statuses].sort((a, b) => a - b);
}

const SUCCESS_TEXT: Record<SuccessStatus | 503, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'Done; no body',
  206: 'Part of the content (Range)',
  207: 'Several outcomes',
  503: 'Not ready yet',
};

function successResponse(status: SuccessStatus | 503, body: SuccessBody) {
  if (body === null) return { description: SUCCESS_TEXT[status] };
  if ('media' in body && Array.isArray(body.media)) {
    const content = Object.fromEntries(
      body.media.map((media) => [media, { schema: { type: 'string', contentMediaType: media } }]),
    );
    return { description: SUCCESS_TEXT[status], content };
  }
  return {
    description: SUCCESS_TEXT[status],
    content: { 'application/json': { schema: toJsonSchema(body as z.ZodType, 'output') } },
  };
}

/** Marks an operation whose route has not declared its answers: the contract test lists these. */
export const UNDECLARED_SUCCESS = '2XX';

function responsesOf(route: DeclaredRoute, method: string) {
  const responses: Record<string, unknown> = {};
  if (route.responses) {
    for (const [status, body] of Object.entries(route.responses))
      responses[status] = successResponse(Number(status) as SuccessStatus | 503, body as SuccessBody);
  } else {
    responses[UNDECLARED_SUCCESS] = { description: 'Success (this route has not declared its answer yet)' };
  }
  if (method === 'GET' && (route.cache === 'public' || route.cache === 'private'))
    responses['304'] = { description: 'Not modified: the `If-None-Match` tag still matches' };
  for (const status of problemStatusesOf(route, method))
    responses[String(status)] ??= { $ref: `#/components/responses/Problem${status}` };
  responses.default = { $ref: '#/components/responses/Problem' };
  return responses;
}

function operationOf(route: DeclaredRoute, method: string) {
  return {
    operationId: route.methods.length > 1 ? `${route.name}-${method.toLowerCase()}` : route.name,
    summary: summaryOf(route, method),
    tags: [tagOf(route)],
    description: [
      accessText(route),
      route.phi ? 'Returns or changes personal data: never cached, always audited.' : '',
      `Cache-Control policy: ${route.cache}.`,
    ]
      .filter(Boolean)
      .join(' '),
    security: securityOf(route, method),
    parameters: [...parametersOf(route.schemas.params, 'path'), ...parametersOf(route.schemas.query, 'query')],
    ...(route.schemas.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: toJsonSchema(route.schemas.body, 'input') } },
          },
        }
      : {}),
    responses: responsesOf(route, method),
  };
}

function problemResponses(): Record<string, unknown> {
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  });
  return {
    Problem: problem('An RFC 9457 problem'),
    ...Object.fromEntries(
      Object.entries(PROBLEM_STATUSES).map(([status, description]) => [`Problem${status}`, problem(description)]),
    ),
  };
}

/** The whole document for the declared routes. */
export function openApiDocument(routes: readonly DeclaredRoute[]): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = openApiPath(route.route);
    paths[path] ??= {};
    for (const method of route.methods) paths[path][method.toLowerCase()] = operationOf(route, method);
  }
  const tags = [...new Set(routes.map(tagOf))].sort().map((name) => ({ name }));
  return {
    openapi: '3.1.0',
    info: { title: 'AADA LMS API', version: '1' },
    // Relative: the document is served by the API it describes, whatever host that is.
    servers: [{ url: '/' }],
    tags,
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        cookie: { type: 'apiKey', in: 'cookie', name: ACCESS_COOKIE },
        refreshCookie: { type: 'apiKey', in: 'cookie', name: REFRESH_COOKIE },
        csrf: {
          type: 'apiKey',
          in: 'header',
          name: 'X-CSRF-Token',
          description: `With cookie sign-in, unsafe methods must echo the CSRF token (header ${CSRF_HEADER}) given by sign-in and refresh.`,
        },
      },
      schemas: { Problem: toJsonSchema(ProblemSchema, 'output') },
      responses: problemResponses(),
    },
  };
}

/** How much of the contract is declared: routes and 2xx answers with a schema, and the routes without. */
export function contractCoverage(routes: readonly DeclaredRoute[]) {
  const declared = routes.filter((route) => route.responses !== undefined);
  return {
    routes: routes.length,
    routesWithResponses: declared.length,
    successResponses: declared.reduce(
      (sum, route) => sum + Object.keys(route.responses ?? {}).filter((status) => status.startsWith('2')).length,
      0,
    ),
    missing: routes.filter((route) => route.responses === undefined).map((route) => route.name),
  };
}
