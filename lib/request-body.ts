// Reading a request's body: JSON in UTF-8 or raw bytes, never more than the route's limit (a 413,
// chunked or not, without buffering past the limit), and disposing of what is left unread once the
// answer is decided, so the connection stays usable.

import type { HttpRequest } from '@azure/functions';
import { config } from './config';
import { badRequest, payloadTooLarge, unsupportedMediaType } from './errors';

/** The most body bytes a route accepts (larger bodies get a 413): its own limit, else MAX_REQUEST_BODY_BYTES. */
export function bodyLimitOf(route: { maxBodyBytes?: number | undefined }): number {
  return route.maxBodyBytes ?? config().MAX_REQUEST_BODY_BYTES;
}

/** `application/json` or a `+json` type; its charset, when given, must be UTF-8 (RFC 8259 §8.1). */
function checkJsonContentType(contentType: string): void {
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)) throw unsupportedMediaType('application/json');
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType)?.[1];
  // Decoding another charset as UTF-8 would store mojibake (or let bytes past the text rules): refuse it.
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') throw unsupportedMediaType('UTF-8 encoded JSON');
}

/**
 * Reads a JSON body, refusing more than `limit` bytes without buffering past it. A refused body is left
 * to `discardUnreadBody` (the reader's lock released, the stream not cancelled): see there why.
 */
export async function readJsonBody(request: HttpRequest, limit: number): Promise<unknown> {
  const bytes = await readBodyBytes(request, limit, () =>
    checkJsonContentType(request.headers.get('content-type') ?? ''),
  );
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw badRequest('The body is not valid UTF-8 JSON', [{ field: 'body', message: 'Malformed JSON' }]);
  }
}

/** The body's bytes, refusing more than `limit` without buffering past it; `check` runs once a body is known to come. */
export async function readBodyBytes(
  request: HttpRequest,
  limit: number,
  check: () => void = () => {},
): Promise<Buffer | undefined> {
  const declaredLength = Number(request.headers.get('content-length') ?? '0');
  const hasBody = declaredLength > 0 || request.headers.has('transfer-encoding');
  if (!hasBody || !request.body) return undefined;
  if (declaredLength > limit) throw payloadTooLarge(limit);
  check();
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw payloadTooLarge(limit);
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return size === 0 ? undefined : Buffer.concat(chunks);
}

/** A streamed body (`rawBody`) whose declared length is over the limit is refused before it is read. */
export function refuseDeclaredLength(request: HttpRequest, limit: number): void {
  if (Number(request.headers.get('content-length') ?? '0') > limit) throw payloadTooLarge(limit);
}

/** How much of a refused or unread request body is read and dropped before the stream is cancelled. */
const UNREAD_BODY_DISCARD_BYTES = 8 * 1024 * 1024;

/**
 * Disposes of what is left of a request body once the answer is decided (refused at its limit, or never read
 * because the request failed earlier), in the background. It is read and dropped, not cancelled: under
 * Azure's HTTP stream proxy the body is the worker's Node IncomingMessage, and cancelling destroys it, which
 * destroys its socket before the 413 (or 401…) is written. Past UNREAD_BODY_DISCARD_BYTES the stream is
 * cancelled (the connection goes; a client still sending that much after its answer has no claim on it),
 * and only between reads: Node 20's undici closes the stream of an async-iterable body from a microtask,
 * which throws (uncaught) when the stream was cancelled while a read was pending.
 */
export function discardUnreadBody(request: HttpRequest): void {
  const body = request.body as ReadableStream<Uint8Array> | null;
  if (!body || body.locked) return;
  const reader = body.getReader();
  const drop = async () => {
    let dropped = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      dropped += value.byteLength;
      if (dropped > UNREAD_BODY_DISCARD_BYTES) return reader.cancel();
    }
  };
  // A client gone mid-body makes the read fail: nothing is left to answer.
  drop().catch(() => undefined);
}
