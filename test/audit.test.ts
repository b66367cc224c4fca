// The audit trail (HIPAA §164.312(b)) over real HTTP and real SQL: one row per request of every
// outcome and nothing personal in it; the app role can only append; the admin lists page by
// (occurred_at, id) without skipping or repeating while rows arrive; the summary; retention; and a
// PHI response withheld when its row cannot be written.
//
// Function modules are imported dynamically, after the app booted: a static import would register
// their functions before the local host's stand-in exists (see dev/functions-host.ts).
import { randomUUID } from 'node:crypto';
import { InvocationContext, type Timer } from '@azure/functions';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { registeredFunction, useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts } from './helpers/roles';
import type { TestUser } from './helpers/users';

const app = useTestApp({ fixtures: ['audit-routes.ts'] });

const fixture = () => import('./fixtures/audit-routes');
const auditModule = () => import('../lib/audit-trail');
const retentionModule = () => import('../functions/audit-retention');

let admin: TestUser;
let staff: TestUser;
let student: TestUser;
let registrar: TestUser;

beforeAll(async () => {
  ({ admin, staff, student, registrar } = await createRoleAccounts(app.db.sql));
});

interface AuditItem {
  id: string;
  occurredAt: string;
  requestId: string | null;
  userId: string | null;
  roles: string[];
  method: string;
  route: string;
  resourceIds: Record<string, string>;
  status: number;
  durationMs: number | null;
  clientIp: string | null;
  userAgent: string | null;
  phi: boolean;
  event: string | null;
}

interface AuditPage {
  items: AuditItem[];
  next: string | null;
}

interface AuditLogRow {
  id: string;
  occurred_at: Date;
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

async function maxAuditId(): Promise<bigint> {
  const [row] = await app.db.sql<{ max: string }[]>`select coalesce(max(id), 0)::text as max from audit_log`;
  return BigInt(row?.max ?? '0');
}

const getAs = (user: TestUser, path: string) => send('GET', path, { as: user });

async function pageAs(user: TestUser, path: string): Promise<AuditPage> {
  const response = await getAs(user, path);
  expect(response.status, `${path}: ${response.status}`).toBe(200);
  expect(response.headers.get('cache-control')).toBe('no-store');
  return (await response.json()) as AuditPage;
}

/** Every item of a list, following `next` (the cursor is opaque: it is passed back as given). */
async function allPages(path: string, limit = 200): Promise<AuditItem[]> {
  const items: AuditItem[] = [];
  const separator = path.includes('?') ? '&' : '?';
  let next: string | null = null;
  do {
    const cursor: string = next ? `&cursor=${encodeURIComponent(next)}` : '';
    const page = await pageAs(admin, `${path}${separator}limit=${limit}${cursor}`);
    items.push(...page.items);
    next = page.next;
  } while (next);
  return items;
}

async function problemFields(response: Response): Promise<string[]> {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await response.json()) as { errors?: { field: string }[] };
  return (body.errors ?? []).map((error) => error.field);
}

