// Reading the audit trail: the query behind every audit list and the summary. Shared by
// functions/audit.ts (the admin routes) and the benchmark, which EXPLAINs the very queries the API
// runs. Writing the trail is lib/audit.ts.

import type { AnySql, Sql } from './db';
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
 * The per-route counts the summary shows, over rows of audit_log `a` grouped by day, method and route:
 * one definition for the daily roll-up and for the live part of the summary, so both count alike.
 */
function routeCounts(sql: AnySql) {
  const [success, clientError, serverError] = [OUTCOMES.success, OUTCOMES.client_error, OUTCOMES.server_error];
  return sql`
    count(*) as requests,
    count(*) filter (where a.phi) as phi_accesses,
    count(*) filter (where a.status between ${success[0]} and ${success[1]}) as success,
    count(*) filter (where a.status between ${clientError[0]} and ${clientError[1]}) as client_error,
    count(*) filter (where a.status between ${serverError[0]} and ${serverError[1]}) as server_error,
    count(*) filter (where a.event = ${AUDIT_EVENTS.loginFailed}) as failed_sign_ins,
    count(*) filter (where a.event = ${AUDIT_EVENTS.refreshTokenReuse}) as refresh_token_reuse`;
}

/**
 * The summary in one statement: the window is whole UTC days (today and the `days - 1` before it).
 * Days up to the roll-up's watermark come from audit_daily_routes and audit_user_last_day (a few rows
 * per day), later ones from audit_log through idx_audit_log_occurred; the figures are the same either
 * way, so the answer is exact whether or not the timer has caught up. The database assembles the JSON.
 * Exported so a test or a benchmark can run it directly.
 */
