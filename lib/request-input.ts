// What the wrapper reads off a request besides its body: the length of its URL, its query as an
// object, the client's address, and the parsing of path, query and body with the route's zod
// schemas (a failure is a 400 naming the fields).

import type { HttpRequest } from '@azure/functions';
import { type ZodType, z } from 'zod';
import { badRequest, fieldErrors, uriTooLong } from './errors';

/**
 * The longest path and query the app serves: Azure Functions limits an HTTP trigger's URL to 4 KB
 * (4,096 bytes) before the app sees it, so the app refuses the same URLs locally (414) and nothing
 * works on a laptop that cannot work in Azure. Past Node's 16 KB header limit the local host answers
 * the 414 itself, as Azure's front end does.
 */
export const MAX_URL_BYTES = 4096;

export function checkUrlLength(request: HttpRequest): void {
  const url = new URL(request.url);
  if (Buffer.byteLength(url.pathname + url.search) > MAX_URL_BYTES) throw uriTooLong(MAX_URL_BYTES);
}

export function queryObject(search: URLSearchParams): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {};
  for (const key of new Set(search.keys())) {
    const values = search.getAll(key);
    result[key] = values.length === 1 ? (values[0] as string) : values;
  }
  return result;
}

export function parseWith<T>(schema: ZodType<T> | undefined, value: unknown, where: 'params' | 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (!result.success) throw badRequest(`Check the ${where} of your request`, fieldErrors(where, result.error));
  return result.data;
}

/**
 * The client address as the platform reports it. Azure's front end appends the address it saw to
 * X-Forwarded-For, so the last entry is the trustworthy one (earlier entries are client-supplied).
 */
export function clientIpOf(request: HttpRequest): string | null {
  const forwarded = request.headers.get('x-forwarded-for');
  const last = forwarded?.split(',').pop()?.trim();
  if (!last) return null;
  // "1.2.3.4:5678" → "1.2.3.4"; "[::1]:5678" → "::1"; bare IPv6 stays as is.
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(last);
  if (bracketed) return bracketed[1] ?? null;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(last);
  // The shape alone lets 999.1.1.1 through, which the inet columns would refuse.
  if (v4) return z.ipv4().safeParse(v4[1]).success ? (v4[1] ?? null) : null;
  return z.ipv6().safeParse(last).success ? last : null;
}