describe('audit completeness: one row per request, whatever its outcome', () => {
  const N = 3;
  const EMAIL = 'jane.doe+audit@example.com';
  const USER_AGENT = 'aada-audit-test/1.0 (vitest)';

  test(`${N} requests of every outcome leave exactly ${N} rows each, with who, what, how and from where`, async () => {
    const { KNOWN_RECORD_ID } = await fixture();
    const unknownId = randomUUID();
    const anonymous = null;
    const cases = [
      // An email in the query string: the row keeps the route template only.
      { outcome: 200, user: staff, method: 'GET', path: `/fixture/audit/records?q=${encodeURIComponent(EMAIL)}` },
      { outcome: 400, user: staff, method: 'GET', path: `/fixture/audit/records?limit=999&q=${EMAIL}` },
      { outcome: 401, user: anonymous, method: 'GET', path: `/fixture/audit/records?q=${EMAIL}` },
      { outcome: 403, user: student, method: 'GET', path: `/fixture/audit/records?q=${EMAIL}` },
      { outcome: 404, user: admin, method: 'GET', path: `/fixture/audit/records/${unknownId}` },
      { outcome: 500, user: staff, method: 'GET', path: '/fixture/audit/crash' },
      { outcome: 201, user: staff, method: 'POST', path: '/fixture/audit/records', body: { immunization: 'HBV' } },
      { outcome: 200, user: student, method: 'GET', path: '/fixture/audit/plain' },
    ] as const;
    const routeOf: Record<string, { route: string; phi: boolean; resourceIds: Record<string, string> | null }> = {
      '/fixture/audit/records': { route: 'fixture/audit/records', phi: true, resourceIds: null },
      [`/fixture/audit/records/${unknownId}`]: {
        route: 'fixture/audit/records/{id}',
        phi: true,
        resourceIds: { id: unknownId },
      },
      '/fixture/audit/crash': { route: 'fixture/audit/crash', phi: true, resourceIds: null },
      '/fixture/audit/plain': { route: 'fixture/audit/plain', phi: false, resourceIds: null },
    };

    const before = await maxAuditId();
    const sent: { requestId: string; elapsedMs: number; spec: (typeof cases)[number] }[] = [];
    for (const spec of cases) {
      for (let i = 0; i < N; i++) {
        const started = performance.now();
        const response = await app.api(spec.path, {
          method: spec.method,
          headers: {
            ...(spec.user?.headers ?? {}),
            'User-Agent': USER_AGENT,
            // Spoofed: the platform's address wins (the local host overwrites this header).
            'X-Forwarded-For': '203.0.113.66',
            ...('body' in spec ? { 'Content-Type': 'application/json' } : {}),
          },
          ...('body' in spec ? { body: JSON.stringify(spec.body) } : {}),
        });
        await response.arrayBuffer();
        const elapsedMs = performance.now() - started;
        expect(response.status, `${spec.method} ${spec.path}`).toBe(spec.outcome);
        sent.push({ requestId: response.headers.get('x-request-id') as string, elapsedMs, spec });
      }
    }

    const rows = await app.db.sql<AuditLogRow[]>`
      select id::text, occurred_at, request_id, user_id, roles, method, route, resource_ids, status, duration_ms,
             host(client_ip) as client_ip, user_agent, phi, event
        from audit_log where id > ${before.toString()}::bigint order by id`;
    // Exactly one row per request: none missing (the 401, 403 and 500 included), none doubled.
    expect(rows).toHaveLength(cases.length * N);
    const byRequestId = new Map(rows.map((row) => [row.request_id, row]));
    expect(byRequestId.size).toBe(rows.length);

    for (const { requestId, elapsedMs, spec } of sent) {
      const row = byRequestId.get(requestId);
      const label = `${spec.method} ${spec.path} (${spec.outcome})`;
      expect(row, label).toBeDefined();
      if (!row) continue;
      const expected = routeOf[spec.path.split('?')[0] as string];
      expect(row, label).toMatchObject({
        user_id: spec.user?.id ?? null,
        roles: spec.user ? [...spec.user.roles] : [],
        method: spec.method,
        route: expected?.route,
        status: spec.outcome,
        client_ip: '127.0.0.1',
        user_agent: USER_AGENT,
        phi: expected?.phi,
        event: null,
      });
      const resourceIds = spec.method === 'POST' ? { recordId: KNOWN_RECORD_ID } : expected?.resourceIds;
      expect(row.resource_ids, label).toEqual(resourceIds);
      // The server's own measure of the request cannot exceed what the client waited.
      expect(row.duration_ms, label).toBeGreaterThanOrEqual(0);
      expect(row.duration_ms as number, label).toBeLessThanOrEqual(Math.ceil(elapsedMs) + 1);
    }

    // The email that rode in the query strings is nowhere in the audit log, in any column.
    const [leaks] = await app.db.sql<{ count: number }[]>`
      select count(*)::int as count from audit_log a where a::text ilike ${'%jane.doe%'} or a::text ilike ${'%example.com%'}`;
    expect(leaks?.count).toBe(0);
  });

  test('a path parameter that is not an id (an email typed into the URL) is never stored', async () => {
    const email = 'jane.path.doe@example.org';
    const response = await getAs(admin, `/fixture/audit/records/${encodeURIComponent(email)}`);
    expect(response.status).toBe(400);
    const requestId = response.headers.get('x-request-id');
    const [row] = await app.db.sql<AuditLogRow[]>`select * from audit_log where request_id = ${requestId}`;
    expect(row?.resource_ids).toEqual({ id: '(invalid)' });
    const [leaks] = await app.db.sql<{ count: number }[]>`
      select count(*)::int as count from audit_log a where a::text ilike ${'%jane.path.doe%'}`;
    expect(leaks?.count).toBe(0);
  });

  test('reading the audit log is itself audited', async () => {
    const response = await getAs(admin, '/audit/logs?limit=1');
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id');
    const [row] = await app.db.sql<AuditLogRow[]>`select * from audit_log where request_id = ${requestId}`;
    expect(row).toMatchObject({ user_id: admin.id, roles: ['admin'], route: 'audit/logs', status: 200, phi: false });
    // The access token's id, so every use of one (stolen) token can be listed.
    const jti = JSON.parse(Buffer.from(admin.token.split('.')[1] as string, 'base64url').toString()).jti;
    const [token] = await app.db.sql<
      { token_id: string }[]
    >`select token_id from audit_log where request_id = ${requestId}`;
    expect(token?.token_id).toBe(jti);
  });
});

