/// <reference path="./autocannon.d.ts" />
// Driving HTTP load: autocannon for a fixed time at a fixed number of connections, with every
// response's status and latency recorded here (autocannon's own histogram has no p95), and the
// sequential walk the roster scenario needs. Results are numbers only; nothing here asserts.
import autocannon from 'autocannon';

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  /** Completed responses. */
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: LatencySummary;
  /** Connection errors and timeouts (no response at all). */
  errors: number;
  timeouts: number;
  /** Responses outside 2xx that the scenario did not expect (a 304 to If-None-Match is expected). */
  unexpectedStatus: number;
  statusCounts: Record<string, number>;
  connections: number;
}

export interface LoadOptions {
  /** Full URL(s) with path and query; several URLs share the connections between them. */
  url: string | string[];
  connections: number;
  durationSeconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** A fresh body per request (e.g. a different account per sign-in). */
  nextBody?: () => string;
  /** Fresh headers per request, merged over `headers` (e.g. a new Idempotency-Key per payment). */
  nextHeaders?: () => Record<string, string>;
  /** Statuses that count as success besides 2xx. */
  alsoExpected?: readonly number[];
}

export function summarize(latencies: number[]): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : (sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number);
  const mean = sorted.length === 0 ? 0 : sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1), mean };
}

function countUnexpected(statusCounts: Record<string, number>, alsoExpected: readonly number[]): number {
  return Object.entries(statusCounts)
    .filter(([status]) => !(Number(status) >= 200 && Number(status) < 300) && !alsoExpected.includes(Number(status)))
    .reduce((sum, [, count]) => sum + count, 0);
}

/** Runs autocannon and returns what it measured. */
export async function drive(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  const { nextBody, nextHeaders } = options;
  const fresh = (request: { headers?: Record<string, string>; body?: string }) => ({
    ...request,
    ...(nextBody ? { body: nextBody() } : {}),
    ...(nextHeaders ? { headers: { ...request.headers, ...nextHeaders() } } : {}),
  });
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    timeout: 30,
    method: options.method ?? 'GET',
    headers: options.headers ?? {},
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(nextBody || nextHeaders ? { requests: [{ setupRequest: fresh }] } : {}),
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, milliseconds: number) => {
    latencies.push(milliseconds);
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
  });
  const result = await instance;
  return {
    requests: latencies.length,
    seconds: result.duration,
    requestsPerSecond: latencies.length / result.duration,
    latencyMs: summarize(latencies),
    errors: result.errors,
    timeouts: result.timeouts,
    unexpectedStatus: countUnexpected(statusCounts, options.alsoExpected ?? []),
    statusCounts,
    connections: options.connections,
  };
}

/**
 * Follows `next` cursors one request at a time until the list ends (or `maxItems` were read),
 * timing each page: what a client exporting the whole list waits for.
 */
export async function walkPages(
  firstUrl: string,
  headers: Record<string, string>,
  maxItems = Number.POSITIVE_INFINITY,
): Promise<{ result: LoadResult; items: number; cursors: { depth: number; cursor: string }[] }> {
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  const cursors: { depth: number; cursor: string }[] = [];
  const started = performance.now();
  let items = 0;
  let url: string | null = firstUrl;
  while (url && items < maxItems) {
    const began = performance.now();
    const response = await fetch(url, { headers });
    const body = response.ok ? ((await response.json()) as { items: unknown[]; next: string | null }) : null;
    if (!body) await response.arrayBuffer();
    latencies.push(performance.now() - began);
    statusCounts[response.status] = (statusCounts[response.status] ?? 0) + 1;
    if (!body) break;
    items += body.items.length;
    if (body.next) {
      cursors.push({ depth: items, cursor: body.next });
      const nextUrl: URL = new URL(url);
      nextUrl.searchParams.set('cursor', body.next);
      url = nextUrl.toString();
    } else {
      url = null;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    items,
    cursors,
    result: {
      requests: latencies.length,
      seconds,
      requestsPerSecond: latencies.length / seconds,
      latencyMs: summarize(latencies),
      errors: 0,
      timeouts: 0,
      unexpectedStatus: countUnexpected(statusCounts, []),
      statusCounts,
      connections: 1,
    },
  };
}
