// The learning record store at /api/xapi (xAPI 1.0.3 and 2.0): the Statement Resource and About, behind the
// route wrapper with a raw body (multipart, any document type) and the version header on every answer.
// Authentication is xAPI's own (lib/xapi-auth.ts: LRS credentials over HTTP Basic, or an LMS bearer token),
// so the routes are declared public to the wrapper and refuse unauthenticated requests themselves (401); every
// request is audited as PHI. Rules and SQL: lib/xapi-*.ts; what is implemented: docs/xapi.md.
import type { HttpRequest } from '@azure/functions';
import type { Caller } from '../lib/access';
import type { AnySql } from '../lib/db';
import type { AuditNotes } from '../lib/endpoint';
import { endpoint } from '../lib/endpoint';
import { methodNotAllowed } from '../lib/errors';
import type { Reply } from '../lib/http';
import { type LrsClient, lrsClient, READ_STATEMENTS, requireScope } from '../lib/xapi-auth';
import type { LrsScope } from '../lib/xapi-credentials';
import {
  requireVersion,
  SUPPORTED_VERSIONS,
  versionHeaders,
  XAPI_VERSION_HEADER,
  type XapiRequest,
  xapiRequest,
} from '../lib/xapi-protocol';
import { getStatements, postStatements, putStatement } from '../lib/xapi-statement-resource';

/** Statement batches with attachments: up to 20 MB a request. */
const STATEMENT_BODY_BYTES = 20 * 1024 * 1024;

/** What a method of a resource runs, and the scopes any one of which lets a client call it. */
interface Resource {
  scopes: readonly LrsScope[];
  run: (sql: AnySql, request: XapiRequest, client: LrsClient) => Promise<Reply>;
}

/** The reply in the version the request spoke (the alternate syntax says it in its form body). */
function inVersion(request: XapiRequest, reply: Reply): Reply {
  return { ...reply, headers: { ...reply.headers, [XAPI_VERSION_HEADER]: request.version } } as Reply;
}

/** Authenticates, checks the version header, records who called, and runs the resource of the method. */
async function serve(
  input: { sql: AnySql; request: HttpRequest; rawBody?: Buffer | undefined; caller: Caller | null; audit: AuditNotes },
  methods: Partial<Record<string, Resource>>,
): Promise<Reply> {
  const request = xapiRequest(input.request, input.rawBody);
  const client = await lrsClient(input.sql, request, input.caller);
  if (client.credentialId) input.audit.resourceIds.lrsCredentialId = client.credentialId;
  const resource = methods[request.method];
  if (!resource) throw methodNotAllowed(Object.keys(methods));
  // The scope before the version header: a client that may not do this learns that first (403).
  requireScope(client, ...resource.scopes);
  requireVersion(request);
  const statementId = request.query.get('statementId') ?? request.query.get('voidedStatementId');
  if (statementId && /^[0-9a-f-]{36}$/i.test(statementId)) input.audit.resourceIds.statementId = statementId;
  return inVersion(request, await resource.run(input.sql, request, client));
}

const STATEMENT_METHODS: Partial<Record<string, Resource>> = {
  GET: { scopes: READ_STATEMENTS, run: getStatements },
  HEAD: { scopes: READ_STATEMENTS, run: getStatements },
  PUT: { scopes: ['statements/write'], run: putStatement },
  POST: { scopes: ['statements/write'], run: postStatements },
};

endpoint({
  name: 'xapi-statements-read',
  methods: ['GET'],
  route: 'xapi/statements',
  access: 'public',
  phi: true,
  headers: versionHeaders,
  handler: async function readStatements(input) {
    return serve(input, STATEMENT_METHODS);
  },
});

endpoint({
  name: 'xapi-statements-write',
  methods: ['PUT', 'POST'],
  route: 'xapi/statements',
  access: 'public',
  phi: true,
  rawBody: true,
  maxBodyBytes: STATEMENT_BODY_BYTES,
  headers: versionHeaders,
  handler: async function writeStatements(input) {
    // A POST may be the alternate syntax of any method (1.0.3 Communication §1.3).
    return serve(input, STATEMENT_METHODS);
  },
});

endpoint({
  name: 'xapi-about',
  methods: ['GET'],
  route: 'xapi/about',
  access: 'public',
  headers: versionHeaders,
  handler: async function about() {
    return { kind: 'json', status: 200, body: { version: [...SUPPORTED_VERSIONS], extensions: {} } };
  },
});
