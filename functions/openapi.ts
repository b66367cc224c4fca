// GET /api/openapi.json: the OpenAPI 3.1 document (lib/openapi.ts builds it from the route table). Built
// once per instance, on first request.
import { z } from 'zod';
import { declaredRoutes, endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { openApiDocument } from '../lib/openapi';

/** What the document is, to its readers: an OpenAPI 3.1 document (its own schema is the specification's). */
const OpenApiDocument = z.looseObject({
  openapi: z.literal('3.1.0'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  components: z.record(z.string(), z.unknown()),
});

let document: Record<string, unknown> | undefined;

endpoint({
  name: 'openapi-document',
  methods: ['GET'],
  route: 'openapi.json',
  access: 'public',
  cache: 'public',
  responses: { 200: OpenApiDocument },
  handler: async function openapiDocument() {
    document ??= openApiDocument(declaredRoutes());
    return json(document);
  },
});
