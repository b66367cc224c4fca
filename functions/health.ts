// Liveness and readiness. Liveness never touches the database (a slow database must not get
// healthy instances recycled); readiness checks the database, the schema version and the pool
// (lib/health.ts), and is a 503 until every migration is applied.
import { endpoint } from '../lib/endpoint';
import { LivenessView, ReadinessView, readiness } from '../lib/health';
import { json } from '../lib/http';

endpoint({
  name: 'health-live',
  methods: ['GET'],
  route: 'health',
  access: 'public',
  responses: { 200: LivenessView },
  handler: async function healthLive() {
    return json({ status: 'ok' });
  },
});

endpoint({
  name: 'health-ready',
  methods: ['GET'],
  route: 'health/ready',
  access: 'public',
  // Pending migrations are a 503 with the report itself, not a problem.
  responses: { 200: ReadinessView, 503: ReadinessView },
  handler: async function healthReady({ sql }) {
    const report = await readiness(sql);
    return json(report, report.status === 'ready' ? 200 : 503);
  },
});
