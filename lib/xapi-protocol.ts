// The xAPI protocol around the resources: the X-Experience-API-Version header (1.0.x, 2.0.x), the request as
// the resources see it (method, headers, query parameters, body), which 1.0.3's alternate request syntax
// rebuilds from a form-encoded POST, multipart/mixed bodies (statements with attachments) both ways, and the
// answers' common headers. Nothing here knows a resource.
import { createHash, randomBytes } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { badRequest, type HttpError } from './errors';
import type { XapiVersion } from './xapi-validation';

export const XAPI_VERSION_HEADER = 'X-Experience-API-Version';

/** The versions About lists: every 1.0.x statement this LRS accepts is stored as 1.0.x, and 2.0.0. */
export const SUPPORTED_VERSIONS = ['1.0.3', '2.0.0'] as const;

/**
 * The version a request asked for: `1.0`, `1.0.0`…`1.0.9`, `1.0.x` (Articulate Storyline sends that) are
 * 1.0.3; `2.0` and `2.0.x` are 2.0.0. Undefined for a missing or other header.
 */
export function versionOf(header: string | null | undefined): XapiVersion | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (/^1\.0(?:\.(?:\d+|x))?$/i.test(value)) return '1.0.3';
  if (/^2\.0(?:\.(?:\d+|x))?$/i.test(value)) return '2.0.0';
  return undefined;
}

/** The version header every answer carries: the version the request spoke, else the newest. */
export function versionHeaders(request: HttpRequest): Record<string, string> {
  // Without a version the request is refused (but by About), in the version this client last spoke (a client
  // that forgets the header once is the same client), else 1.0.3.
  const version =
    versionOf(request.headers.get('x-experience-api-version')) ??
    lastVersionOf(request.headers.get('authorization')) ??
    '1.0.3';
  return { [XAPI_VERSION_HEADER]: version };
}

/** The version each client (by its Authorization header's hash) last sent, on this instance; bounded. */
const lastVersions = new Map<string, XapiVersion>();
const LAST_VERSIONS_MAX = 1000;
const clientKey = (authorization: string) => createHash('sha256').update(authorization).digest('base64url');

function lastVersionOf(authorization: string | null): XapiVersion | undefined {
  return authorization ? lastVersions.get(clientKey(authorization)) : undefined;
}

function rememberVersion(authorization: string | null, version: XapiVersion): void {
  if (!authorization) return;
  const key = clientKey(authorization);
  lastVersions.delete(key);
  lastVersions.set(key, version);
  if (lastVersions.size > LAST_VERSIONS_MAX) lastVersions.delete(lastVersions.keys().next().value as string);
}

/** The statement resource's headers on every answer: the version, and X-Experience-API-Consistent-Through. */
export function statementHeaders(request: HttpRequest): Record<string, string> {
  return { ...versionHeaders(request), 'X-Experience-API-Consistent-Through': new Date().toISOString() };
}

/** The request as an xAPI resource sees it, after the alternate syntax is undone. */
export interface XapiRequest {
  method: string;
  /** Lower-cased names. */
  headers: Map<string, string>;
  query: URLSearchParams;
  body: Buffer | undefined;
  /** The version asked for (1.0.3 when the header is missing or unknown: see versionGiven). */
  version: XapiVersion;
  versionGiven: boolean;
  /** The request came in the alternate syntax (a POST with `method=`). */
  alternate: boolean;
  /** The Authorization header of the HTTP request itself (the alternate syntax may carry another). */
  sentAuthorization: string | null;
  /** The URL path of the resource (for `more` links): `/api/xapi/statements`. */
  path: string;
}

/** A 400 in xAPI's words: a problem naming what is wrong. */
export function xapiBadRequest(detail: string, field = 'request'): HttpError {
  return badRequest(detail, [{ field, message: detail }]);
}

const FORM_HEADERS = new Set([
  'authorization',
  'x-experience-api-version',
  'content-type',
  'content-length',
  'if-match',
  'if-none-match',
]);

/**
 * Builds the XapiRequest, undoing 1.0.3's alternate syntax (§1.3 of Communication): a POST whose only query
 * parameter is `method`, with a form-encoded body carrying headers, parameters and `content`.
 */