describe('the audit table is append-only for the application', () => {
  let asApp: postgres.Sql;
  let ownId: string;

  beforeAll(async () => {
    // After boot, DATABASE_URL is the app's own login (a member of aada_app), not the owner.
    asApp = postgres(process.env.DATABASE_URL as string, { max: 1, onnotice: () => {} });
    const [row] = await app.db.sql<{ id: string }[]>`
      insert into audit_log (method, route, status) values ('GET', 'fixture/append-only', 200) returning id::text`;
    ownId = row?.id as string;
  });
  afterAll(async () => {
    await asApp.end({ timeout: 1 });
  });

  test('the app connects as an unprivileged member of aada_app', async () => {
    const [me] = await asApp<{ super: boolean; member: boolean; owner: string }[]>`
      select r.rolsuper as super, pg_has_role(current_user, 'aada_app', 'member') as member,
             pg_get_userbyid(c.relowner) as owner
        from pg_roles r, pg_class c where r.rolname = current_user and c.oid = 'audit_log'::regclass`;
    expect(me).toMatchObject({ super: false, member: true });
    const [who] = await asApp<{ user: string }[]>`select current_user as user`;
    expect(me?.owner).not.toBe(who?.user);
  });

  test('INSERT and SELECT work', async () => {
    const [inserted] = await asApp<{ id: string }[]>`
      insert into audit_log (method, route, status, event) values ('GET', 'fixture/append-only', 200, 'probe')
      returning id::text`;
    const id = inserted?.id as string;
    const [read] = await asApp<{ id: string }[]>`select id::text as id from audit_log where id = ${id}::bigint`;
    expect(read?.id).toBe(id);
  });

  test.each([
    ['UPDATE', (sql: postgres.Sql, id: string) => sql`update audit_log set status = 200 where id = ${id}::bigint`],
    ['DELETE', (sql: postgres.Sql, id: string) => sql`delete from audit_log where id = ${id}::bigint`],
    ['TRUNCATE', (sql: postgres.Sql) => sql`truncate audit_log`],
    ['disabling the trigger', (sql: postgres.Sql) => sql`alter table audit_log disable trigger audit_log_append_only`],
    ['deleting through a CTE', (sql: postgres.Sql) => sql`with gone as (delete from audit_log returning id) select 1`],
  ])('%s is refused for the app role', async (_what, statement) => {
    await expect(statement(asApp, ownId)).rejects.toMatchObject({ code: '42501' });
    const [still] = await app.db.sql<
      { n: number }[]
    >`select count(*)::int as n from audit_log where id = ${ownId}::bigint`;
    expect(still?.n).toBe(1);
  });

  test('UPDATE is refused even for the table owner (trigger)', async () => {
    await expect(app.db.sql`update audit_log set status = 500 where id = ${ownId}::bigint`).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(/append-only/),
    });
    const [row] = await app.db.sql<{ status: number }[]>`select status from audit_log where id = ${ownId}::bigint`;
    expect(row?.status).toBe(200);
  });

  test('pruning through prune_audit_log refuses a retention under 90 days', async () => {
    await expect(asApp`select prune_audit_log(interval '89 days')`).rejects.toMatchObject({ code: '22023' });
    await expect(asApp`select prune_audit_log(null)`).rejects.toMatchObject({ code: '22023' });
  });
});

