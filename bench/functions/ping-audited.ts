// The benchmark's second ceiling: the cheapest protected request there can be. A signed-in caller
// (token verified, revocation checked), one indexed read of their own user row, and the audit row a
// PHI read commits before it answers. What `GET auth/me` costs beyond this is the route's own work.
// Bench-only, like ping.ts.
import { ROLES } from '../../lib/access';
import { endpoint } from '../../lib/endpoint';
import { unauthorized } from '../../lib/errors';
import { json } from '../../lib/http';

endpoint({
  name: 'bench-ping-audited',
  methods: ['GET'],
  route: 'bench/ping-audited',
  access: ROLES,
  phi: true,
  handler: async ({ sql, caller }) => {
    if (!caller) throw unauthorized();
    const [row] = await sql`select 1 as ok from users where id = ${caller.userId}`;
    return json({ ok: row?.ok === 1 });
  },
});
