// Liveness and readiness. Liveness never touches the database (a slow database must not get
// healthy instances recycled); readiness checks the database, the schema version and the pool.
import { poolStats } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { serviceUnavailable } from '../lib/errors';
import { json } from '../lib/http';
import { pendingMigrations } from '../lib/migrations';

endpoint({
  name: 'health-live',
  methods: ['GET'],
  route: 'health',
  access: 'public',
  handler: async () => json({ status: 'ok' }),
});

endpoint({
  name: 'health-ready',
  methods: ['GET'],
  route: 'health/ready',
  access: 'public',
  handler: async ({ sql }) => {
    const started = performance.now();
    try {
      await sql`select 1`;
    } catch {
      throw serviceUnavailable('The database is not reachable');
    }
    const databaseMs = Math.round((performance.now() - started) * 10) / 10;
    const pending = await pendingMigrations(sql);
    const pool = await poolStats();
    const ready = pending.length === 0;
    return json(
      {
        status: ready ? 'ready' : 'migrations-pending',
        database: { reachable: true, latencyMs: databaseMs },
        migrations: { pending },
        pool,
      },
      ready ? 200 : 503,
    );
  },
});
