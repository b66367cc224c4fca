// The student list and the student record, over HTTP on a real database: authorization (including
// an instructor's programmes), keyset paging under concurrent inserts, name-prefix and email search
// without decrypting the table, last-name order, deactivation, and a constant number of SQL
// statements per request whatever the page size (counted on the wire between the app and the server).
import { beforeAll, describe, expect, test } from 'vitest';
import { emailBlindIndex } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, insertStudents, people } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { useStatementCounter } from './helpers/statements';
import { createTestUser, type TestUser } from './helpers/users';

// The ended-session list is re-read at most every SESSION_REVOCATION_POLL_SECONDS, on the request that
// finds it stale: with the default 5 s, that extra statement could land in a counted request below.
const app = useTestApp({ env: { SESSION_REVOCATION_POLL_SECONDS: '300' } });

// Statements are counted on the wire, between the app's pool and the server (see helpers/statements.ts).
const counter = useStatementCounter();

// ---------------------------------------------------------------------------------------------------
// Arrangement
// ---------------------------------------------------------------------------------------------------

interface Enrollment {
  id: string;
  status: string;
  startDate: string;
  program: { id: string; code: string; name: string };
}
interface Student {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  status: string;
  deactivatedAt: string | null;
  enrollments: Enrollment[];
}
interface StudentPage {
  items: Student[];
  next: string | null;
}

async function get<T>(path: string, as: TestUser, expected = 200): Promise<T> {
  const response = await send('GET', path, { as });
  expect(response.status, `${path}: ${response.status}`).toBe(expected);
  return (await response.json()) as T;
}

/** Every page of a list: ids in the order served. */
async function readAll(path: string, as: TestUser, between?: () => Promise<unknown>): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: StudentPage = await get<StudentPage>(
      cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path,
      as,
    );
    ids.push(...page.items.map((item) => item.id));
    cursor = page.next;
    await between?.();
  } while (cursor);
  return ids;
}

const sql = () => app.db.sql;

let admin: TestUser;
let staff: TestUser;
let registrar: TestUser;
let instructor: TestUser;
let finance: TestUser;
let chloe: TestUser;
let jose: TestUser;
let programA: string;
let programB: string;

beforeAll(async () => {
  const sql = app.db.sql;
  ({ admin, staff, registrar, instructor, finance } = await createRoleAccounts(sql));
  chloe = await createTestUser(sql, {
    roles: ['student'],
    firstName: 'Chloé',
    lastName: 'García',
    email: 'chloe.garcia@example.test',
  });
  jose = await createTestUser(sql, { roles: ['student'], firstName: 'José', lastName: 'Núñez' });
  programA = (await createProgram(sql, { code: 'PA' })).programId;
  programB = (await createProgram(sql, { code: 'PB' })).programId;
  // The instructor teaches programme A only; Chloé is in A, José in B.
  await assignInstructor(sql, instructor.id, programA);
  await createEnrollment(sql, chloe.id, programA);
  await createEnrollment(sql, jose.id, programB);
});

// ---------------------------------------------------------------------------------------------------

