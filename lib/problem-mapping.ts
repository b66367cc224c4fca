// What an error thrown while answering a request means to the client: an HttpError as it is, a
// database error through the constraints the areas declared (lib/errors.ts), anything else a 500
// with the request id, logged by kind and stack but never by its message (which may hold personal data).

import type { InvocationContext } from '@azure/functions';
import { fromDatabaseError, HttpError } from './errors';

/**
 * The problem an error means to the client. A violated constraint some area declared
 * (`declareConstraints`, lib/errors.ts) names the field; `body` is the parsed request body, to name
 * the field the caller sent.
 */
export function toHttpError(error: unknown, context: InvocationContext, requestId: string, body?: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const mapped = fromDatabaseError(error, body);
  if (mapped) {
    if (mapped.status >= 500) context.warn(`request ${requestId}: database unavailable (${describe(error)})`);
    return mapped;
  }
  context.error(`request ${requestId}: unexpected error ${loggable(error)}`);
  return new HttpError({
    status: 500,
    slug: 'internal-error',
    title: 'Something went wrong on our side',
    detail: `Quote request id ${requestId} when you report this`,
  });
}

/** A short name for an error in a log line: its code, else its message (database and driver errors carry a code). */
export function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  return String(e?.code ?? e?.message ?? 'unknown');
}

/**
 * What the log may say about an unexpected error: its kind, code and stack frames. Not its message,
 * nor a database error's detail: PostgreSQL puts offending values (names, emails) in both.
 */
function loggable(error: unknown): string {
  if (!(error instanceof Error)) return typeof error;
  const code = (error as { code?: unknown }).code;
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at '));
  return [`${error.name}${code ? ` ${String(code)}` : ''}`, ...frames.slice(0, 8)].join('\n');
}
