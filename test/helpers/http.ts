// Requests to the app under test: `send` (any method, as any test account, a bare token or nobody,
// with a JSON or raw body), and `postFrom`, which sends from a chosen loopback address: the local
// host records the socket's address as the client IP (as Azure's front end does), so per-source
// throttling is tested by sending from 127.x.y.z.
import http from 'node:http';
import { currentApp } from './app';
import type { TestUser } from './users';

export interface SendOptions {
  /** Who calls: a test account (its bearer token), a bare access token, or nobody (anonymous). */
  as?: TestUser | string | null;
  /** Sent as JSON (with its content type); a string is sent as it is, for malformed bodies. */
  body?: unknown;
  /** Extra headers; they win over the ones `send` sets (e.g. another Content-Type). */
  headers?: Record<string, string>;
}

/** `method path` against this test file's app (path relative to the API base: `/students?limit=5`). */
export function send(method: string, pathAndQuery: string, options: SendOptions = {}): Promise<Response> {
  const { as, body, headers } = options;
  const authorization = typeof as === 'string' ? { Authorization: `Bearer ${as}` } : (as?.headers ?? {});
  return currentApp().api(pathAndQuery, {
    method,
    headers: { ...authorization, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

/** POSTs `body` (JSON, or a raw string) to `url` from the local address `source`, with extra `headers`. */
export function postFrom(
  url: string,
  body: unknown,
  source: string,
  contentType = 'application/json',
  headers: Record<string, string> = {},
): Promise<Response> {
  const target = new URL(url);
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        localAddress: source,
        agent: false,
        headers: { ...headers, 'content-type': contentType, 'content-length': payload.length },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const headers = new Headers();
          for (let i = 0; i + 1 < response.rawHeaders.length; i += 2) {
            headers.append(response.rawHeaders[i] as string, response.rawHeaders[i + 1] as string);
          }
          const status = response.statusCode ?? 0;
          resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers }));
        });
      },
    );
    // A 413 may answer before the whole body is sent and close the connection.
    request.on('error', reject);
    request.end(payload);
  });
}