describe('keyset paging of the audit lists', () => {
  const ROUTE = `fixture/paging/${randomUUID()}`;
  const SEEDED = 5000;
  const userA = randomUUID();
  let seededIds: Set<string>;

  beforeAll(async () => {
    // Groups of 7 rows share one microsecond-precise timestamp, so the cursor must carry the
    // microseconds and break ties by id. Every 5th row is user A's, every 4th is PHI, statuses vary.
    const rows = await app.db.sql<{ id: string }[]>`
      insert into audit_log (occurred_at, request_id, user_id, roles, method, route, status, phi, event,
                             duration_ms, client_ip)
      select now() - interval '1 hour' - (g / 7) * interval '13 microseconds', 'seed-' || g,
             case when g % 5 = 0 then ${userA}::uuid end, '{staff}', 'GET', ${ROUTE},
             case when g % 10 = 0 then 500 when g % 3 = 0 then 404 when g % 11 = 0 then 304 else 200 end,
             g % 4 = 0, case when g % 50 = 0 then 'login_failed' end, g % 97, '10.0.0.1'
        from generate_series(1, ${SEEDED}) as g
      returning id::text`;
    seededIds = new Set(rows.map((row) => row.id));
    await app.db.sql`analyze audit_log`;
  });

  test('pages of 200 serve every seeded row once, in order, while new rows arrive between and during pages', async () => {
    const arrived = new Set<string>();
    // New rows: one at "now" (newer than anything served) and one back-dated into the seeded range.
    const arrive = async () => {
      const rows = await app.db.sql<{ id: string }[]>`
        insert into audit_log (occurred_at, method, route, status)
        values (clock_timestamp(), 'GET', ${ROUTE}, 200),
               (now() - interval '1 hour' - ${Math.floor((Math.random() * SEEDED) / 7) * 13}::int * interval '1 microsecond',
                'GET', ${ROUTE}, 200)
        returning id::text`;
      for (const row of rows) arrived.add(row.id);
    };
    const served: AuditItem[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const cursor: string = next ? `&cursor=${encodeURIComponent(next)}` : '';
      const [page] = await Promise.all([
        pageAs(admin, `/audit/logs?route=${encodeURIComponent(ROUTE)}&limit=200${cursor}`),
        arrive(),
      ]);
      expect(page.items.length).toBeLessThanOrEqual(200);
      served.push(...page.items);
      next = page.next;
      pages++;
      await arrive();
    } while (next);

    const ids = served.map((item) => item.id);
    const seen = new Set(ids);
    expect(seen.size).toBe(ids.length); // nothing served twice
    expect([...seededIds].filter((id) => !seen.has(id))).toEqual([]); // nothing skipped
    expect(ids.filter((id) => !seededIds.has(id) && !arrived.has(id))).toEqual([]); // nothing foreign
    expect(arrived.size).toBeGreaterThan(0);
    expect(pages).toBeGreaterThanOrEqual(SEEDED / 200);
    // Strictly newest first by (occurredAt, id); the fixed-width UTC text sorts as time does.
    for (let i = 1; i < served.length; i++) {
      const [a, b] = [served[i - 1] as AuditItem, served[i] as AuditItem];
      const ordered = a.occurredAt > b.occurredAt || (a.occurredAt === b.occurredAt && BigInt(a.id) > BigInt(b.id));
      expect(ordered, `${a.occurredAt}/${a.id} before ${b.occurredAt}/${b.id}`).toBe(true);
    }
    expect(served[0]?.occurredAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
  });

  test('every list walks an audit index backwards from the cursor: no sort, no offset (page N costs page 1)', async () => {
    const { auditPageQuery } = await auditModule();
    const sql = app.db.sql;
    // A cursor 200 rows below the newest of this block: most of the table still lies behind it.
    const [key] = await sql<{ occurred: string; id: string }[]>`
      select to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred, id::text as id
        from audit_log where route = ${ROUTE} order by occurred_at desc, audit_log.id desc offset 200 limit 1`;
    const cursor: [string, string] = [key?.occurred as string, key?.id as string];
    const cases = [
      { limit: 200 },
      { limit: 200, cursor },
      { limit: 200, cursor, route: ROUTE, outcome: 'server_error' as const },
      { limit: 200, cursor, phi: true },
      { limit: 200, cursor, userId: userA },
      { limit: 200, cursor, from: '2000-01-01T00:00:00Z', to: '2099-01-01T00:00:00Z' },
    ];
    for (const filters of cases) {
      const [row] = await sql<{ 'QUERY PLAN': { Plan: PlanNode }[] }[]>`
        explain (format json) ${auditPageQuery(sql, filters)}`;
      const nodes = flatten(row?.['QUERY PLAN'][0]?.Plan as PlanNode);
      const shape = JSON.stringify(
        nodes.map((node) => [node['Node Type'], node['Index Name'], node['Scan Direction']]),
      );
      const label = `${JSON.stringify(filters)}: ${shape}`;
      expect(nodes[0]?.['Node Type'], label).toBe('Limit');
      expect(nodes.map((node) => node['Node Type']).filter((type) => type === 'Sort' || type === 'Seq Scan')).toEqual(
        [],
      );
      const walk = nodes.find((node) => node['Node Type'] === 'Index Scan');
      expect(walk?.['Index Name'], label).toMatch(/^idx_audit_log_(occurred|phi|user)$/);
      expect(walk?.['Scan Direction'], label).toBe('Backward');
    }
  });

  /** The ids an independent SQL predicate selects among this block's rows. */
  async function idsWhere(predicate: postgres.PendingQuery<postgres.Row[]>): Promise<string[]> {
    const rows = await app.db.sql<{ id: string }[]>`
      select id::text as id from audit_log
       where route = ${ROUTE} and ${predicate}
       order by occurred_at desc, audit_log.id desc -- the column, not the text alias
    `;
    return rows.map((row) => row.id);
  }

  test.each([
    ['status=500', (s: postgres.Sql) => s`status = 500`],
    ['outcome=client_error', (s: postgres.Sql) => s`status between 400 and 499`],
    ['outcome=success', (s: postgres.Sql) => s`status between 200 and 399`],
    ['outcome=server_error', (s: postgres.Sql) => s`status >= 500`],
    ['phi=true', (s: postgres.Sql) => s`phi`],
    ['phi=false&status=304', (s: postgres.Sql) => s`not phi and status = 304`],
    ['event=login_failed', (s: postgres.Sql) => s`event = 'login_failed'`],
  ])('filter %s selects exactly the matching rows', async (filter, predicate) => {
    const items = await allPages(`/audit/logs?route=${encodeURIComponent(ROUTE)}&${filter}`);
    const expected = await idsWhere(predicate(app.db.sql));
    expect(expected.length).toBeGreaterThan(0);
    expect(items.map((item) => item.id)).toEqual(expected);
  });

  test('userId, the user-activity route and the PHI-access route are the same list, filtered', async () => {
    const route = encodeURIComponent(ROUTE);
    const byFilter = await allPages(`/audit/logs?route=${route}&userId=${userA}`);
    const activity = await allPages(`/audit/users/${userA}/activity?route=${route}`);
    const expectedUser = await idsWhere(app.db.sql`user_id = ${userA}`);
    expect(byFilter.map((item) => item.id)).toEqual(expectedUser);
    expect(activity.map((item) => item.id)).toEqual(expectedUser);
    expect(activity.every((item) => item.userId === userA)).toBe(true);

    const phiAccess = await allPages(`/audit/phi-access?route=${route}&userId=${userA}`);
    expect(phiAccess.map((item) => item.id)).toEqual(await idsWhere(app.db.sql`user_id = ${userA} and phi`));
    expect((await allPages(`/audit/users/${randomUUID()}/activity`)).length).toBe(0);
  });

  test('from and to are inclusive bounds, precise to the microsecond', async () => {
    const edges = await app.db.sql<{ occurred: string }[]>`
      select distinct to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as occurred
        from audit_log where route = ${ROUTE} and request_id like 'seed-%' order by 1 limit 3 offset 40`;
    const [from, , to] = edges.map((edge) => edge.occurred);
    const items = await allPages(
      `/audit/logs?route=${encodeURIComponent(ROUTE)}&from=${from}&to=${encodeURIComponent(to as string)}`,
    );
    const expected = await idsWhere(
      app.db.sql`occurred_at between ${from as string}::text::timestamptz and ${to as string}::text::timestamptz`,
    );
    expect(expected.length).toBeGreaterThanOrEqual(3 * 7); // three timestamps of seven rows each, at least
    expect(items.map((item) => item.id)).toEqual(expected);
    // The same instants written with an explicit offset are the same bounds.
    const withOffset = (iso: string) => encodeURIComponent(iso.replace('Z', '+00:00'));
    const again = await allPages(
      `/audit/logs?route=${encodeURIComponent(ROUTE)}&from=${withOffset(from as string)}&to=${withOffset(to as string)}`,
    );
    expect(again.map((item) => item.id)).toEqual(expected);
  });

  test('an item carries the row and nothing else', async () => {
    const [item] = (await pageAs(admin, `/audit/logs?route=${encodeURIComponent(ROUTE)}&userId=${userA}&limit=1`))
      .items;
    expect(Object.keys(item as AuditItem).sort()).toEqual(
      [
        'clientIp',
        'durationMs',
        'event',
        'id',
        'method',
        'occurredAt',
        'phi',
        'requestId',
        'resourceIds',
        'roles',
        'route',
        'status',
        'userAgent',
        'userId',
      ].sort(),
    );
    expect(item).toMatchObject({ userId: userA, roles: ['staff'], method: 'GET', route: ROUTE, clientIp: '10.0.0.1' });
  });
});

describe('bad input to the audit lists', () => {
  const validCursor = Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000001Z', '12'])).toString('base64url');
  test.each([
    ['/audit/logs?phi=yes', 'query.phi'],
    ['/audit/logs?phi=true&phi=false', 'query.phi'],
    ['/audit/logs?status=abc', 'query.status'],
    ['/audit/logs?status=99', 'query.status'],
    ['/audit/logs?status=200&outcome=success', 'query.outcome'],
    ['/audit/logs?outcome=ok', 'query.outcome'],
    ['/audit/logs?from=yesterday', 'query.from'],
    ['/audit/logs?from=2026-01-02', 'query.from'],
    ['/audit/logs?from=1900-01-01T00:00:00Z', 'query.from'],
    ['/audit/logs?to=9999-12-31T23:59:59Z', 'query.to'],
    ['/audit/logs?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'query.from'],
    ['/audit/logs?limit=0', 'query.limit'],
    ['/audit/logs?limit=201', 'query.limit'],
    ['/audit/logs?cursor=not-a-cursor', 'query.cursor'],
    [`/audit/logs?cursor=${Buffer.from('["2026-01-01T00:00:00Z","1"]').toString('base64url')}`, 'query.cursor'],
    [`/audit/logs?cursor=${Buffer.from('["2026-13-45T00:00:00.000000Z","1"]').toString('base64url')}`, 'query.cursor'],
    [
      `/audit/logs?cursor=${Buffer.from('["2026-01-01T00:00:00.000000Z","1 or 1=1"]').toString('base64url')}`,
      'query.cursor',
    ],
    [`/audit/logs?userId=${encodeURIComponent("1' or '1'='1")}`, 'query.userId'],
    ['/audit/logs?event=Login-Failed', 'query.event'],
    [`/audit/logs?route=${'x'.repeat(201)}`, 'query.route'],
    ['/audit/logs?user_id=someone', 'query'],
    ['/audit/phi-access?phi=false', 'query'],
    [`/audit/users/${randomUUID()}/activity?userId=${randomUUID()}`, 'query'],
    ['/audit/users/not-a-uuid/activity', 'params.id'],
    ['/audit/summary?days=0', 'query.days'],
    ['/audit/summary?days=367', 'query.days'],
    ['/audit/summary?days=ten', 'query.days'],
  ])('%s → 400 naming %s', async (path, field) => {
    const response = await getAs(admin, path);
    expect(response.status).toBe(400);
    expect(await problemFields(response)).toContain(field);
  });

  test('a valid cursor from another list, SQL and script fragments are just values', async () => {
    expect((await getAs(admin, `/audit/logs?cursor=${validCursor}`)).status).toBe(200);
    for (const route of [
      "' or '1'='1",
      'students/{id}; drop table audit_log; --',
      '<script>alert(1)</script>',
      'é👩‍⚕️',
    ]) {
      const page = await pageAs(admin, `/audit/logs?route=${encodeURIComponent(route)}`);
      expect(page.items).toEqual([]);
    }
    const [exists] = await app.db.sql<{ t: string | null }[]>`select to_regclass('audit_log')::text as t`;
    expect(exists?.t).toBe('audit_log');
  });
});

describe('who may read the audit trail', () => {
  const paths = ['/audit/logs', '/audit/phi-access', `/audit/users/${randomUUID()}/activity`, '/audit/summary'];

  test.each(paths)('%s: 401 anonymous, 403 for staff, registrar and student, 200 for admin', async (path) => {
    expect((await app.api(path)).status).toBe(401);
    for (const user of [staff, registrar, student]) expect((await getAs(user, path)).status, user.roles[0]).toBe(403);
    const response = await getAs(admin, path);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
  });
});

interface Summary {
  days: number;
  from: string;
  requests: number;
  phiAccesses: number;
  distinctUsers: number;
  byOutcome: { success: number; clientError: number; serverError: number };
  failedSignIns: number;
  refreshTokenReuse: number;
  topRoutes: { method: string; route: string; requests: number }[];
  perDay: { day: string; requests: number; phiAccesses: number }[];
}

describe('the summary', () => {
  async function summary(days?: number): Promise<Summary> {
    const response = await getAs(admin, `/audit/summary${days ? `?days=${days}` : ''}`);
    expect(response.status).toBe(200);
    return (await response.json()) as Summary;
  }

  test('counts what happened in the window, in one answer', async () => {
    const route = `fixture/summary/${randomUUID()}`;
    const [alice, bob] = [randomUUID(), randomUUID()];
    await summary(); // so the admin already appears in the window before the measured pair
    const before = await summary();
    // In the window: 6,000 rows of one route (2 users, every 3rd PHI, statuses 200/404/503),
    // 3 failed sign-ins, 2 refresh-token reuses, 4 rows two days ago. Outside: 5 rows 40 days ago.
    await app.db.sql`
      insert into audit_log (occurred_at, user_id, method, route, status, phi)
      select now(), case when g % 2 = 0 then ${alice}::uuid else ${bob}::uuid end, 'GET', ${route},
             case when g % 10 = 0 then 503 when g % 5 = 0 then 404 else 200 end, g % 3 = 0
        from generate_series(1, 6000) as g`;
    await app.db.sql`
      insert into audit_log (occurred_at, method, route, status, event)
      select now(), 'POST', 'auth/login', 401, 'login_failed' from generate_series(1, 3)
      union all
      select now(), 'POST', 'auth/refresh', 401, 'refresh_token_reuse' from generate_series(1, 2)
      union all
      select now() - interval '2 days', 'GET', ${route}, 200, null from generate_series(1, 4)
      union all
      select now() - interval '40 days', 'GET', ${route}, 200, 'login_failed' from generate_series(1, 5)`;
    const after = await summary();

    // +1 everywhere it applies: the audit row of the `before` request itself (admin, 200).
    expect(after.days).toBe(30);
    expect(after.requests - before.requests).toBe(6000 + 3 + 2 + 4 + 1);
    expect(after.phiAccesses - before.phiAccesses).toBe(2000);
    expect(after.distinctUsers - before.distinctUsers).toBe(2);
    expect(after.byOutcome.success - before.byOutcome.success).toBe(4800 + 4 + 1);
    expect(after.byOutcome.clientError - before.byOutcome.clientError).toBe(600 + 3 + 2);
    expect(after.byOutcome.serverError - before.byOutcome.serverError).toBe(600);
    expect(after.failedSignIns - before.failedSignIns).toBe(3);
    expect(after.refreshTokenReuse - before.refreshTokenReuse).toBe(2);

    expect(after.topRoutes.length).toBeLessThanOrEqual(10);
    expect(after.topRoutes).toContainEqual({ method: 'GET', route, requests: 6004 });
    const counts = after.topRoutes.map((entry) => entry.requests);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));

    // One entry per UTC day of the window, oldest first, adding up to the total.
    expect(after.perDay).toHaveLength(30);
    expect(after.perDay[0]?.day).toBe(after.from);
    const today = new Date().toISOString().slice(0, 10);
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
    expect(after.perDay.at(-1)?.day).toBe(today);
    expect(after.perDay.reduce((sum, day) => sum + day.requests, 0)).toBe(after.requests);
    expect(after.perDay.reduce((sum, day) => sum + day.phiAccesses, 0)).toBe(after.phiAccesses);
    const dayOf = (s: Summary, day: string) => s.perDay.find((entry) => entry.day === day)?.requests ?? 0;
    expect(dayOf(after, twoDaysAgo) - dayOf(before, twoDaysAgo)).toBe(4);
  });

  test('the window follows ?days= (1 = today only; 366 at most)', async () => {
    const one = await summary(1);
    expect(one.perDay).toHaveLength(1);
    expect(one.from).toBe(new Date().toISOString().slice(0, 10));
    const year = await summary(366);
    expect(year.perDay).toHaveLength(366);
    expect(year.requests).toBeGreaterThanOrEqual(one.requests);
  });
});

