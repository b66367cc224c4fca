// The one place that builds HTTP responses: JSON and streamed bodies, problem+json errors, the cache
// policy of each route (the table "Cache policies" in docs/architecture.md), ETag/304, CORS and
// security headers.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { HttpResponseInit } from '@azure/functions';
import { config } from './config';
import { type HttpError, problemType } from './errors';

/**
 * Cache policies (the table in docs/architecture.md). `no-store` is the default: anything with PII/PHI,
 * tokens or signing data, every mutation and every error. Only `public` and `private` get an ETag.
 */
export type CachePolicy = 'no-store' | 'public' | 'private' | 'immutable';

export interface Cookie {
  name: string;
  value: string;
  path?: string;
  maxAge?: number;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: 'Strict' | 'Lax' | 'None';
}

/** What a handler returns; `respond` turns it into the wire response. */
export type Reply =
  | {
      kind: 'json';
      status: number;
      body: unknown;
      contentType?: string;
      headers?: Record<string, string>;
      cookies?: Cookie[];
    }
  | {
      kind: 'stream';
      status: number;
      body: AsyncIterable<string | Uint8Array>;
      contentType: string;
      headers?: Record<string, string>;
    }
  | { kind: 'bytes'; status: number; body: Uint8Array; contentType: string; headers?: Record<string, string> }
  | { kind: 'empty'; status: number; headers?: Record<string, string>; cookies?: Cookie[] };

export const json = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({
  kind: 'json',
  status,
  body,
  ...(headers ? { headers } : {}),
});
export const created = (body: unknown, location?: string): Reply =>
  json(body, 201, location ? { Location: location } : undefined);
export const noContent = (): Reply => ({ kind: 'empty', status: 204 });
export const streamed = (
  body: AsyncIterable<string | Uint8Array>,
  contentType: string,
  headers?: Record<string, string>,
): Reply => ({ kind: 'stream', status: 200, body, contentType, ...(headers ? { headers } : {}) });
export const bytes = (body: Uint8Array, contentType: string, headers?: Record<string, string>): Reply => ({
  kind: 'bytes',
  status: 200,
  body,
  contentType,
  ...(headers ? { headers } : {}),
});

/** Web streams carry bytes only: strings a handler yields are encoded as UTF-8. */
async function* asBytes(chunks: AsyncIterable<string | Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of chunks) yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

/** Security headers for an API that serves JSON to browsers and is never framed or rendered. */
function securityHeaders(): Record<string, string> {
  return {
    'Strict-Transport-Security': `max-age=${config().HSTS_MAX_AGE_SECONDS}; includeSubDomains`,
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
  };
}

function cacheControl(policy: CachePolicy): string {
  const cfg = config();
  switch (policy) {
    case 'immutable':
      return 'public, max-age=31536000, immutable';
    case 'public':
      return `public, max-age=${cfg.PUBLIC_CACHE_MAX_AGE_SECONDS}`;
    case 'private':
      return `private, max-age=${cfg.PRIVATE_CACHE_MAX_AGE_SECONDS}`;
    case 'no-store':
      return 'no-store';
  }
}

/**
 * The request headers a browser may send cross-origin: the portal's (Authorization, Content-Type,
 * If-None-Match, X-CSRF-Token) and those xAPI content sends to the LRS (X-Experience-API-Version on every
 * request, If-Match / If-None-Match on documents). One list for every route: a header a route ignores does
 * it no harm, and a preflight is answered before the route is known (lib/endpoint.ts).
 */
const CORS_ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'If-Match',
  'If-None-Match',
  'X-CSRF-Token',
  'X-Experience-API-Version',
].join(', ');

/**
 * The response headers a page's script may read: paging and retries, and the LRS's version, consistency
 * and document headers (xAPI clients read ETag for concurrency and Consistent-Through for `since` queries).
 */
const CORS_EXPOSE_HEADERS = [
  'ETag',
  'Last-Modified',
  'Link',
  'Location',
  'Retry-After',
  'X-Experience-API-Consistent-Through',
  'X-Experience-API-Version',
  'X-Request-Id',
].join(', ');

/** How a route answers other origins (the route's `cors` in lib/endpoint.ts). */
export type CorsMode = 'credentialed' | 'anonymous';

/**
 * CORS of public capability addresses (`cors: 'anonymous'`): the signed addresses of H5P files. Their
 * readers are players in sandboxed frames (`sandbox="allow-scripts"` without `allow-same-origin`), whose
 * origin is opaque: they send `Origin: null`, which is in no list and must never be echoed with
 * credentials (every sandboxed page and data: document anywhere sends it). The address carries its own
 * credential (a grant that expires), the answer holds course content and no personal data, and no cookie
 * or token is read or needed: so `*`, never with credentials, readable by any origin that holds the
 * address. Only the validators a player may use are exposed.
 */
function anonymousCorsHeaders(): Record<string, string> {
  return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'ETag, X-Request-Id' };
}

/** Credentialed CORS for configured origins only: the Origin is echoed, never `*`. */
export function corsHeaders(origin: string | null): Record<string, string> {
  if (!origin || !config().CORS_ALLOWED_ORIGINS.includes(origin)) return {};
  return {
    'Access-Control-Allow-Origin': origin,
    'Access-Control-Allow-Credentials': 'true',
    'Access-Control-Expose-Headers': CORS_EXPOSE_HEADERS,
  };
}

