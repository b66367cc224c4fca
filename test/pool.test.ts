// The instance's pool against a real server: its size holds under load, the statement timeout
// frees a connection and answers 503, and killed connections are replaced.
import { describe, expect, test } from 'vitest';
import { APPLICATION_NAME } from '../lib/db';
import { useTestApp } from './helpers/app';

const POOL_MAX = 3;
const app = useTestApp({
  env: { DB_POOL_MAX: String(POOL_MAX), DB_STATEMENT_TIMEOUT_MS: '1000' },
  fixtures: ['wrapper-routes.ts'],
});

async function appConnections(): Promise<number> {
  const [row] = await app.db.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where application_name = ${APPLICATION_NAME}`;
  return row?.n ?? 0;
}

describe('the pool', () => {
  test('50 concurrent requests on a pool of 3 all succeed without opening more connections', async () => {
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await appConnections());
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const responses = await Promise.all(Array.from({ length: 50 }, () => app.api('/fixture/sleep/40')));
    sampling = false;
    await sampler;
    expect(responses.map((response) => response.status)).toEqual(Array(50).fill(200));
    const pids = new Set(await Promise.all(responses.map(async (r) => ((await r.json()) as { pid: number }).pid)));
    expect(pids.size).toBeLessThanOrEqual(POOL_MAX);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(POOL_MAX);
  });

  test('the readiness probe reports the configured size and this instance’s connections', async () => {
    const response = await app.api('/health/ready');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { pool: { max: number; open: number } };
    expect(body.pool.max).toBe(POOL_MAX);
    expect(body.pool.open).toBeGreaterThanOrEqual(1);
    expect(body.pool.open).toBeLessThanOrEqual(POOL_MAX);
  });

  test('a statement past the timeout is cancelled: 503 problem with Retry-After, not a hang', async () => {
    // The statement would sleep 30 s; the 1 s timeout must end it. The bound is loose on purpose (a loaded
    // machine is slow, not 15 s slow): what it catches is a request that waits for the sleep.
    const started = Date.now();
    const response = await app.api('/fixture/sleep/30000');
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Date.now() - started).toBeLessThan(15_000);
    // The server stopped the statement too; it is not still sleeping on a connection of ours.
    const sleeping = await app.db.sql`
      select 1 from pg_stat_activity
       where application_name = ${APPLICATION_NAME} and state = 'active' and query like '%pg_sleep%'`;
    expect(sleeping).toHaveLength(0);
    // The connection went back to the pool in working order.
    expect((await app.api('/fixture/sleep/1')).status).toBe(200);
  });

  test('the pool recovers after the server kills its connections', async () => {
    await Promise.all(Array.from({ length: 6 }, () => app.api('/fixture/sleep/20')));
    const [killed] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from (
        select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${APPLICATION_NAME}) t`;
    expect(killed?.n).toBeGreaterThan(0);
    // A request that meets a killed connection before the pool has noticed gets the 503 that says
    // when to come back, never anything else; within a few seconds a whole round succeeds again.
    let statuses: number[] = [];
    for (let round = 0; round < 25; round++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await Promise.all(Array.from({ length: 10 }, () => app.api('/fixture/sleep/1')));
      statuses = after.map((response) => response.status);
      for (const response of after.filter((r) => r.status === 503)) {
        expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      }
      expect(statuses.filter((status) => status !== 200 && status !== 503)).toEqual([]);
      if (statuses.every((status) => status === 200)) break;
    }
    expect(statuses).toEqual(Array(10).fill(200));
  });
});
