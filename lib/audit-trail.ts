// Reading the audit trail: the query behind every audit list and the summary. Shared by
// functions/audit.ts (the admin routes) and the benchmark, which EXPLAINs the very queries the API
// runs. Writing the trail is lib/audit.ts.

import type { AnySql } from './db';
import { keyset, utcMicroseconds } from './pagination';

/** Security events the summary counts, as functions/auth.ts names them in its audit rows. */
export const AUDIT_EVENTS = { loginFailed: 'login_failed', refreshTokenReuse: 'refresh_token_reuse' } as const;

/** Status ranges of `?outcome=` and of the summary's breakdown (one definition for both). */
export const OUTCOMES = {
  success: [200, 399],
  client_error: [400, 499],
  server_error: [500, 599],
} as const;
export type Outcome = keyof typeof OUTCOMES;

/**
 * Newest first on (occurred_at, id), the key to the microsecond: a JS Date would round it to the
 * millisecond, and rows sharing that millisecond would then be skipped or served twice.
 */
export const AUDIT_ORDER = keyset(
  [
    ['occurred_at', 'time'],
    ['id', 'bigint'],
  ],
  'desc',
);

/** What an audit list can be narrowed by (validated by the routes' query schemas). */
export interface AuditFilters {
  limit: number;
  cursor?: readonly [string, string] | undefined;
  userId?: string | undefined;
  phi?: boolean | undefined;
  status?: number | undefined;
  outcome?: Outcome | undefined;
  route?: string | undefined;
  event?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

export interface AuditRow {
  page_key: string[];
  id: string;
  occurred: string;
  request_id: string | null;
  user_id: string | null;
  roles: string[];
  method: string;
  route: string;
  resource_ids: Record<string, string> | null;
  status: number;
  duration_ms: number | null;
  client_ip: string | null;
  user_agent: string | null;
  phi: boolean;
  event: string | null;
}

export const toAuditItem = (row: AuditRow) => ({
  id: row.id,
  occurredAt: row.occurred,
  requestId: row.request_id,
  userId: row.user_id,
  roles: row.roles,
  method: row.method,
  route: row.route,
  resourceIds: row.resource_ids ?? {},
  status: row.status,
  durationMs: row.duration_ms,
  clientIp: row.client_ip,
  userAgent: row.user_agent,
  phi: row.phi,
  event: row.event,
});

/**
 * The one query behind every list: newest first, keyset-paged on (occurred_at, id) so it walks
 * idx_audit_log_occurred (or the partial idx_audit_log_phi, or idx_audit_log_user) backwards from
 * the cursor: page 10,000 reads what page 1 reads. `phi` is written as a literal predicate, not a
 * parameter, so the planner can match the partial index. Fetches `limit + 1` rows (see pageOf).
 * Exported so a test can EXPLAIN it.
 */
export function auditPageQuery(sql: AnySql, filters: AuditFilters) {
  const where = [sql`true`];
  if (filters.userId !== undefined) where.push(sql`user_id = ${filters.userId}`);
  if (filters.phi === true) where.push(sql`phi`);
  if (filters.phi === false) where.push(sql`not phi`);
  if (filters.status !== undefined) where.push(sql`status = ${filters.status}`);
  if (filters.outcome !== undefined) {
    const [lowest, highest] = OUTCOMES[filters.outcome];
    where.push(sql`status between ${lowest} and ${highest}`);
  }
  if (filters.route !== undefined) where.push(sql`route = ${filters.route}`);
  if (filters.event !== undefined) where.push(sql`event = ${filters.event}`);
  // Timestamps are sent as text and cast by the server: a parameter typed timestamptz would go
  // through postgres.js's Date serializer and lose the microseconds (rows would be skipped).
  if (filters.from !== undefined) where.push(sql`occurred_at >= ${filters.from}::text::timestamptz`);
  if (filters.to !== undefined) where.push(sql`occurred_at <= ${filters.to}::text::timestamptz`);
  where.push(AUDIT_ORDER.after(sql, filters.cursor));
  const conditions = where.reduce((all, condition) => sql`${all} and ${condition}`);
  return sql<AuditRow[]>`
    select id, ${utcMicroseconds(sql, sql`occurred_at`)} as occurred, request_id,
           user_id, roles, method, route, resource_ids, status, duration_ms, host(client_ip) as client_ip, user_agent,
           phi, event, ${AUDIT_ORDER.key(sql)}
      from audit_log
     where ${conditions}
     ${AUDIT_ORDER.orderBy(sql)}
     limit ${filters.limit + 1}`;
}

const TOP_ROUTES = 10;

/**
 * The summary in one statement: the window is whole UTC days (today and the `days - 1` before it),
 * read once through idx_audit_log_occurred; every figure is an aggregate of that one CTE, and the
 * database assembles the JSON. Exported so a test or a benchmark can run it directly.
 */
export function auditSummaryQuery(sql: AnySql, days: number) {
  const [success, clientError, serverError] = [OUTCOMES.success, OUTCOMES.client_error, OUTCOMES.server_error];
  return sql<{ summary: unknown }[]>`
    with bounds as (
      select (now() at time zone 'UTC')::date - (${days}::int - 1) as first_day,
             (now() at time zone 'UTC')::date as last_day
    ),
    recent as (
      select a.occurred_at, a.user_id, a.method, a.route, a.status, a.phi, a.event
        from audit_log a
       where a.occurred_at >= (select first_day::timestamp at time zone 'UTC' from bounds)
    ),
    totals as (
      select count(*) as requests,
             count(*) filter (where phi) as phi_accesses,
             count(distinct user_id) as distinct_users,
             count(*) filter (where status between ${success[0]} and ${success[1]}) as success,
             count(*) filter (where status between ${clientError[0]} and ${clientError[1]}) as client_error,
             count(*) filter (where status between ${serverError[0]} and ${serverError[1]}) as server_error,
             count(*) filter (where event = ${AUDIT_EVENTS.loginFailed}) as failed_sign_ins,
             count(*) filter (where event = ${AUDIT_EVENTS.refreshTokenReuse}) as refresh_token_reuse
        from recent
    ),
    top_routes as (
      select method, route, count(*) as requests
        from recent
       group by method, route
       order by requests desc, route, method
       limit ${TOP_ROUTES}
    ),
    daily as (
      select (occurred_at at time zone 'UTC')::date as day, count(*) as requests,
             count(*) filter (where phi) as phi_accesses
        from recent
       group by 1
    ),
    days as (
      select generate_series(first_day, last_day, interval '1 day')::date as day from bounds
    )
    select json_build_object(
             'days', ${days}::int,
             'from', (select to_char(first_day, 'YYYY-MM-DD') from bounds),
             'requests', t.requests,
             'phiAccesses', t.phi_accesses,
             'distinctUsers', t.distinct_users,
             'byOutcome', json_build_object('success', t.success, 'clientError', t.client_error,
                                            'serverError', t.server_error),
             'failedSignIns', t.failed_sign_ins,
             'refreshTokenReuse', t.refresh_token_reuse,
             'topRoutes', coalesce((select json_agg(json_build_object('method', method, 'route', route,
                                                                      'requests', requests)
                                                    order by requests desc, route, method)
                                      from top_routes), '[]'::json),
             'perDay', (select json_agg(json_build_object('day', to_char(d.day, 'YYYY-MM-DD'),
                                                          'requests', coalesce(x.requests, 0),
                                                          'phiAccesses', coalesce(x.phi_accesses, 0))
                                        order by d.day)
                          from days d left join daily x using (day))
           ) as summary
      from totals t`;
}
