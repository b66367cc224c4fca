// The OpenAPI 3.1 document, generated from the route table and the very zod schemas that validate
// requests, so it cannot drift from what the API accepts. Built once per instance, on first request.
import { z } from 'zod';
import { ACCESS_COOKIE, CSRF_HEADER, REFRESH_COOKIE } from '../lib/auth';
import { type DeclaredRoute, declaredRoutes, endpoint } from '../lib/endpoint';
import { json } from '../lib/http';

type JsonSchema = Record<string, unknown>;

function toJsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** `programs/{id:guid}` → `/api/programs/{id}`: OpenAPI has no route constraints. */
function openApiPath(route: string): string {
  return `/api/${route.replace(/\{\*?([A-Za-z0-9_]+)(?::[^}]*)?\??\}/g, '{$1}')}`;
}

function parametersOf(schema: z.ZodType | undefined, location: 'path' | 'query') {
  if (!schema) return [];
  const objectSchema = toJsonSchema(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(objectSchema.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === 'path' || (objectSchema.required ?? []).includes(name),
    schema: property,
  }));
}

const problemResponse = {
  description: 'An RFC 9457 problem',
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};

/**
 * Routes that are public to the access check but authenticated by the refresh token itself (in the body or
 * the refresh cookie): the document must not call them "Public".
 */
const REFRESH_TOKEN_ROUTES = new Set(['auth-refresh', 'auth-logout']);
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

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
            content: { 'application/json': { schema: toJsonSchema(route.schemas.body) } },
          },
        }
      : {}),
    responses: { '2XX': { description: 'Success' }, default: problemResponse },
  };
}

let document: JsonSchema | undefined;

function buildDocument(): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of declaredRoutes()) {
    const path = openApiPath(route.route);
    paths[path] ??= {};
    for (const method of route.methods) paths[path][method.toLowerCase()] = operationOf(route, method);
  }
  const tags = [...new Set(declaredRoutes().map(tagOf))].sort().map((name) => ({ name }));
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
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            errors: {
              type: 'array',
              items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } },
            },
            requestId: { type: 'string' },
          },
        },
      },
    },
  };
}

endpoint({
  name: 'openapi-document',
  methods: ['GET'],
  route: 'openapi.json',
  access: 'public',
  cache: 'public',
  handler: async function openapiDocument() {
    document ??= buildDocument();
    return json(document);
  },
});