describe('authorization', () => {
  test('anonymous callers get 401 on every student route', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    for (const [method, path] of [
      ['GET', '/students'],
      ['POST', '/students'],
      ['POST', '/students/search'],
      ['GET', `/students/${id}`],
      ['PATCH', `/students/${id}`],
      ['POST', `/students/${id}/deactivate`],
    ] as const) {
      const response = await app.api(path, { method });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
  });

  test('roles without student records get 403; a student cannot list, create or change students', async () => {
    expect((await app.api('/students', { headers: finance.headers })).status).toBe(403);
    expect((await app.api('/students', { headers: chloe.headers })).status).toBe(403);
    expect((await app.api(`/students/${chloe.id}`, { headers: finance.headers })).status).toBe(403);
    const create = await app.api('/students', {
      method: 'POST',
      headers: { ...instructor.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'x@example.test', firstName: 'X', lastName: 'Y' }),
    });
    expect(create.status).toBe(403);
    const patch = await app.api(`/students/${chloe.id}`, {
      method: 'PATCH',
      headers: { ...chloe.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ lastName: 'Self-Service' }),
    });
    expect(patch.status).toBe(403);
  });

  test('a student reads their own record and gets 404 for anyone else', async () => {
    const own = await get<Student>(`/students/${chloe.id}`, chloe);
    expect(own.firstName).toBe('Chloé');
    await get(`/students/${jose.id}`, chloe, 404);
    await get(`/students/${admin.id}`, chloe, 404);
  });

  test('an instructor sees the students of the programmes they teach, and only those enrollments', async () => {
    const seen = await get<Student>(`/students/${chloe.id}`, instructor);
    expect(seen.enrollments.map((e) => e.program.code)).toEqual(['PA']);
    await get(`/students/${jose.id}`, instructor, 404);
    const list = await readAll('/students?limit=200', instructor);
    expect(list).toContain(chloe.id);
    expect(list).not.toContain(jose.id);
    // A filter cannot widen the scope.
    const byProgram = await get<StudentPage>(`/students?programId=${programB}`, instructor);
    expect(byProgram.items).toEqual([]);
  });

  test('staff and registrar read every student; a non-student id is a 404', async () => {
    for (const who of [admin, staff, registrar]) {
      expect((await get<Student>(`/students/${jose.id}`, who)).lastName).toBe('Núñez');
    }
    await get(`/students/${instructor.id}`, admin, 404);
    await get('/students/00000000-0000-4000-8000-000000000000', admin, 404);
  });
});