describe('the summary over rolled-up days', () => {
  // The roll-up must change how the summary is computed, never what it says: the same figures before
  // and after, for every window, whether the days come from audit_log or from the roll-up tables.
  const summaryOf = async (days: number) => {
    const { auditSummaryQuery } = await auditModule();
    const [row] = await auditSummaryQuery(app.db.sql, days);
    return row?.summary as Summary;
  };
  const windows = [1, 7, 30, 366];

  test('gives the same answer for every window before and after the closed days are rolled up', async () => {
    const { rollUpClosedAuditDays } = await auditModule();
    const route = `fixture/rollup/${randomUUID()}`;
    const [recent, old, daily] = [randomUUID(), randomUUID(), randomUUID()];
    await app.db.sql`
      insert into audit_log (occurred_at, user_id, method, route, status, phi, event)
      select now() - make_interval(days => d), u, m, ${route}, st, d % 2 = 0, ev
        from (values (5, ${recent}::uuid, 'GET', 200, null), (40, ${old}::uuid, 'GET', 503, null),
                     (3, ${daily}::uuid, 'POST', 401, 'login_failed'), (0, ${daily}::uuid, 'GET', 404, null),
                     (200, null, 'POST', 401, 'refresh_token_reuse')) as v(d, u, m, st, ev),
             generate_series(1, 25)`;
    const before = await Promise.all(windows.map(summaryOf));

    const rolled = await rollUpClosedAuditDays(app.db.sql, 400);
    // From the oldest row (200 days ago) to the last closed day.
    expect(rolled).toBeGreaterThanOrEqual(199);
    expect(await Promise.all(windows.map(summaryOf))).toEqual(before);
    expect(before[2]?.topRoutes).toContainEqual({ method: 'GET', route, requests: 50 });

    // Rolled once: a second run has nothing to do, and counts nothing twice.
    expect(await rollUpClosedAuditDays(app.db.sql, 400)).toBe(0);
    expect(await Promise.all(windows.map(summaryOf))).toEqual(before);
  });

  test('reads closed days from the roll-up, and today (and any day not rolled yet) from the trail', async () => {
    const { rollUpClosedAuditDays } = await auditModule();
    await rollUpClosedAuditDays(app.db.sql, 400);
    const route = `fixture/rollup-live/${randomUUID()}`;
    const perDay = async () => (await summaryOf(30)).perDay.map((day) => day.requests);
    const start = await perDay();
    // A row back-dated into a rolled day (never done by the app) is not seen: that day is closed.
    await app.db
      .sql`insert into audit_log (occurred_at, method, route, status) values (now() - interval '4 days', 'GET', ${route}, 200)`;
    expect(await perDay()).toEqual(start);
    await app.db.sql`insert into audit_log (method, route, status) values ('GET', ${route}, 200)`;
    const after = await perDay();
    expect(after.at(-1)).toBe((start.at(-1) ?? 0) + 1);
  });
});

