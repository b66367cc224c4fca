// The readiness check of functions/health.ts: is the database reachable (and how fast did it answer),
// is the schema up to date, and how is the pool. Liveness has no module: it must not touch anything.
import { z } from 'zod';
import { poolStats, type Sql } from './db';
import { serviceUnavailable } from './errors';
import { pendingMigrations } from './migrations';

/** Liveness: the process answers. */
export const LivenessView = z.object({ status: z.literal('ok') });

/** The readiness report (GET health/ready): 200 when ready, 503 with the same body while migrations are pending. */
export const ReadinessView = z.object({
  status: z.enum(['ready', 'migrations-pending']),
  database: z.object({ reachable: z.literal(true), latencyMs: z.number().min(0) }),
  migrations: z.object({ pending: z.array(z.string()).describe('Migrations not yet applied, by name') }),
  pool: z.object({ max: z.int(), open: z.int(), active: z.int(), idle: z.int() }),
});
export type Readiness = z.infer<typeof ReadinessView>;

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
