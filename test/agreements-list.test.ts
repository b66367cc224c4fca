// The staff list of agreements (GET agreements), over HTTP on PostgreSQL: filters by status, student,
// lead and sent/signed school days, keyset pages followed to the end without repeats, who may call it,
// an audit row marked as personal data, and every bad filter a 400 naming its field.
import { beforeAll, describe, expect, test } from 'vitest';
import { publishTemplate, SCHOOL_PART, signAs, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;
let jordan: TestUser;
let sam: TestUser;
const ids: { jordanSigned: string; jordanPending: string; samPending: string; lead: string; leadId: string } = {
  jordanSigned: '',
  jordanPending: '',
  samPending: '',
  lead: '',
  leadId: '',
};

interface ListItem {
  id: string;
  status: string;
  recipient: { studentId?: string; leadId?: string; firstName: string; lastName: string };
  formData?: unknown;
}
interface ListPage {
  items: ListItem[];
  next: string | null;
}

const post = (path: string, body: unknown, as?: TestUser) => send('POST', path, { body, ...(as ? { as } : {}) });
const list = (query: string, as: TestUser = roles.registrar) => send('GET', `/agreements${query}`, { as });
const page = async (query: string, as?: TestUser) => {
  const response = await list(query, as);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as ListPage;
};
const idsOf = (items: ListItem[]) => items.map((item) => item.id).sort();
const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];

async function sendTo(recipient: unknown): Promise<string> {
  const response = await post('/agreements', { recipient, prefill: SCHOOL_PART }, roles.registrar);
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

/** Today at the school (Atlanta), and a day relative to it, as YYYY-MM-DD. */
const schoolDay = (offsetDays = 0) =>
  new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York' }).format(
    new Date(Date.now() + offsetDays * 86_400_000),
  );

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  jordan = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Jordan', lastName: 'Listerson' });
  sam = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Sam', lastName: 'Otherby' });
  await publishTemplate(roles.admin);
  ids.jordanSigned = await sendTo({ studentId: jordan.id });
  const token = await signingTokenFor(app.db.sql, jordan.email);
  const signed = await signAs(token, { firstName: 'Jordan', lastName: 'Listerson', email: jordan.email });
  expect(signed.status).toBe(200);
  ids.jordanPending = await sendTo({ studentId: jordan.id });
  ids.samPending = await sendTo({ studentId: sam.id });
  ids.lead = await sendTo({ email: 'lee.lead@example.test', firstName: 'Lee', lastName: 'Leadworth' });
  const [row] = await app.db.sql<{ lead_id: string }[]>`select lead_id from signed_documents where id = ${ids.lead}`;
  ids.leadId = row!.lead_id;
});