describe('retention', () => {
  test('prunes rows older than the retention but keeps PHI-access rows younger than six years', async () => {
    const { pruneAuditLog } = await auditModule();
    const { timerDb } = await import('../lib/db');
    const route = `fixture/retention/${randomUUID()}`;
    const cases = [
      ['plain, 100 days', '100 days', false, 'removed'],
      ['plain, 10 days', '10 days', false, 'kept'],
      ['plain, 7 years', '7 years', false, 'removed'],
      ['PHI, 100 days', '100 days', true, 'kept'],
      ['PHI, 5 years 364 days', '5 years 364 days', true, 'kept'],
      ['PHI, 6 years 1 day', '6 years 1 day', true, 'removed'],
    ] as const;
    for (const [label, age, phi] of cases) {
      await app.db.sql`
        insert into audit_log (occurred_at, request_id, method, route, status, phi)
        values (now() - ${age}::interval, ${label}, 'GET', ${route}, 200, ${phi})`;
    }
    const runId = randomUUID();
    const removed = await pruneAuditLog(timerDb(), 90, runId);
    expect(removed).toBe(3);
    const left = await app.db.sql<{ request_id: string }[]>`select request_id from audit_log where route = ${route}`;
    expect(left.map((row) => row.request_id).sort()).toEqual(
      cases
        .filter((c) => c[3] === 'kept')
        .map((c) => c[0] as string)
        .sort(),
    );
    // The pruning is on the record, in the same statement.
    const [record] = await app.db.sql<AuditLogRow[]>`select * from audit_log where request_id = ${runId}`;
    expect(record).toMatchObject({
      event: 'audit_log_pruned',
      method: 'TIMER',
      route: 'audit-retention',
      resource_ids: { removed: '3', retentionDays: '90' },
      phi: false,
      user_id: null,
    });
    await expect(pruneAuditLog(timerDb(), 89, randomUUID())).rejects.toMatchObject({ code: '22023' });
  });

  test('AUDIT_RETENTION_DAYS: six years by default, at least 90 days, whole days only', async () => {
    const { retentionDaysFromEnv, DEFAULT_AUDIT_RETENTION_DAYS } = await retentionModule();
    expect(DEFAULT_AUDIT_RETENTION_DAYS).toBe(2190);
    expect(retentionDaysFromEnv({})).toBe(2190);
    expect(retentionDaysFromEnv({ AUDIT_RETENTION_DAYS: '' })).toBe(2190);
    expect(retentionDaysFromEnv({ AUDIT_RETENTION_DAYS: '365' })).toBe(365);
    expect(retentionDaysFromEnv({ AUDIT_RETENTION_DAYS: '90' })).toBe(90);
    for (const bad of ['89', '30', '-1', '90.5', 'six years', '1; drop table audit_log', '999999']) {
      expect(() => retentionDaysFromEnv({ AUDIT_RETENTION_DAYS: bad }), bad).toThrow(/AUDIT_RETENTION_DAYS/);
    }
  });

  test('the timer handler prunes with the configured retention and logs the count', async () => {
    const { auditRetention } = await retentionModule();
    const route = `fixture/retention/${randomUUID()}`;
    await app.db.sql`
      insert into audit_log (occurred_at, method, route, status)
      values (now() - interval '400 days', 'GET', ${route}, 200), (now() - interval '200 days', 'GET', ${route}, 200)`;
    const logged: string[] = [];
    const invocationId = randomUUID();
    const context = new InvocationContext({
      invocationId,
      functionName: 'audit-retention',
      logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
    });
    const saved = process.env.AUDIT_RETENTION_DAYS;
    process.env.AUDIT_RETENTION_DAYS = '365';
    try {
      await auditRetention({ isPastDue: false } as Timer, context);
      process.env.AUDIT_RETENTION_DAYS = '30';
      await expect(auditRetention({ isPastDue: false } as Timer, context)).rejects.toThrow(/AUDIT_RETENTION_DAYS/);
    } finally {
      if (saved === undefined) delete process.env.AUDIT_RETENTION_DAYS;
      else process.env.AUDIT_RETENTION_DAYS = saved;
    }
    const left = await app.db.sql<{ n: number }[]>`select count(*)::int as n from audit_log where route = ${route}`;
    expect(left[0]?.n).toBe(1);
    expect(logged.join('\n')).toMatch(/removed 1 rows older than 365 days/);
    const [record] = await app.db.sql<AuditLogRow[]>`select * from audit_log where request_id = ${invocationId}`;
    expect(record?.resource_ids).toEqual({ removed: '1', retentionDays: '365' });
  });

  test('the timer registers with the host as a timer, not as an HTTP route, and the host still serves', async () => {
    const { registeredRoutes } = await import('../dev/functions-host');
    const { declaredRoutes } = await import('../lib/endpoint');
    const timer = registeredFunction('audit-retention');
    expect(timer?.triggerType).toBe('timerTrigger');
    expect(Object.values(timer?.metadata.bindings ?? {}).map((binding) => binding.schedule)).toContain('0 30 3 * * *');
    expect(registeredRoutes().map((route) => route.name)).not.toContain('audit-retention');
    expect(declaredRoutes().map((route) => route.name)).not.toContain('audit-retention');
    expect((await app.api('/health')).status).toBe(200);
  });
});

