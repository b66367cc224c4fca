// The wrapper's run of one request, from the preflight to the response: caller, roles, parsed
// input, the handler (in the request's transaction with its audit row for a change), the audit row
// of whatever the outcome, and the answer through lib/http. `endpoint()` (lib/endpoint.ts) binds it
// to each declared route. With telemetry on (lib/telemetry.ts) each request is one span named by its
// method and route template.

import type { HttpMethod, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { Caller } from './access';
import { type AuditEntry, auditableIds, recordAudit, writeAudit } from './audit';
import { db } from './db';
import type { Access, AuditNotes, CallerOf, EndpointSpec, HandlerInput, SqlFor } from './endpoint-types';
import { HttpError, serviceUnavailable } from './errors';
import {
  type CachePolicy,
  ifNoneMatchHits,
  notModified,
  preflightHeaders,
  problemReply,
  type Reply,
  respond,
  versionTag,
  withETag,
} from './http';
import { describe, toHttpError } from './problem-mapping';
import { bodyLimitOf, discardUnreadBody, readBodyBytes, readJsonBody, refuseDeclaredLength } from './request-body';
import { authenticate, authorize, UNSAFE_METHODS } from './request-caller';
import { checkUrlLength, clientIpOf, parseWith, queryObject } from './request-input';
import { checkedAgainstContract } from './response-contract';
import { methodsServedOnPath, requestSegments } from './route-registry';
import { type OpenSpan, startRequestSpan } from './telemetry';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Answers one request to a declared route (`cache` is its policy with the default applied). Never throws:
 * every failure becomes a problem reply, audited like any other answer. With telemetry on it runs in the
 * request's span, which says only what the route template, the method, the status, the caller's roles and
 * the request id say: never the path, the query string, a user id or anything the request carried.
 */
export async function handle<P, Q, B, A extends Access, M extends HttpMethod>(
  spec: EndpointSpec<P, Q, B, A, M>,
  cache: CachePolicy,
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const span = startRequestSpan(`${request.method} ${spec.route}`, {
    'http.request.method': request.method,
    'http.route': spec.route,
    'faas.name': spec.name,
    'aada.request_id': context.invocationId,
  });
  if (!span) return answer(spec, cache, request, context);
  return span.within(async () => {
    let failed = true;
    try {
      const response = await answer(spec, cache, request, context, span);
      failed = (response.status ?? 200) >= 500;
      return response;
    } finally {
      span.end(failed);
    }
  });
}

/** What the request span learns once the answer is known (the route the fallback matched, the caller). */
function describeRequest(
  span: OpenSpan | undefined,
  method: string,
  route: string,
  status: number,
  caller: Caller | null,
) {
  if (!span) return;
  span.rename(`${method} ${route}`);
  span.setAttributes({
    'http.route': route,
    'http.response.status_code': status,
    'aada.caller.roles': caller ? [...caller.roles].sort().join(',') : 'anonymous',
  });
}

async function answer<P, Q, B, A extends Access, M extends HttpMethod>(
  spec: EndpointSpec<P, Q, B, A, M>,
  cache: CachePolicy,
  request: HttpRequest,
  context: InvocationContext,
  span?: OpenSpan,
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
    describeRequest(span, request.method, spec.route, 204, null);
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
  reply = checkedAgainstContract(spec, reply, context, requestId);
  describeRequest(span, request.method, notes.route ?? spec.route, reply.status, caller);
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