describe('the list', () => {
  test('a page of students with their enrollments, never cached, audited as PHI', async () => {
    const response = await app.api('/students?limit=200', { headers: admin.headers });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const page = (await response.json()) as StudentPage;
    const found = page.items.find((item) => item.id === chloe.id) as Student;
    expect(found).toMatchObject({ email: 'chloe.garcia@example.test', firstName: 'Chloé', lastName: 'García' });
    expect(found.enrollments).toEqual([
      expect.objectContaining({ status: 'active', program: { id: programA, code: 'PA', name: 'Programme PA' } }),
    ]);
    // Staff accounts are not students.
    expect(page.items.map((item) => item.id)).not.toContain(admin.id);
    const requestId = response.headers.get('x-request-id');
    const [audit] = await app.db.sql`select phi, route, user_id from audit_log where request_id = ${requestId}`;
    expect(audit).toEqual({ phi: true, route: 'students', user_id: admin.id });
  });

  test('filters by account status, programme and enrollment status', async () => {
    const sql = app.db.sql;
    const [done] = await insertStudents(sql, people('Filtra', 1));
    await createEnrollment(sql, done as string, programA, { status: 'completed' });
    const inA = await get<StudentPage>(`/students?programId=${programA}&limit=200`, admin);
    expect(inA.items.map((s) => s.id)).toEqual(expect.arrayContaining([chloe.id, done]));
    expect(inA.items.map((s) => s.id)).not.toContain(jose.id);
    const completedInA = await get<StudentPage>(`/students?programId=${programA}&enrollmentStatus=completed`, admin);
    expect(completedInA.items.map((s) => s.id)).toEqual([done]);
    const completedInB = await get<StudentPage>(`/students?programId=${programB}&enrollmentStatus=completed`, admin);
    expect(completedInB.items).toEqual([]);
    const [locked] = await insertStudents(sql, people('Filtra', 1), 'locked');
    const lockedPage = await get<StudentPage>('/students?status=locked&name=filtra', admin);
    expect(lockedPage.items.map((s) => s.id)).toEqual([locked]);
  });

  test('rejects malformed parameters with a 400 naming the field', async () => {
    for (const [query, field] of [
      ['limit=0', 'query.limit'],
      ['limit=201', 'query.limit'],
      ['limit=1e3', 'query.limit'],
      ['cursor=bm90LWEtY3Vyc29y', 'query.cursor'],
      ['sort=lastName&cursor=bm90LWEtY3Vyc29y', 'query.cursor'],
      ['sort=firstName', 'query.sort'],
      ['status=deleted', 'query.status'],
      ['status=active&status=locked', 'query.status'],
      ['programId=1%27%20or%201%3D1--', 'query.programId'],
      ['enrollmentStatus=graduated', 'query.enrollmentStatus'],
      [`email=${'e'.repeat(255)}`, 'query.email'],
      ['email=a%E2%80%8Bb%40example.test', 'query.email'],
      ['name=a', 'query.name'],
      ['name=a%20b%20c', 'query.name'],
      ['name=%25_%25', 'query.name'],
      ['name=ab%20cd%20ef%20gh%20ij', 'query.name'],
      ['name=%20%20', 'query.name'],
      [`name=${'x'.repeat(101)}`, 'query.name'],
    ] as const) {
      const response = await app.api(`/students?${query}`, { headers: admin.headers });
      expect(response.status, query).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const body = (await response.json()) as { errors: { field: string }[] };
      expect(
        body.errors.map((error) => error.field),
        query,
      ).toContain(field);
    }
  });

  test('paging is stable while students are added: no row skipped or repeated', async () => {
    const sql = app.db.sql;
    const existing = await insertStudents(sql, people('Pagina', 23));
    let added = 0;
    const addOne = async () => {
      added++;
      await insertStudents(sql, people('Pagina', 1));
    };
    // Inserts race with each page request, and land between pages too.
    const served: string[] = [];
    let cursor: string | null = null;
    do {
      const path: string = `/students?name=pagina&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const [page] = await Promise.all([get<StudentPage>(path, admin), addOne()]);
      served.push(...page.items.map((item) => item.id));
      cursor = page.next;
    } while (cursor);
    expect(new Set(served).size).toBe(served.length);
    for (const id of existing) expect(served).toContain(id);
    expect(added).toBeGreaterThan(5);
  });

  test('a next Link header carries the cursor; the last page has none', async () => {
    await insertStudents(sql(), people('Linkable', 3));
    const first = await app.api('/students?name=linkable&limit=2', { headers: admin.headers });
    const page = (await first.json()) as StudentPage;
    expect(first.headers.get('link')).toBe(`</api/students?name=linkable&limit=2&cursor=${page.next}>; rel="next"`);
    const second = await app.api(`/students?name=linkable&limit=2&cursor=${page.next}`, { headers: admin.headers });
    expect(((await second.json()) as StudentPage).items).toHaveLength(1);
    expect(second.headers.get('link')).toBeNull();
  });
});

describe('searching without decrypting the table', () => {
  test('by name prefix, ignoring case and accents, in either name', async () => {
    for (const name of ['chlo', 'CHLOÉ', 'garc', 'García', 'garcia', 'chlo garc', 'GARC chl', 'c garcía']) {
      const page = await get<StudentPage>(`/students?name=${encodeURIComponent(name)}`, admin);
      expect(
        page.items.map((s) => s.id),
        name,
      ).toEqual([chloe.id]);
    }
    for (const name of ['hloe', 'chlox', 'chlo nunez', 'arcia']) {
      const page = await get<StudentPage>(`/students?name=${encodeURIComponent(name)}`, admin);
      expect(
        page.items.map((s) => s.id),
        name,
      ).not.toContain(chloe.id);
    }
    const jose1 = await get<StudentPage>('/students?name=nu%C3%B1', admin);
    expect(jose1.items.map((s) => s.id)).toEqual([jose.id]);
  });

  test('prefixes longer than the token length are settled on the decrypted page', async () => {
    const [long, longer] = await insertStudents(sql(), [
      { firstName: 'Maximilian', lastName: 'Okafor', email: 'max1@example.test' },
      { firstName: 'Maximiliana', lastName: 'Okafor', email: 'max2@example.test' },
    ]);
    const both = await get<StudentPage>('/students?name=maximili', admin);
    expect(both.items.map((s) => s.id).sort()).toEqual([long, longer].sort());
    const one = await get<StudentPage>('/students?name=maximiliana', admin);
    expect(one.items.map((s) => s.id)).toEqual([longer]);
  });

  test('SQL and script fragments are just names that match nobody', async () => {
    for (const name of ["'; drop table users; --", '<script>alert(1)</script>', "robert') or 1=1"]) {
      const page = await get<StudentPage>(`/students?name=${encodeURIComponent(name)}`, admin);
      expect(page.items, name).toEqual([]);
    }
    const [row] = await sql()`select count(*)::int as n from users`;
    expect(row?.n).toBeGreaterThan(0);
  });

  test('by exact email through the blind index, whatever its case', async () => {
    for (const email of ['chloe.garcia@example.test', ' CHLOE.Garcia@Example.TEST ']) {
      const page = await get<StudentPage>(`/students?email=${encodeURIComponent(email)}`, admin);
      expect(
        page.items.map((s) => s.id),
        email,
      ).toEqual([chloe.id]);
    }
    const none = await get<StudentPage>('/students?email=chloe.garcia@example.tes', admin);
    expect(none.items).toEqual([]);
  });

  test('POST /students/search takes the same filters in its body, keeping them out of the URL', async () => {
    const response = await app.api('/students/search', {
      method: 'POST',
      headers: { ...admin.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'garc', email: 'chloe.garcia@example.test', limit: 5 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(((await response.json()) as StudentPage).items.map((s) => s.id)).toEqual([chloe.id]);
    const unknown = await app.api('/students/search', {
      method: 'POST',
      headers: { ...admin.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ nmae: 'garc' }),
    });
    expect(unknown.status).toBe(400);
  });
});

describe('sorting by last name', () => {
  test('orders a bounded set by decrypted last name, pages with an encrypted cursor', async () => {
    const names = ['Zulu', 'Álvarez', 'brown', 'Ortiz', 'Chen', 'Ávila'];
    await insertStudents(
      sql(),
      names.map((lastName, i) => ({ firstName: 'Sortable', lastName, email: `sortable${i}@example.test` })),
    );
    const lastNames: string[] = [];
    let cursor: string | null = null;
    do {
      const path: string = `/students?name=sortable&sort=lastName&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await get<StudentPage>(path, admin);
      lastNames.push(...page.items.map((s) => s.lastName));
      if (page.next) {
        // The cursor holds names, so it must not be readable.
        expect(Buffer.from(page.next.split('.').pop() as string, 'base64url').toString('latin1')).not.toMatch(
          /zulu|ortiz/i,
        );
      }
      cursor = page.next;
    } while (cursor);
    expect(lastNames).toEqual(['Álvarez', 'Ávila', 'brown', 'Chen', 'Ortiz', 'Zulu']);
  });

  test(`refuses a set larger than the bound with a 400 that says how to narrow it`, async () => {
    await insertStudents(sql(), people('Crowd', 1001), 'pending');
    const response = await app.api('/students?status=pending&sort=lastName', { headers: admin.headers });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { detail: string; errors: { field: string }[] };
    expect(body.errors.map((error) => error.field)).toEqual(['query.sort']);
    expect(body.detail).toMatch(/narrow/);
    // Narrowed, the same order works; sorting by creation never needs narrowing.
    const narrowed = await get<StudentPage>('/students?status=pending&name=crowd%20row09&sort=lastName&limit=3', admin);
    expect(narrowed.items.map((s) => s.lastName)).toEqual(['Row0900', 'Row0901', 'Row0902']);
    await get<StudentPage>('/students?status=pending&limit=200', admin);
  });
});