describe('GET agreements', () => {
  test('lists every agreement newest first, with the recipient by name and no form data', async () => {
    const { items, next } = await page('');
    expect(next).toBeNull();
    expect(items.map((item) => item.id)).toEqual([ids.lead, ids.samPending, ids.jordanPending, ids.jordanSigned]);
    expect(items[3]).toMatchObject({
      status: 'student_signed',
      recipient: { studentId: jordan.id, firstName: 'Jordan', lastName: 'Listerson' },
    });
    expect(items[0]?.recipient).toEqual({ leadId: ids.leadId, firstName: 'Lee', lastName: 'Leadworth' });
    expect(items.some((item) => 'formData' in item)).toBe(false);
  });

  test('filters: status, student, lead, sent and signed school days', async () => {
    expect(idsOf((await page('?status=student_signed')).items)).toEqual([ids.jordanSigned]);
    expect(idsOf((await page('?status=pending')).items)).toEqual([ids.jordanPending, ids.samPending, ids.lead].sort());
    expect((await page('?status=completed')).items).toEqual([]);
    expect(idsOf((await page(`?studentId=${jordan.id}`)).items)).toEqual([ids.jordanPending, ids.jordanSigned].sort());
    expect(idsOf((await page(`?studentId=${sam.id}&status=pending`)).items)).toEqual([ids.samPending]);
    expect(idsOf((await page(`?leadId=${ids.leadId}`)).items)).toEqual([ids.lead]);
    // Someone else's id, or an id that is no student: nothing, not an error.
    expect((await page(`?studentId=${roles.admin.id}`)).items).toEqual([]);
    const today = schoolDay();
    expect((await page(`?sentFrom=${today}&sentTo=${today}`)).items).toHaveLength(4);
    expect((await page(`?sentTo=${schoolDay(-1)}`)).items).toEqual([]);
    expect((await page(`?sentFrom=${schoolDay(1)}`)).items).toEqual([]);
    expect(idsOf((await page(`?signedFrom=${today}`)).items)).toEqual([ids.jordanSigned]);
    expect((await page(`?signedTo=${schoolDay(-1)}`)).items).toEqual([]);
  });

  test('a signature just before midnight in Atlanta counts on that school day, not the UTC one', async () => {
    // 2026-03-10 23:30 in Atlanta (EDT, UTC-4) is 2026-03-11 03:30 UTC.
    await app.db
      .sql`update signed_documents set student_signed_at = '2026-03-11T03:30:00Z' where id = ${ids.jordanSigned}`;
    try {
      expect(idsOf((await page('?signedFrom=2026-03-10&signedTo=2026-03-10')).items)).toEqual([ids.jordanSigned]);
      expect((await page('?signedFrom=2026-03-11&signedTo=2026-03-11')).items).toEqual([]);
    } finally {
      await app.db.sql`update signed_documents set student_signed_at = now() where id = ${ids.jordanSigned}`;
    }
  });

  test('pages of one, followed by cursor and Link to the end, repeat and skip nothing', async () => {
    const seen: string[] = [];
    let query = '?limit=1';
    for (let hops = 0; hops < 10; hops++) {
      const response = await list(query);
      expect(response.status).toBe(200);
      const body = (await response.json()) as ListPage;
      seen.push(...body.items.map((item) => item.id));
      if (!body.next) {
        expect(response.headers.get('link')).toBeNull();
        break;
      }
      expect(response.headers.get('link')).toContain(`cursor=${body.next}`);
      query = `?limit=1&cursor=${body.next}`;
    }
    expect(seen).toEqual([ids.lead, ids.samPending, ids.jordanPending, ids.jordanSigned]);
    // A filter applies on every page.
    const first = await page(`?limit=1&studentId=${jordan.id}`);
    const second = await page(`?limit=1&studentId=${jordan.id}&cursor=${first.next}`);
    expect([...first.items, ...second.items].map((item) => item.id)).toEqual([ids.jordanPending, ids.jordanSigned]);
    expect(second.next).toBeNull();
  });

  test('admissions and admins list; a student, an instructor, staff and finance cannot; nobody is a 401', async () => {
    for (const who of [roles.admin, roles.admissions_counselor, roles.admissions_manager]) {
      expect((await list('', who)).status).toBe(200);
    }
    for (const who of [jordan, roles.instructor, roles.staff, roles.finance]) {
      expect((await list('', who)).status).toBe(403);
    }
    expect((await send('GET', '/agreements')).status).toBe(401);
  });

  test('each read leaves an audit row marked as personal data, and is no-store', async () => {
    const response = await list('?status=pending');
    expect(response.headers.get('cache-control')).toContain('no-store');
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toBeTruthy();
    const rows = await app.db.sql<{ phi: boolean; status: number; user_id: string }[]>`
      select phi, status, user_id from audit_log where request_id = ${requestId} and route = 'agreements'`;
    expect(rows).toEqual([{ phi: true, status: 200, user_id: roles.registrar.id }]);
  });

  test('bad filters are 400 problems naming the field', async () => {
    const cases: [string, string][] = [
      ['?status=signed', 'query.status'],
      ["?status=pending'%20or%201=1--", 'query.status'],
      ['?studentId=42', 'query.studentId'],
      [`?studentId=${jordan.id}'--`, 'query.studentId'],
      ['?leadId=%00', 'query.leadId'],
      ['?sentFrom=2026-02-30', 'query.sentFrom'],
      ['?sentFrom=0000-01-01', 'query.sentFrom'],
      ['?sentTo=12/01/2026', 'query.sentTo'],
      ['?signedFrom=2026-12-01T00:00:00Z', 'query.signedFrom'],
      ['?signedTo=9999-12-31', 'query.signedTo'],
      ['?sentFrom=2026-12-02&sentTo=2026-12-01', 'query.sentFrom'],
      ['?signedFrom=2026-12-02&signedTo=2026-12-01', 'query.signedFrom'],
      [`?studentId=${jordan.id}&leadId=${ids.leadId}`, 'query.leadId'],
      ['?limit=0', 'query.limit'],
      ['?limit=0x10', 'query.limit'],
      ['?cursor=bm90LWEtY3Vyc29y', 'query.cursor'],
    ];
    for (const [query, field] of cases) {
      const response = await list(query);
      expect(response.status, query).toBe(400);
      expect(response.headers.get('content-type'), query).toContain('application/problem+json');
      expect(await fieldsOf(response), query).toContain(field);
    }
    // A misspelt filter is refused, not ignored (it would widen the list to everyone).
    const misspelt = await list(`?student_id=${jordan.id}`);
    expect(misspelt.status).toBe(400);
    expect(JSON.stringify(await misspelt.json())).toContain('student_id');
  });
});
