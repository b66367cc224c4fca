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
import {
  AUDIT_ORDER,
  type AuditFilters,
  auditPageQuery,
  auditSummaryQuery,
  OUTCOMES,
  type Outcome,
  toAuditItem,
} from '../lib/audit-trail';
import type { Sql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { decimalInt, singleLine } from '../lib/text';

const AUDIT_READERS: readonly Role[] = ['admin'];

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
  cursor: AUDIT_ORDER.cursor,
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

async function auditPage(sql: Sql, filters: AuditFilters, requestUrl: string) {
  const rows = await auditPageQuery(sql, filters);
  const page = pageOf(rows, filters.limit, (read) => read.map(toAuditItem));
  return json(page, 200, nextLink(requestUrl, page.next));
}

endpoint({
  name: 'audit-logs-list',
  methods: ['GET'],
  route: 'audit/logs',
  access: AUDIT_READERS,
  query: LogsQuery,
  handler: async function auditLogsList({ sql, query, request }) {
    return auditPage(sql, query, request.url);
  },
});

endpoint({
  name: 'audit-phi-access-list',
  methods: ['GET'],
  route: 'audit/phi-access',
  access: AUDIT_READERS,
  query: PhiAccessQuery,
  handler: async function auditPhiAccessList({ sql, query, request }) {
    return auditPage(sql, { ...query, phi: true }, request.url);
  },
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
  handler: async function auditUserActivity({ sql, params, query, request }) {
    return auditPage(sql, { ...query, userId: params.id }, request.url);
  },
});

const SummaryQuery = z.strictObject({ days: decimalInt({ min: 1, max: 366 }).default(30) });

endpoint({
  name: 'audit-summary',
  methods: ['GET'],
  route: 'audit/summary',
  access: AUDIT_READERS,
  query: SummaryQuery,
  handler: async function auditSummary({ sql, query }) {
    const [row] = await auditSummaryQuery(sql, query.days);
    return json(row?.summary);
  },
});