describe('statements per request', () => {
  test('the list runs the same number of SQL statements for 5 rows as for 100', async () => {
    await insertStudents(sql(), people('Counted', 120));
    const statementsFor = async (path: string) => {
      await get(path, admin); // warm: connections open, statements prepared
      const before = counter.count;
      const body = await get<StudentPage>(path, admin);
      return { statements: counter.count - before, rows: body.items?.length };
    };
    const small = await statementsFor('/students?limit=5');
    const large = await statementsFor('/students?limit=100');
    expect([small.rows, large.rows]).toEqual([5, 100]);
    // The page (students, roles and enrollments in one statement) and the audit row.
    expect(small.statements).toBe(2);
    expect(large.statements).toBe(small.statements);
    // The same for a name search, for last-name order (candidates, then the page) and for one student.
    expect((await statementsFor('/students?name=counted&limit=5')).statements).toBe(2);
    expect((await statementsFor('/students?name=counted&limit=100')).statements).toBe(2);
    const sortedSmall = await statementsFor('/students?name=counted&sort=lastName&limit=5');
    const sortedLarge = await statementsFor('/students?name=counted&sort=lastName&limit=100');
    expect([sortedSmall.rows, sortedLarge.rows]).toEqual([5, 100]);
    expect([sortedSmall.statements, sortedLarge.statements]).toEqual([3, 3]);
    expect((await statementsFor(`/students/${chloe.id}`)).statements).toBe(2);
  });
});

