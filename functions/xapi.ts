// The learning record store at /api/xapi (xAPI 1.0.3 and 2.0): the Statement Resource, the State, Activity
// Profile and Agent Profile documents, the Activities and Agents resources and About, behind the
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
import { getActivity, getPerson } from '../lib/xapi-activities';
import { type LrsClient, lrsClient, READ_STATEMENTS, requireScope } from '../lib/xapi-auth';
import type { LrsScope } from '../lib/xapi-credentials';
import { type DocumentResource, deleteDocuments, readDocuments, writeDocument } from '../lib/xapi-documents';
import {
  requireVersion,
  SUPPORTED_VERSIONS,
  statementHeaders,
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
  /** `audit`: what the request's audit row adds (a statement write names the progress it moved). */
  run: (sql: AnySql, request: XapiRequest, client: LrsClient, audit: AuditNotes) => Promise<Reply>;
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
  return inVersion(request, await resource.run(input.sql, request, client, input.audit));
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
  headers: statementHeaders,
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
  headers: statementHeaders,
  handler: async function writeStatements(input) {
    // A POST may be the alternate syntax of any method (1.0.3 Communication §1.3).
    return serve(input, STATEMENT_METHODS);
  },
});

/** The methods of a document resource, for clients with `scope` (or all / all/read for reading). */
function documentMethods(resource: DocumentResource, scope: LrsScope): Partial<Record<string, Resource>> {
  // An activity's profile is course content, the same for every learner: whoever reads statements may read it.
  const readScopes: LrsScope[] =
    resource === 'activity_profile' ? [scope, 'all/read', 'statements/read'] : [scope, 'all/read'];
  const read: Resource = {
    scopes: readScopes,
    run: (sql, request, client) => readDocuments(sql, resource, request, client),
  };
  const write: Resource = {
    scopes: [scope],
    run: (sql, request, client) => writeDocument(sql, resource, request, client),
  };
  const remove: Resource = {
    scopes: [scope],
    run: (sql, request, client) => deleteDocuments(sql, resource, request, client),
  };
  return { GET: read, HEAD: read, PUT: write, POST: write, DELETE: remove };
}

const DOCUMENT_ROUTES: { name: string; route: string; resource: DocumentResource; scope: LrsScope }[] = [
  { name: 'xapi-state', route: 'xapi/activities/state', resource: 'state', scope: 'state' },
  {
    name: 'xapi-activity-profile',
    route: 'xapi/activities/profile',
    resource: 'activity_profile',
    scope: 'activities_profile',
  },
  { name: 'xapi-agent-profile', route: 'xapi/agents/profile', resource: 'agent_profile', scope: 'agents_profile' },
];

/** Documents are at most 1 MB (lib/xapi-documents.ts); the alternate syntax form-encodes them. */
const DOCUMENT_BODY_BYTES = 4 * 1024 * 1024;

for (const { name, route, resource, scope } of DOCUMENT_ROUTES) {
  const methods = documentMethods(resource, scope);
  endpoint({
    name: `${name}-read`,
    methods: ['GET'],
    route,
    access: 'public',
    phi: true,
    headers: versionHeaders,
    handler: async function readDocument(input) {
      return serve(input, methods);
    },
  });
  endpoint({
    name: `${name}-write`,
    methods: ['PUT', 'POST', 'DELETE'],
    route,
    access: 'public',
    phi: true,
    rawBody: true,
    maxBodyBytes: DOCUMENT_BODY_BYTES,
    headers: versionHeaders,
    handler: async function changeDocument(input) {
      return serve(input, methods);
    },
  });
}

const LOOKUP_SCOPES: LrsScope[] = [
  'all/read',
  'statements/read',
  'statements/read/mine',
  'state',
  'activities_profile',
  'agents_profile',
];

const ACTIVITY_METHODS: Partial<Record<string, Resource>> = {
  GET: { scopes: LOOKUP_SCOPES, run: getActivity },
  HEAD: { scopes: LOOKUP_SCOPES, run: getActivity },
};
const AGENT_METHODS: Partial<Record<string, Resource>> = {
  GET: { scopes: LOOKUP_SCOPES, run: getPerson },
  HEAD: { scopes: LOOKUP_SCOPES, run: getPerson },
};

endpoint({
  name: 'xapi-activities',
  methods: ['GET'],
  route: 'xapi/activities',
  access: 'public',
  phi: true,
  headers: versionHeaders,
  handler: async function readActivity(input) {
    return serve(input, ACTIVITY_METHODS);
  },
});

endpoint({
  name: 'xapi-agents',
  methods: ['GET'],
  route: 'xapi/agents',
  access: 'public',
  phi: true,
  headers: versionHeaders,
  handler: async function readPerson(input) {
    return serve(input, AGENT_METHODS);
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
