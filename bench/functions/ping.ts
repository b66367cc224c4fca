// The benchmark's ceiling: one `select 1` through the pool and the route wrapper, nothing else.
// Every scenario's throughput is printed as a fraction of this one. Bench-only: bench/serve.ts loads
// it next to the app's functions; Azure never does (package.json `main` is dist/functions/*.js, and
// .funcignore leaves dist/bench/ out of the package).
import { db } from '../../lib/db';
import { endpoint } from '../../lib/endpoint';
import { json } from '../../lib/http';

endpoint({
  name: 'bench-ping',
  methods: ['GET'],
  route: 'bench/ping',
  access: 'public',
  handler: async () => {
    await db()`select 1`;
    return json({ ok: true });
  },
});
