// The OpenAPI 3.1 document, generated from the route table and the very zod schemas that validate
// requests, so it cannot drift from what the API accepts. Built once per instance, on first request.
import { z } from 'zod';
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

function operationOf(route: DeclaredRoute, method: string) {
  const protectedRoute = route.access !== 'public';
  return {
    operationId: route.methods.length > 1 ? `${route.name}-${method.toLowerCase()}` : route.name,
    description: [
      protectedRoute ? `Roles: ${(route.access as readonly string[]).join(', ')}.` : 'Public.',
      route.phi ? 'Returns or changes personal data: never cached, always audited.' : '',
      `Cache-Control policy: ${route.cache}.`,
    ]
      .filter(Boolean)
      .join(' '),
    ...(protectedRoute ? { security: [{ bearer: [] }, { cookie: [] }] } : { security: [] }),
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
  return {
    openapi: '3.1.0',
    info: { title: 'AADA LMS API', version: '1' },
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        cookie: { type: 'apiKey', in: 'cookie', name: '__Host-aada-access' },
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