describe('creating a student', () => {
  const post = (body: unknown, as: TestUser = registrar) =>
    app.api('/students', {
      method: 'POST',
      headers: { ...as.headers, 'Content-Type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  test('creates the account with the student role; pending until it has a password', async () => {
    const response = await post({ email: 'new.student@example.test', firstName: 'Zoë', lastName: "O'Brien" });
    expect(response.status).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const student = (await response.json()) as Student & { roles: string[] };
    expect(response.headers.get('location')).toBe(`/api/students/${student.id}`);
    expect(student).toMatchObject({ firstName: 'Zoë', lastName: "O'Brien", status: 'pending', roles: ['student'] });
    const [stored] = await sql()`select first_name_ciphertext, password_hash from users where id = ${student.id}`;
    expect(stored?.first_name_ciphertext).not.toContain('Zo');
    expect(stored?.password_hash).toBeNull();
    // Found by name right away.
    // lib/crypto splits names at punctuation: "O'Brien" is the words "o" and "brien".
    const found = await get<StudentPage>('/students?name=o%20brien', admin);
    expect(found.items.map((s) => s.id)).toContain(student.id);
    const withPassword = await post(
      {
        email: 'active.student@example.test',
        firstName: 'Ada',
        lastName: 'Byron',
        password: 'quartz-lantern-meadow-42',
      },
      staff,
    );
    expect(((await withPassword.json()) as Student).status).toBe('active');
  });

  test('an email already in use, in any case, is a 409, also under concurrency', async () => {
    const again = await post({ email: ' CHLOE.GARCIA@example.test', firstName: 'Other', lastName: 'Person' });
    expect(again.status).toBe(409);
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => post({ email: 'race@example.test', firstName: 'Race', lastName: 'Condition' })),
    );
    expect(responses.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)]);
    const [row] =
      await sql()`select count(*)::int as n from users where email_blind_index = ${emailBlindIndex('race@example.test')}`;
    expect(row?.n).toBe(1);
  });

  test('rejects bad bodies naming the field, markup in names included', async () => {
    for (const [body, field] of [
      [{ email: 'not-an-email', firstName: 'A', lastName: 'B' }, 'body.email'],
      [{ email: 'a@example.test', firstName: '', lastName: 'B' }, 'body.firstName'],
      [{ email: 'a@example.test', firstName: 'A', lastName: 'B\u0000' }, 'body.lastName'],
      [{ email: 'a@example.test', firstName: 'A', lastName: 'x'.repeat(101) }, 'body.lastName'],
      [{ email: 'a@example.test', firstName: 42, lastName: 'B' }, 'body.firstName'],
      [{ email: 'a@example.test', firstName: 'A', lastName: 'B', roles: ['admin'] }, 'body'],
      [{ email: 'a@example.test', firstName: 'A', lastName: 'B', password: 'short' }, 'body.password'],
      [{ email: 'a@example.test', firstName: 'A', lastName: 'B', password: 'password1234' }, 'body.password'],
    ] as const) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const problem = (await response.json()) as { errors: { field: string }[] };
      expect(
        problem.errors.map((error) => error.field),
        JSON.stringify(body),
      ).toContain(field);
    }
    expect((await post('{"email": ')).status).toBe(400);
    expect((await post({ email: 'big@example.test', firstName: 'A'.repeat(2_000_000), lastName: 'B' })).status).toBe(
      413,
    );
    // Names are names: markup and SQL fragments are refused, and nothing is stored.
    const script = await post({ email: 'xss@example.test', firstName: '<script>alert(1)</script>', lastName: "'; --" });
    expect(script.status).toBe(400);
    const [stored] =
      await sql()`select count(*)::int as n from users where email_blind_index = ${emailBlindIndex('xss@example.test')}`;
    expect(stored?.n).toBe(0);
  });
});