export function auditSummaryQuery(sql: AnySql, days: number) {
  return sql<{ summary: unknown }[]>`
    with window_days as (
      select (now() at time zone 'UTC')::date - (${days}::int - 1) as first_day,
             (now() at time zone 'UTC')::date as last_day,
             (select rolled_through from audit_rollup_state) as rolled_through
    ),
    bounds as (
      select first_day, last_day, greatest(first_day, coalesce(rolled_through + 1, first_day)) as live_from
        from window_days
    ),
    live as (
      select a.* from audit_log a
       where a.occurred_at >= (select live_from::timestamp at time zone 'UTC' from bounds)
    ),
    per_route as (
      select r.day, r.method, r.route, r.requests, r.phi_accesses, r.success, r.client_error, r.server_error,
             r.failed_sign_ins, r.refresh_token_reuse
        from audit_daily_routes r, bounds b
       where r.day >= b.first_day and r.day < b.live_from
      union all
      select (a.occurred_at at time zone 'UTC')::date, a.method, a.route, ${routeCounts(sql)}
        from live a
       group by 1, 2, 3
    ),
    totals as (
      select coalesce(sum(requests), 0)::bigint as requests,
             coalesce(sum(phi_accesses), 0)::bigint as phi_accesses,
             coalesce(sum(success), 0)::bigint as success,
             coalesce(sum(client_error), 0)::bigint as client_error,
             coalesce(sum(server_error), 0)::bigint as server_error,
             coalesce(sum(failed_sign_ins), 0)::bigint as failed_sign_ins,
             coalesce(sum(refresh_token_reuse), 0)::bigint as refresh_token_reuse
        from per_route
    ),
    distinct_users as (
      select count(*) as n from (
        select u.user_id from audit_user_last_day u, bounds b where u.last_day >= b.first_day and u.last_day < b.live_from
        union
        select user_id from live where user_id is not null) users
    ),
    top_routes as (
      select method, route, sum(requests)::bigint as requests
        from per_route
       group by method, route
       order by requests desc, route, method
       limit ${TOP_ROUTES}
    ),
    daily as (
      select day, sum(requests)::bigint as requests, sum(phi_accesses)::bigint as phi_accesses
        from per_route
       group by day
    ),
    days as (
      select generate_series(first_day, last_day, interval '1 day')::date as day from bounds
    )
    select json_build_object(
             'days', ${days}::int,
             'from', (select to_char(first_day, 'YYYY-MM-DD') from bounds),
             'requests', t.requests,
             'phiAccesses', t.phi_accesses,
             'distinctUsers', (select n from distinct_users),
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

/** The longest window the summary serves; the roll-up never needs to start earlier than this. */
export const SUMMARY_MAX_DAYS = 366;

/**
 * A day is rolled up once it ended this long ago: by then every request that started before midnight
 * has written its row (requests are bounded far below an hour), so a rolled day never changes again.
 */
const CLOSED_DAY_GRACE_MINUTES = 60;

/**
 * Rolls up closed days after the watermark, oldest first, each in its own transaction with the
 * watermark, at most `maxDays` per call; returns how many days it rolled. Concurrent runs (two
 * instances' timers) serialise on the watermark row, so a day is never counted twice.
 */
export async function rollUpClosedAuditDays(sql: Sql, maxDays: number): Promise<number> {
  let rolled = 0;
  while (rolled < maxDays && (await rollUpNextDay(sql))) rolled++;
  return rolled;
}

async function rollUpNextDay(sql: Sql): Promise<boolean> {
  return sql.begin(async (tx) => {
    // The first run starts at the oldest row the longest window can reach (or the oldest row).
    await tx`
      insert into audit_rollup_state (rolled_through)
      select greatest((select min(occurred_at) from audit_log) at time zone 'UTC',
                      (now() at time zone 'UTC') - make_interval(days => ${SUMMARY_MAX_DAYS}))::date - 1
      on conflict (singleton) do nothing`;
    const [next] = await tx<{ day: string }[]>`
      select (rolled_through + 1)::text as day from audit_rollup_state
       where (rolled_through + 2)::timestamp at time zone 'UTC' <= now() - make_interval(mins => ${CLOSED_DAY_GRACE_MINUTES})
         for update`;
    if (!next) return false;
    const from = tx`${next.day}::date::timestamp at time zone 'UTC'`;
    const until = tx`(${next.day}::date + 1)::timestamp at time zone 'UTC'`;
    await tx`
      insert into audit_daily_routes (day, method, route, requests, phi_accesses, success, client_error, server_error,
                                      failed_sign_ins, refresh_token_reuse)
      select ${next.day}::date, a.method, a.route, ${routeCounts(tx)}
        from audit_log a where a.occurred_at >= ${from} and a.occurred_at < ${until}
       group by a.method, a.route`;
    await tx`
      insert into audit_user_last_day (user_id, last_day)
      select distinct a.user_id, ${next.day}::date
        from audit_log a where a.occurred_at >= ${from} and a.occurred_at < ${until} and a.user_id is not null
      on conflict (user_id) do update set last_day = greatest(audit_user_last_day.last_day, excluded.last_day)`;
    await tx`update audit_rollup_state set rolled_through = ${next.day}::date`;
    return true;
  });
}

/**
 * Removes audit rows older than `retentionDays` (PHI rows: six years at least) through prune_audit_log(),
 * the app role's only way to delete them, and records the pruning; returns how many went.
 */
export async function pruneAuditLog(sql: Sql, retentionDays: number, runId: string): Promise<number> {
  // One statement: prune and record the pruning atomically (no recorded prune that did not happen,
  // no prune without its record).
  const [row] = await sql<{ removed: string }[]>`
    with pruned as (
      select prune_audit_log(make_interval(days => ${retentionDays}::int)) as removed
    )
    insert into audit_log (request_id, method, route, resource_ids, status, duration_ms, phi, event)
    select ${runId}, 'TIMER', 'audit-retention',
           jsonb_build_object('removed', removed::text, 'retentionDays', ${String(retentionDays)}::text),
           200, (extract(epoch from clock_timestamp() - now()) * 1000)::int, false, 'audit_log_pruned'
      from pruned
    returning resource_ids ->> 'removed' as removed`;
  return Number(row?.removed ?? 0);
}
