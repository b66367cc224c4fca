// The readiness check of functions/health.ts: is the database reachable (and how fast did it answer),
// is the schema up to date, and how is the pool. Liveness has no module: it must not touch anything.
import { poolStats, type Sql } from './db';
import { serviceUnavailable } from './errors';
import { pendingMigrations } from './migrations';

export interface Readiness {
  status: 'ready' | 'migrations-pending';
  database: { reachable: true; latencyMs: number };
  migrations: { pending: string[] };
  pool: Awaited<ReturnType<typeof poolStats>>;
}

/** The readiness report; an unreachable database is a 503 problem (with Retry-After). */
export async function readiness(sql: Sql): Promise<Readiness> {
  const started = performance.now();
  try {
    await sql`select 1`;
  } catch {
    throw serviceUnavailable('The database is not reachable');
  }
  const latencyMs = Math.round((performance.now() - started) * 10) / 10;
  const pending = await pendingMigrations(sql);
  const pool = await poolStats();
  return {
    status: pending.length === 0 ? 'ready' : 'migrations-pending',
    database: { reachable: true, latencyMs },
    migrations: { pending },
    pool,
  };
}
