// One request for each role's home screen (lib/dashboard.ts): counts only, in one database round trip.
// Counts name nobody and belong to the caller's view alone, so the answer may be cached privately (by
// the caller's browser, `Cache-Control: private`, with an ETag) for PRIVATE_CACHE_MAX_AGE_SECONDS, never
// by a shared cache: a home screen five minutes old is still the right list of things to do.
import type { Role } from '../lib/access';
import { DashboardView, dashboardOf } from '../lib/dashboard';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';

/** Those with a home screen of records: the office, the registrar, instructors and students. */
const DASHBOARD_USERS: readonly Role[] = ['admin', 'staff', 'registrar', 'instructor', 'student'];

endpoint({
  name: 'dashboard',
  methods: ['GET'],
  route: 'dashboard',
  access: DASHBOARD_USERS,
  cache: 'private',
  responses: { 200: DashboardView },
  handler: async function dashboard({ sql, caller }) {
    return json(await dashboardOf(sql, caller));
  },
});