export function xapiRequest(request: HttpRequest, body: Buffer | undefined): XapiRequest {
  const url = new URL(request.url);
  const headers = new Map<string, string>();
  request.headers.forEach((value, name) => {
    headers.set(name.toLowerCase(), value);
  });
  let method = request.method;
  let query = url.searchParams;
  let content = body;
  const alternate = url.searchParams.has('method');
  if (alternate) {
    if (request.method !== 'POST') throw xapiBadRequest('The method parameter is only for POST', 'method');
    if ([...url.searchParams.keys()].some((key) => key !== 'method')) {
      throw xapiBadRequest('In the alternate request syntax, parameters go in the form body', 'method');
    }
    const requested = (url.searchParams.get('method') ?? '').toUpperCase();
    if (!['GET', 'PUT', 'POST', 'DELETE', 'HEAD'].includes(requested)) throw xapiBadRequest('Unknown method', 'method');
    const type = headers.get('content-type') ?? '';
    if (!/^application\/x-www-form-urlencoded\s*(?:;|$)/i.test(type)) {
      throw xapiBadRequest(
        'The alternate request syntax needs an application/x-www-form-urlencoded body',
        'content-type',
      );
    }
    const form = new URLSearchParams(body?.toString('utf8') ?? '');
    method = requested;
    query = new URLSearchParams();
    content = undefined;
    headers.delete('content-type');
    for (const [key, value] of form) {
      const lower = key.toLowerCase();
      if (lower === 'content') content = Buffer.from(value, 'utf8');
      else if (FORM_HEADERS.has(lower)) headers.set(lower, value);
      else query.append(key, value);
    }
    if ((method === 'PUT' || method === 'POST') && content === undefined) {
      throw xapiBadRequest('In the alternate request syntax, the body goes in the form parameter content', 'content');
    }
    if (content !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  const version = versionOf(headers.get('x-experience-api-version'));
  const sentAuthorization = request.headers.get('authorization');
  if (version) rememberVersion(sentAuthorization, version);
  // 2.0 dropped the alternate request syntax.
  if (alternate && version === '2.0.0') throw xapiBadRequest('xAPI 2.0 has no alternate request syntax', 'method');
  return {
    method,
    headers,
    query,
    body: content,
    version: version ?? '1.0.3',
    versionGiven: version !== undefined,
    alternate,
    sentAuthorization,
    path: url.pathname,
  };
}

/** Every resource but About needs the version header (checked once the client is known: a 401 comes first). */
export function requireVersion(request: XapiRequest): void {
  if (!request.versionGiven) {
    throw xapiBadRequest(`Send ${XAPI_VERSION_HEADER}: 1.0.3 or 2.0.0`, 'X-Experience-API-Version');
  }
}

/** Refuses query parameters a resource does not know (xAPI: a 400). */
export function onlyParameters(request: XapiRequest, allowed: readonly string[]): void {
  for (const key of request.query.keys()) {
    if (!allowed.includes(key)) throw xapiBadRequest(`Unknown parameter ${key.slice(0, 40)}`, key.slice(0, 40));
  }
}

/** A parameter given at most once. */
export function parameter(request: XapiRequest, name: string): string | undefined {
  const values = request.query.getAll(name);
  if (values.length > 1) throw xapiBadRequest(`Give ${name} once`, name);
  return values[0];
}

/** A JSON body (statements, a query's agent), or a 400. */
export function parseJson(text: string | Buffer, field: string): unknown {
  try {
    const decoded = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text);
    return JSON.parse(decoded);
  } catch {
    throw xapiBadRequest(`${field} is not valid UTF-8 JSON`, field);
  }
}

// ---------------------------------------------------------------------------------------------------------
// multipart/mixed (RFC 2046 §5.1), statements with their attachments
// ---------------------------------------------------------------------------------------------------------

export interface Part {
  headers: Map<string, string>;
  body: Buffer;
}

function boundaryOf(contentType: string): string {
  const match = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary || boundary.length > 70) throw xapiBadRequest('A multipart body needs its boundary', 'Content-Type');
  return boundary;
}

function partHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw xapiBadRequest('A multipart part has a malformed header', 'body');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** The parts of a multipart body, in order. */
export function parseMultipart(body: Buffer, contentType: string): Part[] {
  const boundary = Buffer.from(`--${boundaryOf(contentType)}`);
  const parts: Part[] = [];
  let start = body.indexOf(boundary);
  if (start < 0) throw xapiBadRequest('The multipart body has no boundary line', 'body');
  for (;;) {
    let cursor = start + boundary.length;
    if (body.subarray(cursor, cursor + 2).toString() === '--') break;
    // The boundary line ends with CRLF (LF tolerated).
    const lineEnd = body.indexOf('\n', cursor);
    if (lineEnd < 0) throw xapiBadRequest('The multipart body ends inside a part', 'body');
    cursor = lineEnd + 1;
    const next = body.indexOf(boundary, cursor);
    if (next < 0) throw xapiBadRequest('The multipart body has no closing boundary', 'body');
    let end = next;
    if (body[end - 1] === 0x0a) end--;
    if (body[end - 1] === 0x0d) end--;
    const chunk = body.subarray(cursor, end);
    let split = chunk.indexOf('\r\n\r\n');
    let gap = 4;
    if (split < 0) {
      split = chunk.indexOf('\n\n');
      gap = 2;
    }
    if (split < 0) {
      // Headers only, or an empty header block followed by the body.
      if (chunk.subarray(0, 2).toString() === '\r\n') parts.push({ headers: new Map(), body: chunk.subarray(2) });
      else throw xapiBadRequest('A multipart part has no blank line after its headers', 'body');
    } else {
      parts.push({
        headers: partHeaders(chunk.subarray(0, split).toString('utf8')),
        body: chunk.subarray(split + gap),
      });
    }
    start = next;
  }
  return parts;
}

/** A multipart/mixed body of a JSON part and attachment parts: its content type and bytes. */
export function buildMultipart(json: unknown, attachments: { sha2: string; contentType: string; content: Buffer }[]) {
  const boundary = `xapi-${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [
    Buffer.from(`--${boundary}\r\nContent-Type: application/json; charset=utf-8\r\n\r\n${JSON.stringify(json)}\r\n`),
  ];
  for (const attachment of attachments) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Type: ${attachment.contentType}\r\nContent-Transfer-Encoding: binary\r\n` +
          `X-Experience-API-Hash: ${attachment.sha2}\r\n\r\n`,
      ),
      attachment.content,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: Buffer.concat(chunks) };
}

/** The SHA-2 an attachment part declares, checked against its bytes (the sha2 length says which SHA-2). */
export function sha2Matches(sha2: string, content: Buffer): boolean {
  const algorithm = { 56: 'sha224', 64: 'sha256', 96: 'sha384', 128: 'sha512' }[sha2.length];
  return algorithm !== undefined && createHash(algorithm).update(content).digest('hex') === sha2.toLowerCase();
}