describe('no audit row, no PHI', () => {
  test('a PHI response is withheld (503, no PHI in the body) when its audit row cannot be written', async () => {
    const { PHI_MARKER } = await fixture();
    const before = await maxAuditId();
    await app.db.sql`revoke insert on audit_log from aada_app`;
    let withheld: Response;
    let body: string;
    try {
      withheld = await getAs(staff, '/fixture/audit/records');
      body = await withheld.text();
    } finally {
      await app.db.sql`grant insert on audit_log to aada_app`;
    }
    expect(withheld.status).toBe(503);
    expect(withheld.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(withheld.headers.get('cache-control')).toBe('no-store');
    expect(withheld.headers.get('retry-after')).toBeTruthy();
    expect(body).not.toContain(PHI_MARKER);
    expect(JSON.parse(body)).toMatchObject({ status: 503, requestId: withheld.headers.get('x-request-id') });
    expect(await maxAuditId()).toBe(before);

    // With the grant back, the same request is served and recorded.
    const served = await getAs(staff, '/fixture/audit/records');
    expect(served.status).toBe(200);
    expect(await served.text()).toContain(PHI_MARKER);
    const [row] = await app.db.sql<AuditLogRow[]>`
      select * from audit_log where request_id = ${served.headers.get('x-request-id')}`;
    expect(row).toMatchObject({ status: 200, phi: true, user_id: staff.id });
  });
});

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Scan Direction'?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