describe('changing and deactivating a student', () => {
  const patch = (id: string, body: unknown, as: TestUser = staff) =>
    app.api(`/students/${id}`, {
      method: 'PATCH',
      headers: { ...as.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  test('a new last name is searchable and the old one is not; the unchanged email is no conflict', async () => {
    const [id] = await insertStudents(sql(), [
      { firstName: 'Renata', lastName: 'Oldname', email: 'renata@example.test' },
    ]);
    const response = await patch(id as string, { lastName: 'Newton', email: 'Renata@example.test' });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      firstName: 'Renata',
      lastName: 'Newton',
      email: 'renata@example.test', // stored normalised, as every address is
    });
    expect((await get<StudentPage>('/students?name=newt', admin)).items.map((s) => s.id)).toEqual([id]);
    expect((await get<StudentPage>('/students?name=oldn', admin)).items).toEqual([]);
    expect((await get<StudentPage>('/students?name=renata%20newt', admin)).items.map((s) => s.id)).toEqual([id]);
  });

  test('another account’s email is a 409; inactive is not a PATCH status; staff accounts are off limits', async () => {
    const [id] = await insertStudents(sql(), people('Patchy', 1));
    expect((await patch(id as string, { email: 'chloe.garcia@example.test' })).status).toBe(409);
    const inactive = await patch(id as string, { status: 'inactive' });
    expect(inactive.status).toBe(400);
    expect(((await inactive.json()) as { errors: { field: string; message: string }[] }).errors[0]).toMatchObject({
      field: 'body.status',
      message: expect.stringMatching(/deactivate/),
    });
    expect((await patch(id as string, {})).status).toBe(400);
    expect((await patch('00000000-0000-4000-8000-000000000000', { lastName: 'X' })).status).toBe(404);
    // An instructor who also takes a course is a student too, but not the registrar's to change.
    const both = await createTestUser(sql(), { roles: ['instructor', 'student'] });
    expect((await patch(both.id, { email: 'takeover@example.test' }, registrar)).status).toBe(403);
    expect((await patch(instructor.id, { lastName: 'X' })).status).toBe(404);
  });

  test('deactivation keeps the record, ends every session, and is idempotent; there is no DELETE', async () => {
    const [id] = await insertStudents(sql(), people('Leaving', 1));
    await sql()`
      insert into refresh_tokens (user_id, family_id, token_hash, expires_at)
      values (${id as string}, gen_random_uuid(), ${Buffer.from('a'.repeat(32))}, now() + interval '1 day'),
             (${id as string}, gen_random_uuid(), ${Buffer.from('b'.repeat(32))}, now() + interval '1 day')`;
    const deactivate = () => app.api(`/students/${id}/deactivate`, { method: 'POST', headers: registrar.headers });
    const first = await deactivate();
    expect(first.status).toBe(200);
    const student = (await first.json()) as Student;
    expect(student.status).toBe('inactive');
    expect(student.deactivatedAt).not.toBeNull();
    const tokens = await sql()`select revoke_reason from refresh_tokens where user_id = ${id as string}`;
    expect(tokens.map((t) => t.revoke_reason)).toEqual(['user_deactivated', 'user_deactivated']);
    const [row] = await sql()`select deactivated_by from users where id = ${id as string}`;
    expect(row?.deactivated_by).toBe(registrar.id);
    const second = (await (await deactivate()).json()) as Student;
    expect(second.deactivatedAt).toBe(student.deactivatedAt);
    // Students are deactivated, never deleted: DELETE is no method of the route (405 naming what it serves).
    const deleted = await app.api(`/students/${id}`, { method: 'DELETE', headers: admin.headers });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get('allow')).toBe('GET, HEAD, PATCH, OPTIONS');
    expect((await get<Student>(`/students/${id}`, admin)).status).toBe('inactive');
    // Reactivation clears the deactivation.
    const back = (await (await patch(id as string, { status: 'active' })).json()) as Student;
    expect(back).toMatchObject({ status: 'active', deactivatedAt: null });
  });
});
