// The route wrapper: every HTTP function is one `endpoint({...})` declaration, and this module is
// the one place functions/ import it (and its types) from. The wrapper authenticates, checks the
// declared roles (deny by default), parses path, query and body with zod, runs the handler, writes
// the audit row, maps errors to problem+json and builds the response through lib/http. A mutating
// request (POST, PUT, PATCH, DELETE) runs its handler in one transaction that also holds its audit
// row: the change and its record commit together or not at all. Handlers get their database handle
// as `sql` and never call db() themselves. Its parts, each one mechanism: lib/request-handling.ts
// (the run of one request), lib/request-caller.ts (token and roles), lib/request-input.ts and
// lib/request-body.ts (parsing), lib/problem-mapping.ts (errors to problems), lib/route-registry.ts
// (the table of declared routes), lib/endpoint-types.ts (the declaration's types). This file holds
// the declaration itself and the fallback for paths no route serves. It starts telemetry
// (lib/telemetry.ts) once per instance, before the first function registers.
// Only `app` is imported at run time: it is the one named export that Node detects in this
// CommonJS bundle when it is loaded from ESM (vitest), so the same code runs everywhere.

import type { HttpMethod } from '@azure/functions';
import { app } from '@azure/functions';
import { closePool } from './db';
import type { Access, EndpointSpec } from './endpoint-types';
import { methodNotAllowed, routeNotFound } from './errors';
import { handle } from './request-handling';
import {
  declareRoute,
  FALLBACK_ROUTE,
  METHOD_ORDER,
  methodsServedOnPath,
  requestSegments,
  servedMethods,
  templatesMatching,
} from './route-registry';
import { startTelemetry, stopTelemetry } from './telemetry';

export type {
  Access,
  AuditNotes,
  CallerOf,
  ChangeInput,
  DeclaredRoute,
  EndpointSpec,
  HandlerInput,
  HandlerProblemStatus,
  MediaBody,
  PublicChangeInput,
  PublicReadInput,
  ReadInput,
  Responses,
  SqlFor,
  SuccessBody,
  SuccessStatus,
} from './endpoint-types';
export { bodyLimitOf } from './request-body';
export { clientIpOf, MAX_URL_BYTES } from './request-input';
export { contractBreach, mediaBody } from './response-contract';
export { declaredRoutes, methodsServedOn, templatesMatchingPath } from './route-registry';

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
  for (const [status, body] of Object.entries(spec.responses ?? {}))
    if (body === null && status !== '204') throw new Error(`${spec.name}: a ${status} answer needs its body's schema`);
  declareRoute({
    name: spec.name,
    audited: spec.access !== 'public' || spec.phi === true || spec.audit === true,
    schemas: { params: spec.params, query: spec.query, body: spec.body },
    responses: spec.responses,
    problems: spec.problems ?? [],
    bodyKind: spec.streamedBody ? 'streamed' : spec.rawBody ? 'raw' : 'json',
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
/** What the audit row of an answer to an unknown route names: a fixed marker, never the path (it may hold PII). */
export const UNKNOWN_ROUTE_MARKER = '(unknown route)';
const ALL_METHODS: HttpMethod[] = [...METHOD_ORDER];

const fallbackSpec: EndpointSpec<undefined, undefined, undefined, 'public', HttpMethod> = {
  name: FALLBACK_FUNCTION,
  methods: ALL_METHODS,
  route: FALLBACK_ROUTE,
  access: 'public',
  // Audited like the protected routes' refusals: a probe for routes is worth a row. Volume: an anonymous
  // client can add rows here as it can with any protected route's 401, one small row per request,
  // pruned after AUDIT_RETENTION_DAYS; the row names a template or the marker, never the path.
  audit: true,
  handler: async function answerUnservedPath({ request, audit }) {
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
  // Before anything is registered: with APPLICATIONINSIGHTS_CONNECTION_STRING it hooks the Functions worker.
  startTelemetry();
  app.setup({ enableHttpStream: true });
  app.hook.appTerminate(async () => {
    await closePool();
    await stopTelemetry();
  });
  registerFallback();
}
setUpApp();