export function preflightHeaders(origin: string | null, methods: readonly string[]): Record<string, string> {
  const cors = corsHeaders(origin);
  if (!cors['Access-Control-Allow-Origin'] || methods.length === 0) return {};
  return {
    ...cors,
    'Access-Control-Allow-Methods': methods.join(', '),
    'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS,
    'Access-Control-Max-Age': '600',
  };
}

function etagOf(payload: string): string {
  return `"${createHash('sha256').update(payload).digest('base64url').slice(0, 32)}"`;
}

/**
 * The ETag of a route with a version key (lib/endpoint.ts `version`): the version and the URL's path and
 * query, hashed, so each page of a list has its own tag and every tag changes with the version.
 */
export function versionTag(version: string, requestUrl: string): string {
  const url = new URL(requestUrl);
  return `"v${createHash('sha256').update(`${version}\n${url.pathname}${url.search}`).digest('base64url').slice(0, 31)}"`;
}

/** 304 for a matching version tag, before the route's query runs. */
export const notModified = (etag: string): Reply => ({ kind: 'empty', status: 304, headers: { ETag: etag } });

/** The reply with its version tag as ETag (instead of a hash of the body), when the route has one. */
export function withETag(reply: Reply, etag: string | null): Reply {
  if (!etag || reply.status >= 300) return reply;
  return { ...reply, headers: { ...reply.headers, ETag: etag } } as Reply;
}

export function ifNoneMatchHits(header: string | null, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  // Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}

function serializeCookie(cookie: Cookie): string {
  const parts = [`${cookie.name}=${cookie.value}`, `Path=${cookie.path ?? '/'}`];
  if (cookie.maxAge !== undefined) parts.push(`Max-Age=${cookie.maxAge}`);
  if (cookie.httpOnly !== false) parts.push('HttpOnly');
  if (cookie.secure !== false) parts.push('Secure');
  parts.push(`SameSite=${cookie.sameSite ?? 'Strict'}`);
  return parts.join('; ');
}

export interface RespondContext {
  policy: CachePolicy;
  /** Unset: credentialed (the configured origins). */
  cors?: CorsMode;
  requestId: string;
  origin: string | null;
  ifNoneMatch: string | null;
  /** A HEAD request: the GET's status and headers (Content-Length included), no body. */
  head?: boolean;
}

/** Builds the wire response for a handler's reply under the route's cache policy. */
export function respond(reply: Reply, ctx: RespondContext): HttpResponseInit {
  const response = responseFor(reply, ctx);
  if (!ctx.head) return response;
  // A streamed body the handler prepared is closed unread (it may hold a cursor).
  if (reply.kind === 'stream') void (response.body as ReadableStream | undefined)?.cancel().catch(() => undefined);
  return { status: response.status, headers: response.headers };
}

function responseFor(reply: Reply, ctx: RespondContext): HttpResponseInit {
  // A 304 keeps the caching headers of the 200 it stands for (RFC 9110 §15.4.5).
  const success = reply.status < 300 || reply.status === 304;
  const policy: CachePolicy = success ? ctx.policy : 'no-store';
  const headers = new Headers({
    ...securityHeaders(),
    ...(ctx.cors === 'anonymous' ? anonymousCorsHeaders() : corsHeaders(ctx.origin)),
    'Cache-Control': cacheControl(policy),
    'X-Request-Id': ctx.requestId,
  });
  if (policy === 'private') headers.set('Vary', 'Authorization, Cookie, Origin');
  else if (policy !== 'no-store') headers.set('Vary', 'Origin');
  for (const [name, value] of Object.entries(reply.headers ?? {})) headers.set(name, value);
  const cookies = 'cookies' in reply && reply.cookies ? reply.cookies : [];
  for (const cookie of cookies) headers.append('Set-Cookie', serializeCookie(cookie));

  switch (reply.kind) {
    case 'empty':
      return { status: reply.status, headers };
    case 'bytes':
      headers.set('Content-Type', reply.contentType);
      // Said explicitly, so a HEAD answers the same Content-Length as the GET.
      headers.set('Content-Length', String(reply.body.byteLength));
      return { status: reply.status, headers, body: reply.body };
    case 'stream':
      headers.set('Content-Type', reply.contentType);
      return {
        status: reply.status,
        headers,
        body: Readable.toWeb(Readable.from(asBytes(reply.body))) as ReadableStream,
      };
    case 'json': {
      const payload = JSON.stringify(reply.body);
      if (policy === 'public' || policy === 'private') {
        const etag = headers.get('ETag') ?? etagOf(payload);
        headers.set('ETag', etag);
        if (ifNoneMatchHits(ctx.ifNoneMatch, etag)) return { status: 304, headers };
      }
      headers.set('Content-Type', reply.contentType ?? 'application/json; charset=utf-8');
      headers.set('Content-Length', String(Buffer.byteLength(payload)));
      return { status: reply.status, headers, body: payload };
    }
  }
}

/** An RFC 9457 problem document: never a stack, SQL text or secret. */
export function problemReply(error: HttpError, requestId: string): Reply {
  return {
    kind: 'json',
    status: error.status,
    contentType: 'application/problem+json; charset=utf-8',
    headers: error.headers,
    body: {
      type: problemType(error.slug),
      title: error.title,
      status: error.status,
      ...(error.detail ? { detail: error.detail } : {}),
      ...(error.errors ? { errors: error.errors } : {}),
      requestId,
    },
  };
}
