// Reading the audit trail (HIPAA §164.312(b) review): the log, the PHI accesses, one user's activity
// and a summary. Audit rows hold no PII by design (user ids, route templates, statuses), so these
// routes are not PHI; they are no-store, and, being protected, every read of the trail is itself
// audited by the wrapper.
//
// Who reads it: `admin` only. The registrar gets no access on purpose: the trail shows which staff
// member opened which student's record and the security events of every account (failed sign-ins,
// token theft, source addresses), which is the security official's review, not records work
// (minimum necessary, §164.502(b)). A compliance-officer role would be added here, not a wider one.
import { z } from 'zod';
import type { Role } from '../lib/access';
import type { Sql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { cursorSchema, limitSchema, nextLink, pageOf } from '../lib/pagination';
import { decimalInt, singleLine } from '../lib/text';

const AUDIT_READERS: readonly Role[] = ['admin'];

/** Security events the summary counts, as functions/auth.ts names them in its audit rows. */
export const AUDIT_EVENTS = { loginFailed: 'login_failed', refreshTokenReuse: 'refresh_token_reuse' } as const;

/** Status ranges of `?outcome=` and of the summary's breakdown (one definition for both). */
const OUTCOMES = {
  success: [200, 399],
  client_error: [400, 499],
  server_error: [500, 599],
} as const;
type Outcome = keyof typeof OUTCOMES;

// The cursor keeps occurred_at to the microsecond as UTC text: a JS Date would round it to the
// millisecond, and rows sharing that millisecond would then be skipped or served twice.
const MICROSECOND_ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

const AuditCursor = cursorSchema(
  z.tuple([
    z
      .string()
      .regex(MICROSECOND_ISO)
      .refine((value) => !Number.isNaN(Date.parse(value))),
    z.string().regex(/^[1-9]\d{0,18}$/),
  ]),
);

// Dates outside this window are typing mistakes, not audit questions.
const EARLIEST = Date.parse('2000-01-01T00:00:00Z');
const LATEST = Date.parse('2100-01-01T00:00:00Z');
const boundedDateTime = z.iso
  .datetime({ offset: true })
  .refine((value) => Date.parse(value) >= EARLIEST && Date.parse(value) < LATEST, {
    message: 'Must be between 2000-01-01 and 2100-01-01',
  });

const filterShape = {
  limit: limitSchema,
  cursor: AuditCursor,
  userId: z.uuid().optional(),
  phi: z
    .enum(['true', 'false'])
    .transform((value) => value === 'true')
    .optional(),
  status: z
    .string()
    .regex(/^[1-5]\d\d$/, 'An HTTP status code (100-599)')
    .transform(Number)
    .optional(),
  outcome: z.enum(Object.keys(OUTCOMES) as [Outcome, ...Outcome[]]).optional(),
  /** The route template exactly as declared: `students/{id}`. */
  route: singleLine(200).optional(),
  event: z
    .string()
    .regex(/^[a-z_]{1,64}$/)
    .optional(),
  /** Inclusive bounds on occurred_at. */
  from: boundedDateTime.optional(),
  to: boundedDateTime.optional(),
};

interface FilterChecks {
  status?: number | undefined;
  outcome?: Outcome | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

// Strict: a misspelt filter (`?user_id=`) must not silently widen an audit question to everything.
function auditQuery<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.strictObject(shape).superRefine((query, ctx) => {
    const checks = query as FilterChecks;
    if (checks.status !== undefined && checks.outcome !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['outcome'], message: 'Give either status or outcome, not both' });
    }
    if (checks.from && checks.to && Date.parse(checks.from) > Date.parse(checks.to)) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'from must not be after to' });
    }
  });
}

const LogsQuery = auditQuery(filterShape);
const { phi: _phi, ...phiAccessShape } = filterShape;
const PhiAccessQuery = auditQuery(phiAccessShape);
const { userId: _userId, ...activityShape } = filterShape;
const ActivityQuery = auditQuery(activityShape);

export type AuditFilters = Partial<Omit<z.output<typeof LogsQuery>, 'limit'>> & { limit: number };

interface AuditRow {
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

const toAuditItem = (row: AuditRow) => ({
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
export function auditPageQuery(sql: Sql, filters: AuditFilters) {
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
  if (filters.cursor !== undefined) {
    const [occurredAt, id] = filters.cursor;
    where.push(sql`(occurred_at, id) < (${occurredAt}::text::timestamptz, ${id}::bigint)`);
  }
  const conditions = where.reduce((all, condition) => sql`${all} and ${condition}`);
  return sql<AuditRow[]>`
    select id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred, request_id, user_id, roles, method, route,
           resource_ids, status, duration_ms, host(client_ip) as client_ip, user_agent, phi, event
      from audit_log
     where ${conditions}
     order by occurred_at desc, id desc
     limit ${filters.limit + 1}`;
}

async function auditPage(sql: Sql, filters: AuditFilters, requestUrl: string) {
  const rows = await auditPageQuery(sql, filters);
  const page = pageOf(rows, filters.limit, (row) => [row.occurred, row.id], toAuditItem);
  return json(page, 200, nextLink(requestUrl, page.next));
}

endpoint({
  name: 'audit-logs-list',
  methods: ['GET'],
  route: 'audit/logs',
  access: AUDIT_READERS,
  query: LogsQuery,
  handler: async ({ sql, query, request }) => auditPage(sql, query, request.url),
});

endpoint({
  name: 'audit-phi-access-list',
  methods: ['GET'],
  route: 'audit/phi-access',
  access: AUDIT_READERS,
  query: PhiAccessQuery,
  handler: async ({ sql, query, request }) => auditPage(sql, { ...query, phi: true }, request.url),
});

const UserParams = z.object({ id: z.uuid() });

endpoint({
  name: 'audit-user-activity',
  methods: ['GET'],
  route: 'audit/users/{id}/activity',
  access: AUDIT_READERS,
  params: UserParams,
  query: ActivityQuery,
  // No check that the user exists: the trail outlives accounts, and an unknown id is an empty page.
  handler: async ({ sql, params, query, request }) => auditPage(sql, { ...query, userId: params.id }, request.url),
});

const SummaryQuery = z.strictObject({ days: decimalInt({ min: 1, max: 366 }).default(30) });

const TOP_ROUTES = 10;

/**
 * The summary in one statement: the window is whole UTC days (today and the `days - 1` before it),
 * read once through idx_audit_log_occurred; every figure is an aggregate of that one CTE, and the
 * database assembles the JSON. Exported so a test or a benchmark can run it directly.
 */
export function auditSummaryQuery(sql: Sql, days: number) {
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

endpoint({
  name: 'audit-summary',
  methods: ['GET'],
  route: 'audit/summary',
  access: AUDIT_READERS,
  query: SummaryQuery,
  handler: async ({ sql, query }) => {
    const [row] = await auditSummaryQuery(sql, query.days);
    return json(row?.summary);
  },
});
