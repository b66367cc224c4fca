// The contract check: every answer of a route that declared its `responses` (lib/endpoint-types.ts) is
// held to them. Under test a breach is a 500 naming it, so the whole suite checks the contract the OpenAPI
// document publishes; in development it is a warning in the log; production checks nothing (it would
// cost a parse per answer).
import type { InvocationContext } from '@azure/functions';
import type { ZodType } from 'zod';
import { config } from './config';
import type { MediaBody, Responses, SuccessStatus } from './endpoint-types';
import { HttpError } from './errors';
import { problemReply, type Reply } from './http';

/** A 2xx answer that is not JSON, by the media types it may have. */
export const mediaBody = (...media: string[]): MediaBody => ({ media });

const isMediaBody = (body: object): body is MediaBody => 'media' in body && Array.isArray(body.media);

/**
 * Where a reply breaks the route's declared `responses` (a status it did not declare, a body its schema
 * refuses, a body where none was declared or none where one was), or null. Unknown keys count: the views'
 * schemas are strict objects, so a field added to a view without its schema is caught here.
 */
export function contractBreach(responses: Responses, reply: Reply): string | null {
  const declaredBody = responses[reply.status as SuccessStatus | 503];
  if (declaredBody === undefined) return `status ${reply.status} is not declared`;
  if (declaredBody === null) return reply.kind === 'empty' ? null : `a ${reply.kind} body where none is declared`;
  if (isMediaBody(declaredBody))
    return reply.kind === 'json' || reply.kind === 'empty' ? `a ${reply.kind} body where a file is declared` : null;
  if (reply.kind !== 'json') return `a ${reply.kind} body where JSON is declared`;
  const parsed = (declaredBody as ZodType).safeParse(reply.body);
  if (parsed.success) return null;
  return parsed.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`).join('; ');
}

/** The reply, or (under test) a 500 naming how it breaks the route's declared responses. */
export function checkedAgainstContract(
  spec: { name: string; responses?: Responses | undefined },
  reply: Reply,
  context: InvocationContext,
  requestId: string,
): Reply {
  const environment = config().APP_ENV;
  if (!spec.responses || environment === 'production') return reply;
  // Problems have their one schema; a 3xx has no body; only a declared 503 (a report, not a problem) is held.
  const isProblem = reply.kind === 'json' && reply.contentType?.startsWith('application/problem+json') === true;
  if (isProblem || reply.status < 200 || (reply.status >= 300 && reply.status !== 503)) return reply;
  const breach = contractBreach(spec.responses, reply);
  if (!breach) return reply;
  const message = `request ${requestId}: ${spec.name} answered outside its declared responses (${breach})`;
  if (environment === 'development') {
    context.warn(message);
    return reply;
  }
  context.error(message);
  const error = new HttpError({
    status: 500,
    slug: 'response-contract-breach',
    title: 'Answer outside the contract',
    detail: message,
  });
  return problemReply(error, requestId);
}
