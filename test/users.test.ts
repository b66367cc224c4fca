// The admin user endpoints and the role catalogue over HTTP, and the `admin:create` operator command:
// who may call what, paging and search without decrypting the table, conflicts under concurrency,
// sessions ended by deactivation and role changes, the last administrator, and hostile input.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import postgres from 'postgres';
import { beforeAll, describe, expect, test } from 'vitest';
import { freePort, REPO_ROOT } from '../dev/database';
import { openLocalDatabase } from '../dev/local-database';
import type { Role } from '../lib/access';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let admin: TestUser;
let staff: TestUser;
let student: TestUser;

beforeAll(async () => {
  ({ admin, staff, student } = await createRoleAccounts(app.db.sql));
});

interface UserView {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  status: string;
  roles: Role[];
  createdAt: string;
  updatedAt: string;
  deactivatedAt: string | null;
}
interface UserPage {
  items: UserView[];
  next: string | null;
}
interface Problem {
  type: string;
  status: number;
  errors?: { field: string; message: string }[];
}

const uniqueEmail = (label: string) => `${label}-${randomBytes(4).toString('hex')}@example.test`;

async function createUser(body: Record<string, unknown>): Promise<UserView> {
  const response = await send('POST', '/users', { as: admin, body });
  expect(response.status, JSON.stringify(await response.clone().json())).toBe(201);
  return (await response.json()) as UserView;
}

async function listPage(query: string, as: TestUser = admin): Promise<UserPage> {
  const response = await send('GET', `/users?${query}`, { as });
  expect(response.status).toBe(200);
  return (await response.json()) as UserPage;
}

/** Follows `next` to the end; returns every item in order and the number of pages. */
async function listAll(query: string): Promise<{ items: UserView[]; pages: number }> {
  const items: UserView[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await listPage(`${query}${cursor ? `&cursor=${cursor}` : ''}`);
    pages++;
    items.push(...page.items);
    cursor = page.next;
    expect(pages).toBeLessThan(200);
  } while (cursor);
  return { items, pages };
}

async function fieldsOf(response: Response): Promise<string[]> {
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const problem = (await response.json()) as Problem;
  return (problem.errors ?? []).map((error) => error.field);
}

async function insertRefreshToken(userId: string, revoked?: string): Promise<string> {
  const [row] = await app.db.sql<{ id: string }[]>`
    insert into refresh_tokens (user_id, family_id, token_hash, expires_at, revoked_at, revoke_reason)
    values (${userId}, ${randomUUID()}, ${randomBytes(32)}, now() + interval '7 days',
            ${revoked ? new Date() : null}, ${revoked ?? null})
    returning id`;
  return (row as { id: string }).id;
}

async function tokenState(id: string): Promise<{ revoked_at: Date | null; revoke_reason: string | null }> {
  const [row] = await app.db.sql<{ revoked_at: Date | null; revoke_reason: string | null }[]>`
    select revoked_at, revoke_reason from refresh_tokens where id = ${id}`;
  return row as { revoked_at: Date | null; revoke_reason: string | null };
}

/** What a refused write must leave untouched: the person's row and roles exactly as stored. */
async function personAsStored(id: string) {
  const [row] = await app.db.sql`select * from users where id = ${id}`;
  const roles = await app.db.sql`select role_name from user_roles where user_id = ${id} order by role_name`;
  return { row, roles: roles.map((r) => r.role_name) };
}

describe('authorization', () => {
  test('anonymous callers get 401 on every route; students 403', async () => {
    const target = await createTestUser(app.db.sql, { roles: ['student'] });
    const routes: [string, string, unknown?][] = [
      ['GET', '/users'],
      ['GET', `/users/${target.id}`],
      ['POST', '/users/search', { name: 'test' }],
      ['POST', '/users', { email: uniqueEmail('x'), firstName: 'X', lastName: 'Y', roles: ['student'] }],
      ['PATCH', `/users/${target.id}`, { firstName: 'Changed' }],
      ['POST', `/users/${target.id}/deactivate`],
      ['PUT', `/users/${target.id}/roles/admin`],
      ['DELETE', `/users/${target.id}/roles/student`],
    ];
    const before = await personAsStored(target.id);
    for (const [method, route, body] of [...routes, ['GET', '/roles'] as [string, string]]) {
      const anonymous = await send(method, route, { body });
      expect(anonymous.status, `anonymous ${method} ${route}`).toBe(401);
    }
    for (const [method, route, body] of [...routes, ['GET', '/roles'] as [string, string]]) {
      const response = await send(method, route, { as: student, body });
      expect(response.status, `student ${method} ${route}`).toBe(403);
    }
    // Nothing changed for the target.
    expect(await personAsStored(target.id)).toEqual(before);
    expect(before.roles).toEqual(['student']);
  });

  test('staff may list and read people but change nothing', async () => {
    const target = await createTestUser(app.db.sql, { roles: ['student'] });
    expect((await send('GET', '/users', { as: staff })).status).toBe(200);
    expect((await send('GET', `/users/${target.id}`, { as: staff })).status).toBe(200);
    expect((await send('POST', '/users/search', { as: staff, body: { email: target.email } })).status).toBe(200);
    const writes: [string, string, unknown?][] = [
      ['POST', '/users', { email: uniqueEmail('x'), firstName: 'X', lastName: 'Y', roles: ['staff'] }],
      ['PATCH', `/users/${target.id}`, { firstName: 'Changed' }],
      ['POST', `/users/${target.id}/deactivate`],
      ['PUT', `/users/${target.id}/roles/admin`],
      ['DELETE', `/users/${target.id}/roles/student`],
    ];
    const before = await personAsStored(target.id);
    const usersBefore = await app.db.sql`select count(*)::int as n from users`;
    for (const [method, route, body] of writes) {
      expect((await send(method, route, { as: staff, body })).status, `staff ${method} ${route}`).toBe(403);
    }
    // Refused means nothing changed: the target's row and roles as they were, and no new account.
    expect(await personAsStored(target.id)).toEqual(before);
    expect(await app.db.sql`select count(*)::int as n from users`).toEqual(usersBefore);
  });

  test('the other roles may not look people up, nor read the role catalogue', async () => {
    for (const role of ['instructor', 'registrar', 'finance', 'admissions_counselor', 'admissions_manager'] as const) {
      const someone = await createTestUser(app.db.sql, { roles: [role] });
      expect((await send('GET', '/users', { as: someone })).status, role).toBe(403);
      expect((await send('GET', `/users/${someone.id}`, { as: someone })).status, role).toBe(403);
      expect((await send('GET', '/roles', { as: someone })).status, role).toBe(403);
    }
  });

  test('a forged or expired-looking token is 401, not a guess at a role', async () => {
    const forged = `${admin.token.slice(0, -4)}AAAA`;
    const response = await send('GET', '/users', { as: forged });
    expect(response.status).toBe(401);
  });

  test('reads of people are PHI: no-store, and each is audited with the caller and the id', async () => {
    const target = await createTestUser(app.db.sql, { roles: ['student'] });
    const response = await send('GET', `/users/${target.id}`, { as: staff });
    expect(response.headers.get('cache-control')).toBe('no-store');
    const requestId = response.headers.get('x-request-id');
    const [row] = await app.db.sql`
      select user_id, route, phi, status, resource_ids from audit_log where request_id = ${requestId}`;
    expect(row).toMatchObject({ user_id: staff.id, route: 'users/{id}', phi: true, status: 200 });
    expect(row?.resource_ids).toEqual({ id: target.id });
    const list = await send('GET', '/users?limit=1', { as: staff });
    expect(list.headers.get('cache-control')).toBe('no-store');
  });
});

describe('create and read', () => {
  test('an admin creates an account with roles and a password: 201, Location, no secret in the body', async () => {
    const email = uniqueEmail('Nadia.Okafor');
    const response = await send('POST', '/users', {
      as: admin,
      body: {
        email: `  ${email}  `,
        firstName: '  Nadia ',
        lastName: 'Okafor',
        password: 'A-long-enough-passphrase',
        roles: ['registrar', 'staff', 'registrar'],
      },
    });
    expect(response.status).toBe(201);
    const user = (await response.json()) as UserView & Record<string, unknown>;
    expect(response.headers.get('location')).toBe(`/api/users/${user.id}`);
    // Stored trimmed and normalised as the blind index compares it (NFKC, lower case).
    expect(user).toMatchObject({
      email: email.toLowerCase(),
      firstName: 'Nadia',
      lastName: 'Okafor',
      status: 'active',
    });
    expect(user.roles).toEqual(['registrar', 'staff']);
    expect(Object.keys(user).some((key) => /password|hash|cipher/i.test(key))).toBe(false);
    const [row] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    expect(row?.password_hash).toMatch(/^\$argon2id\$/);
    const [grant] = await app.db.sql`select granted_by from user_roles where user_id = ${user.id} limit 1`;
    expect(grant?.granted_by).toBe(admin.id);

    const read = await send('GET', `/users/${user.id}`, { as: admin });
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual(user);
  });

  test('an account created without a password is pending', async () => {
    const user = await createUser({
      email: uniqueEmail('pending'),
      firstName: 'Pat',
      lastName: 'Pending',
      roles: ['student'],
    });
    expect(user.status).toBe('pending');
    const [row] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    expect(row?.password_hash).toBeNull();
  });

  test('an unknown id is 404, a malformed one 400', async () => {
    expect((await send('GET', `/users/${randomUUID()}`, { as: admin })).status).toBe(404);
    const malformed = await send('GET', "/users/1'%20or%20'1'='1", { as: admin });
    expect(malformed.status).toBe(400);
    expect(await fieldsOf(malformed)).toContain('params.id');
  });

  test('ten concurrent creations of one address (in any case): exactly one 201, nine 409', async () => {
    const email = uniqueEmail('race');
    const variants = Array.from({ length: 10 }, (_, i) => (i % 2 ? email.toUpperCase() : email));
    const responses = await Promise.all(
      variants.map((address, i) =>
        send('POST', '/users', {
          as: admin,
          body: {
            email: address,
            firstName: 'Race',
            lastName: `Runner ${String.fromCharCode(65 + i)}`,
            roles: ['student'],
          },
        }),
      ),
    );
    const statuses = responses.map((response) => response.status).sort();
    expect(statuses).toEqual([201, ...Array(9).fill(409)]);
    const conflictBody = (await responses.find((response) => response.status === 409)?.json()) as Problem;
    expect(conflictBody.type).toBe('urn:aada:problem:conflict');
    const page = await listPage(`email=${encodeURIComponent(email)}`);
    expect(page.items).toHaveLength(1);
  });
});

describe('hostile and malformed input', () => {
  const valid = () => ({ email: uniqueEmail('input'), firstName: 'Valid', lastName: 'Person', roles: ['student'] });

  test('SQL and script fragments in names are refused and nothing is stored; they find nobody as a search', async () => {
    const before = await app.db.sql`select count(*)::int as n from users`;
    for (const fragment of [
      "Robert'); DROP TABLE users;--",
      '<script>alert("x")</script>',
      '=HYPERLINK("x")',
      '-1+1',
    ]) {
      const first = await send('POST', '/users', { as: admin, body: { ...valid(), firstName: fragment } });
      expect(first.status, fragment).toBe(400);
      expect(await fieldsOf(first)).toEqual(['body.firstName']);
      const last = await send('POST', '/users', { as: admin, body: { ...valid(), lastName: fragment } });
      expect(last.status, fragment).toBe(400);
      expect(await fieldsOf(last)).toEqual(['body.lastName']);
    }
    const after = await app.db.sql`select count(*)::int as n from users`;
    expect(after[0]?.n).toBe(before[0]?.n);
    const search = await send('GET', `/users?name=${encodeURIComponent("robert'); drop")}`, { as: admin });
    expect(search.status).toBe(200);
    expect(search.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(((await search.json()) as UserPage).items).toEqual([]);
  });

  test('real names of any script pass, stored NFC and trimmed', async () => {
    const names: [string, string][] = [
      ["  O'Brien ", "O'Brien"],
      ['Ó Briain-Ní Dhomhnaill', 'Ó Briain-Ní Dhomhnaill'],
      ["'t Hooft", "'t Hooft"],
      ['J. R.', 'J. R.'],
      ['Nguye\u0302\u0303n', 'Nguyễn'], // decomposed on input, composed when stored
      ['李', '李'],
      ['حسین\u200Cزاده', 'حسین\u200Cزاده'], // a zero-width non-joiner between letters (Persian)
    ];
    for (const [input, stored] of names) {
      const user = await createUser({ ...valid(), lastName: input });
      expect(user.lastName, input).toBe(stored);
    }
  });

  test.each([
    ['a 10,000-character first name', { firstName: 'x'.repeat(10_000) }, 'body.firstName'],
    ['a 101-character last name', { lastName: 'y'.repeat(101) }, 'body.lastName'],
    ['a blank first name', { firstName: '   ' }, 'body.firstName'],
    ['a NUL byte', { firstName: 'Ann\u0000a' }, 'body.firstName'],
    ['a newline', { lastName: 'Smith\nAdmin' }, 'body.lastName'],
    ['a bell character', { firstName: 'Be\u0007ll' }, 'body.firstName'],
    ['a right-to-left override', { lastName: '\u202Egnp.exe' }, 'body.lastName'],
    ['a zero-width joiner at the end', { lastName: 'Smith\u200D' }, 'body.lastName'],
    ['digits', { firstName: 'Ann 2' }, 'body.firstName'],
    ['a leading hyphen', { lastName: '-Smith' }, 'body.lastName'],
    ['an unpaired surrogate', { firstName: 'Half\ud800' }, 'body.firstName'],
    ['a number as a name', { firstName: 123 }, 'body.firstName'],
    ['an unknown role', { roles: ['superuser'] }, 'body.roles.0'],
    ['no role', { roles: [] }, 'body.roles'],
    ['roles as a string', { roles: 'admin' }, 'body.roles'],
    ['a Cyrillic look-alike in the email', { email: 'аdmin@example.test' }, 'body.email'],
    ['a zero-width space in the email', { email: 'ad\u200Bmin@example.test' }, 'body.email'],
    ['an email without domain', { email: 'nobody' }, 'body.email'],
    [
      'a 256-character email',
      { email: `${'a'.repeat(64)}@${'b'.repeat(62)}.${'c'.repeat(62)}.${'d'.repeat(60)}.test` },
      'body.email',
    ],
    ['SQL in the email', { email: "x'--@example.test OR 1=1" }, 'body.email'],
    ['a short password', { password: 'short' }, 'body.password'],
    ['a 129-character password', { password: 'p'.repeat(129) }, 'body.password'],
    ['an unknown field', { isAdmin: true }, 'body'],
  ])('%s is a 400 naming the field, and nothing is stored', async (_label, change, field) => {
    const body = { ...valid(), ...change };
    const before = await app.db.sql`select count(*)::int as n from users`;
    const response = await send('POST', '/users', { as: admin, body });
    expect(response.status).toBe(400);
    expect(await fieldsOf(response)).toContain(field);
    const after = await app.db.sql`select count(*)::int as n from users`;
    expect(after[0]?.n).toBe(before[0]?.n);
  });

  test('a full-width email is the address it spells (NFKC): stored as such, and taken by it', async () => {
    const ascii = uniqueEmail('width');
    const fullwidth = [...ascii].map((c) => String.fromCodePoint((c.codePointAt(0) as number) + 0xfee0)).join('');
    const user = await createUser({ ...valid(), email: fullwidth });
    expect(user.email).toBe(ascii);
    expect((await send('POST', '/users', { as: admin, body: { ...valid(), email: ascii.toUpperCase() } })).status).toBe(
      409,
    );
  });

  test('malformed JSON, the wrong content type and an oversized body', async () => {
    expect((await send('POST', '/users', { as: admin, body: '{"email": ' })).status).toBe(400);
    const wrongType = await send('POST', '/users', {
      as: admin,
      body: valid(),
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(wrongType.status).toBe(415);
    const huge = await send('POST', '/users', {
      as: admin,
      body: { ...valid(), firstName: 'z'.repeat(2 * 1024 * 1024) },
    });
    expect(huge.status).toBe(413);
  });

  test('bad list queries are 400s naming the parameter', async () => {
    for (const [query, field] of [
      ['limit=0', 'query.limit'],
      ['limit=201', 'query.limit'],
      ['role=superuser', 'query.role'],
      ['status=deleted', 'query.status'],
      ['cursor=abc', 'query.cursor'],
      [`cursor=${Buffer.from('["2024-01-01T00:00:00Z","x"]').toString('base64url')}`, 'query.cursor'],
      ['name=a', 'query.name'],
      ['name=%21%21%21', 'query.name'],
      [`name=${'n'.repeat(101)}`, 'query.name'],
    ] as const) {
      const response = await send('GET', `/users?${query}`, { as: admin });
      expect(response.status, query).toBe(400);
      expect(await fieldsOf(response), query).toContain(field);
    }
  });
});

describe('listing and searching', () => {
  test('pages in creation order; rows inserted meanwhile never make a page skip or repeat one', async () => {
    for (let i = 0; i < 12; i++) await createTestUser(app.db.sql, { roles: ['student'], password: null });
    const existing = (await app.db.sql<{ id: string }[]>`select id from users`).map((row) => row.id);
    const seen: string[] = [];
    const createdAt: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      // Another administrator adds people while this one pages.
      const [response] = await Promise.all([
        send('GET', `/users?limit=4${cursor ? `&cursor=${cursor}` : ''}`, { as: admin }),
        createTestUser(app.db.sql, { roles: ['student'], password: null }),
        createTestUser(app.db.sql, { roles: ['student'], password: null }),
      ]);
      const page = (await response.json()) as UserPage;
      expect(page.items.length).toBeLessThanOrEqual(4);
      if (page.next) expect(response.headers.get('link')).toContain(`cursor=${page.next}`);
      seen.push(...page.items.map((item) => item.id));
      createdAt.push(...page.items.map((item) => item.createdAt));
      cursor = page.next;
      pages++;
    } while (cursor && pages < 100);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of existing) expect(seen).toContain(id);
    expect([...createdAt].sort()).toEqual(createdAt);
  });

  test('filters by role and by status', async () => {
    const finance = await createTestUser(app.db.sql, { roles: ['finance'] });
    const registrar = await createTestUser(app.db.sql, { roles: ['registrar', 'finance'] });
    const { items } = await listAll('role=finance&limit=200');
    expect(items.map((item) => item.id)).toEqual(expect.arrayContaining([finance.id, registrar.id]));
    expect(items.every((item) => item.roles.includes('finance'))).toBe(true);
    await createUser({ email: uniqueEmail('pending'), firstName: 'Pia', lastName: 'Pending', roles: ['student'] });
    const pending = await listAll('status=pending&limit=200');
    expect(pending.items.length).toBeGreaterThan(0);
    expect(pending.items.every((item) => item.status === 'pending')).toBe(true);
  });

  test('exact email search through the blind index: case and surrounding spaces do not matter, parts do not match', async () => {
    const email = uniqueEmail('Mixed.Case+Tag');
    const user = await createUser({ email, firstName: 'Mia', lastName: 'Case', roles: ['student'] });
    for (const variant of [email, email.toUpperCase(), `  ${email}  `]) {
      const page = await listPage(`email=${encodeURIComponent(variant)}`);
      expect(page.items.map((item) => item.id)).toEqual([user.id]);
      expect(page.next).toBeNull();
    }
    for (const partial of [email.split('@')[0] as string, 'example.test', `${email}x`]) {
      expect((await listPage(`email=${encodeURIComponent(partial)}`)).items).toEqual([]);
    }
  });

  test('name-prefix search, accents and case ignored, several words narrowing', async () => {
    const chloe = await createUser({
      email: uniqueEmail('c1'),
      firstName: 'Chloé',
      lastName: 'Vandermeer',
      roles: ['student'],
    });
    const chloe2 = await createUser({
      email: uniqueEmail('c2'),
      firstName: 'Chloe',
      lastName: 'Ngata-Ruiz',
      roles: ['student'],
    });
    const other = await createUser({
      email: uniqueEmail('c3'),
      firstName: 'Chiara',
      lastName: 'Lovato',
      roles: ['student'],
    });
    const ids = async (name: string) =>
      (await listAll(`name=${encodeURIComponent(name)}&limit=50`)).items.map((item) => item.id).sort();
    expect(await ids('chlo')).toEqual([chloe.id, chloe2.id].sort());
    expect(await ids('CHLOÉ')).toEqual([chloe.id, chloe2.id].sort());
    expect(await ids('chlo vand')).toEqual([chloe.id]);
    expect(await ids('vandermeer')).toEqual([chloe.id]); // longer than the 8-character tokens
    expect(await ids('vandermeers')).toEqual([]);
    expect(await ids('ruiz')).toEqual([chloe2.id]); // each part of a double-barrelled name
    expect(await ids('ch lov')).toEqual([other.id]);
    const found = (await listPage(`name=chlo&email=${encodeURIComponent(chloe.email)}`)).items;
    expect(found.map((item) => item.id)).toEqual([chloe.id]);
  });

  test('POST /users/search takes the same filters in its body, keeping them out of the URL', async () => {
    const a = await createUser({
      email: uniqueEmail('body1'),
      firstName: 'Ottilie',
      lastName: 'Searchbody',
      roles: ['staff'],
    });
    const b = await createUser({
      email: uniqueEmail('body2'),
      firstName: 'Ottokar',
      lastName: 'Searchbody',
      roles: ['staff'],
    });
    const byEmail = await send('POST', '/users/search', { as: admin, body: { email: a.email.toUpperCase() } });
    expect(byEmail.status).toBe(200);
    expect(byEmail.headers.get('cache-control')).toBe('no-store');
    expect(((await byEmail.json()) as UserPage).items.map((item) => item.id)).toEqual([a.id]);
    const first = (await (
      await send('POST', '/users/search', { as: admin, body: { name: 'otti searchb', limit: 1 } })
    ).json()) as UserPage;
    expect(first.items.map((item) => item.id)).toEqual([a.id]);
    const both = (await (
      await send('POST', '/users/search', { as: admin, body: { name: 'searchbody', role: 'staff', limit: 1 } })
    ).json()) as UserPage;
    expect(both.items.map((item) => item.id)).toEqual([a.id]);
    const response = await send('POST', '/users/search', {
      as: admin,
      body: {
        name: 'searchbody',
        role: 'staff',
        limit: 1,
        cursor: both.next,
      },
    });
    expect(response.headers.get('link')).toBeNull();
    const second = (await response.json()) as UserPage;
    expect(second.items.map((item) => item.id)).toEqual([b.id]);
    const bad = await send('POST', '/users/search', { as: admin, body: { name: 'x', sql: '1=1' } });
    expect(bad.status).toBe(400);
    expect(await fieldsOf(bad)).toEqual(expect.arrayContaining(['body']));
    const badCursor = await send('POST', '/users/search', { as: admin, body: { cursor: 'abc' } });
    expect(await fieldsOf(badCursor)).toContain('body.cursor');
  });

  test('paging a name search that the decrypted filter thins out: every match once, each request bounded', async () => {
    const wanted: string[] = [];
    for (let i = 0; i < 24; i++) {
      // Same 8-character token "christop", so the index returns them all; only "Christopher" matches.
      const isWanted = i === 1 || i === 5 || i === 22;
      const user = await createTestUser(app.db.sql, {
        roles: ['student'],
        password: null,
        firstName: isWanted ? 'Christopher' : 'Christophe',
        lastName: `Zed${i}`,
      });
      if (isWanted) wanted.push(user.id);
    }
    const { items, pages } = await listAll('name=christopher&limit=2');
    expect(items.map((item) => item.id).sort()).toEqual([...wanted].sort());
    expect(items.every((item) => item.firstName === 'Christopher')).toBe(true);
    expect(pages).toBeGreaterThanOrEqual(2);

    // With limit=1 one request examines at most 5 batches of 2 rows: the 16 rows between the second
    // and the third match take more than one request, so some page is empty but points further on.
    const pageSizes: number[] = [];
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await listPage(`name=christopher&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      pageSizes.push(page.items.length);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.next;
    } while (cursor && pageSizes.length < 50);
    expect(seen).toEqual(wanted);
    expect(pageSizes).toContain(0);

    const all = await listAll('name=christoph&limit=5');
    expect(all.items).toHaveLength(24);
  });
});

describe('update', () => {
  test("re-sending the user's own email (in another case) is not a conflict; someone else's is", async () => {
    const user = await createUser({ email: uniqueEmail('own'), firstName: 'Olu', lastName: 'Own', roles: ['student'] });
    const same = await send('PATCH', `/users/${user.id}`, {
      as: admin,
      body: { email: user.email.toUpperCase(), firstName: 'Olu' },
    });
    expect(same.status).toBe(200);
    // Stored normalised, as the blind index compares it.
    expect(((await same.json()) as UserView).email).toBe(user.email);
    expect((await listPage(`email=${encodeURIComponent(user.email)}`)).items.map((item) => item.id)).toEqual([user.id]);

    const other = await createUser({
      email: uniqueEmail('other'),
      firstName: 'Ot',
      lastName: 'Her',
      roles: ['student'],
    });
    const taken = await send('PATCH', `/users/${user.id}`, {
      as: admin,
      body: { email: other.email, lastName: 'Changed' },
    });
    expect(taken.status).toBe(409);
    const unchanged = (await (await send('GET', `/users/${user.id}`, { as: admin })).json()) as UserView;
    expect(unchanged.lastName).toBe('Own');
  });

  test('a new email and a new first name: searches follow, the other name keeps working', async () => {
    const user = await createUser({
      email: uniqueEmail('before'),
      firstName: 'Bartholomew',
      lastName: 'Quince',
      roles: ['student'],
    });
    const newEmail = uniqueEmail('after');
    const response = await send('PATCH', `/users/${user.id}`, {
      as: admin,
      body: { email: newEmail, firstName: 'Zebulon' },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ email: newEmail, firstName: 'Zebulon', lastName: 'Quince' });
    expect((await listPage(`email=${encodeURIComponent(user.email)}`)).items).toEqual([]);
    expect((await listPage(`email=${encodeURIComponent(newEmail)}`)).items).toHaveLength(1);
    expect((await listPage('name=bartholomew')).items).toEqual([]);
    expect((await listPage('name=zebu')).items.map((item) => item.id)).toEqual([user.id]);
    expect((await listPage('name=quince')).items.map((item) => item.id)).toEqual([user.id]);
  });

  test('locking ends sessions; reactivating a pending account without password is refused', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const token = await insertRefreshToken(user.id);
    const locked = await send('PATCH', `/users/${user.id}`, { as: admin, body: { status: 'locked' } });
    expect(locked.status).toBe(200);
    expect(((await locked.json()) as UserView).status).toBe('locked');
    expect(await tokenState(token)).toMatchObject({ revoke_reason: 'admin_revoked' });
    const active = await send('PATCH', `/users/${user.id}`, { as: admin, body: { status: 'active' } });
    expect(((await active.json()) as UserView).status).toBe('active');

    const pending = await createUser({
      email: uniqueEmail('nopw'),
      firstName: 'No',
      lastName: 'Password',
      roles: ['student'],
    });
    expect((await send('PATCH', `/users/${pending.id}`, { as: admin, body: { status: 'active' } })).status).toBe(409);
  });

  test('bad patches', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    expect((await send('PATCH', `/users/${user.id}`, { as: admin, body: {} })).status).toBe(400);
    expect((await send('PATCH', `/users/${user.id}`, { as: admin, body: { status: 'inactive' } })).status).toBe(400);
    expect(
      (await send('PATCH', `/users/${user.id}`, { as: admin, body: { password: 'A-long-enough-passphrase' } })).status,
    ).toBe(400);
    expect((await send('PATCH', `/users/${user.id}`, { as: admin, body: { firstName: 'Tab\there' } })).status).toBe(
      400,
    );
    expect((await send('PATCH', `/users/${randomUUID()}`, { as: admin, body: { firstName: 'Ghost' } })).status).toBe(
      404,
    );
    expect((await send('PATCH', `/users/${admin.id}`, { as: admin, body: { status: 'locked' } })).status).toBe(409);
  });
});

describe('deactivation', () => {
  test('deactivates, records who and when, and revokes every live refresh token', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const live = await insertRefreshToken(user.id);
    const live2 = await insertRefreshToken(user.id);
    const loggedOut = await insertRefreshToken(user.id, 'logout');
    const response = await send('POST', `/users/${user.id}/deactivate`, { as: admin });
    expect(response.status).toBe(200);
    const view = (await response.json()) as UserView;
    expect(view.status).toBe('inactive');
    expect(view.deactivatedAt).not.toBeNull();
    for (const id of [live, live2]) {
      const state = await tokenState(id);
      expect(state.revoke_reason).toBe('user_deactivated');
      expect(state.revoked_at).not.toBeNull();
    }
    expect((await tokenState(loggedOut)).revoke_reason).toBe('logout');
    const [row] = await app.db.sql`select deactivated_by from users where id = ${user.id}`;
    expect(row?.deactivated_by).toBe(admin.id);

    const again = (await (await send('POST', `/users/${user.id}/deactivate`, { as: admin })).json()) as UserView;
    expect(again.deactivatedAt).toBe(view.deactivatedAt);
    const [audit] = await app.db.sql`
      select event from audit_log where route = 'users/{id}/deactivate' and resource_ids ->> 'id' = ${user.id} limit 1`;
    expect(audit?.event).toBe('user_deactivated');

    const reactivated = (await (
      await send('PATCH', `/users/${user.id}`, { as: admin, body: { status: 'active' } })
    ).json()) as UserView;
    expect(reactivated).toMatchObject({ status: 'active', deactivatedAt: null });
  });

  test('unknown users are 404; an administrator cannot deactivate themselves', async () => {
    expect((await send('POST', `/users/${randomUUID()}/deactivate`, { as: admin })).status).toBe(404);
    expect((await send('POST', `/users/${admin.id}/deactivate`, { as: admin })).status).toBe(409);
  });
});

describe('roles', () => {
  test('assign is idempotent and ends sessions only when something changed; remove likewise', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const first = await insertRefreshToken(user.id);
    const assigned = await send('PUT', `/users/${user.id}/roles/registrar`, { as: admin });
    expect(assigned.status).toBe(204);
    expect((await tokenState(first)).revoke_reason).toBe('roles_changed');
    const view = (await (await send('GET', `/users/${user.id}`, { as: admin })).json()) as UserView;
    expect(view.roles).toEqual(['registrar', 'student']);

    const second = await insertRefreshToken(user.id);
    expect((await send('PUT', `/users/${user.id}/roles/registrar`, { as: admin })).status).toBe(204);
    expect((await tokenState(second)).revoked_at).toBeNull();
    const grants = await app.db
      .sql`select granted_by from user_roles where user_id = ${user.id} and role_name = 'registrar'`;
    expect(grants).toHaveLength(1);
    expect(grants[0]?.granted_by).toBe(admin.id);

    expect((await send('DELETE', `/users/${user.id}/roles/registrar`, { as: admin })).status).toBe(204);
    expect((await tokenState(second)).revoke_reason).toBe('roles_changed');
    const third = await insertRefreshToken(user.id);
    expect((await send('DELETE', `/users/${user.id}/roles/registrar`, { as: admin })).status).toBe(204);
    expect((await tokenState(third)).revoked_at).toBeNull();
    const after = (await (await send('GET', `/users/${user.id}`, { as: admin })).json()) as UserView;
    expect(after.roles).toEqual(['student']);
  });

  test('unknown roles are 400, unknown users 404', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    for (const method of ['PUT', 'DELETE']) {
      const unknownRole = await send(method, `/users/${user.id}/roles/superuser`, { as: admin });
      expect(unknownRole.status).toBe(400);
      expect(await fieldsOf(unknownRole)).toContain('params.role');
      expect((await send(method, `/users/${user.id}/roles/ADMIN`, { as: admin })).status).toBe(400);
      expect((await send(method, `/users/${randomUUID()}/roles/staff`, { as: admin })).status).toBe(404);
    }
  });

  test('the role catalogue: admin and staff, privately cacheable, 304 on revalidation', async () => {
    const response = await send('GET', '/roles', { as: staff });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('private, max-age=300');
    const body = (await response.json()) as { items: { name: string; description: string }[] };
    expect(body.items.map((role) => role.name)).toEqual([
      'admin',
      'admissions_counselor',
      'admissions_manager',
      'finance',
      'instructor',
      'registrar',
      'staff',
      'student',
    ]);
    const again = await send('GET', '/roles', {
      as: staff,
      headers: { 'If-None-Match': response.headers.get('etag') as string },
    });
    expect(again.status).toBe(304);
  });
});

describe('npm run admin:create', () => {
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const script = path.join(REPO_ROOT, 'dev', 'admin-create.ts');

  function run(args: string[], env: Record<string, string | undefined>) {
    return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        tsx,
        [script, ...args],
        { env: { ...process.env, DATABASE_URL: app.db.url, ADMIN_PASSWORD: undefined, ...env }, timeout: 20_000 },
        (error, stdout, stderr) => resolve({ code: child.exitCode ?? (error ? 1 : 0), stdout, stderr }),
      );
      child.stdin?.end();
    });
  }

  test('creates an active administrator with the password from ADMIN_PASSWORD, printing only the id', async () => {
    const email = uniqueEmail('first.admin');
    const password = 'Operator-Chosen-Passphrase-1';
    const result = await run(['--email', email, '--first', 'Ada', '--last', 'Operator'], { ADMIN_PASSWORD: password });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const id = /Created administrator ([0-9a-f-]{36})/.exec(result.stdout)?.[1];
    expect(id).toBeDefined();
    expect(result.stdout).not.toContain(password);
    const [row] = await app.db.sql`
      select u.status, u.password_hash, array_agg(r.role_name) as roles
        from users u join user_roles r on r.user_id = u.id where u.id = ${id as string} group by u.id`;
    expect(row).toMatchObject({ status: 'active', roles: ['admin'] });
    expect(row?.password_hash).toMatch(/^\$argon2id\$/);
    const [audit] = await app.db
      .sql`select event, user_id from audit_log where route = 'dev/admin-create' and user_id = ${id as string}`;
    expect(audit?.event).toBe('admin_created');
    const found = await listPage(`email=${encodeURIComponent(email)}`);
    expect(found.items[0]).toMatchObject({ id, firstName: 'Ada', lastName: 'Operator' });
  });

  test('grants admin to an existing account by email without touching its password', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['staff'] });
    const [before] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    const result = await run(['--email', user.email.toUpperCase()], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Granted the admin role to the existing account ${user.id}`);
    const roles = await app.db.sql`select role_name from user_roles where user_id = ${user.id} order by role_name`;
    expect(roles.map((r) => r.role_name)).toEqual(['admin', 'staff']);
    const [after] = await app.db.sql`select password_hash from users where id = ${user.id}`;
    expect(after?.password_hash).toBe(before?.password_hash);
  });

  test('refuses a password on the command line, a short password, no terminal', async () => {
    const email = uniqueEmail('refused');
    const onArgv = await run(['--email', email, '--password', 'Operator-Chosen-Passphrase-1'], {});
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toContain('Refusing --password');
    expect(onArgv.stderr).not.toContain('Operator-Chosen-Passphrase-1');
    const inline = await run(['--email', email, '--password=Operator-Chosen-Passphrase-1'], {});
    expect(inline.code).toBe(2);

    const short = await run(['--email', email], { ADMIN_PASSWORD: 'short' });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('12 to 128 characters');

    const noTerminal = await run(['--email', email], {});
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toContain('ADMIN_PASSWORD');

    const badEmail = await run(['--email', 'not-an-email'], { ADMIN_PASSWORD: 'Operator-Chosen-1' });
    expect(badEmail.code).toBe(2);

    expect((await listPage(`email=${encodeURIComponent(email)}`)).items).toEqual([]);
    // Five runs of the command, each starting tsx: seconds apiece on a busy machine.
  }, 90_000);

  test('without DATABASE_URL it works on the database of a running `npm start`', async () => {
    // npm start's local database, on its own data folder and port so the developer's stays untouched.
    const dataDir = path.join(REPO_ROOT, '.data', `test-local-${process.pid}`);
    const local = await openLocalDatabase({ dataDir, port: await freePort() });
    try {
      expect(local.started).toBe(true);
      const email = uniqueEmail('local.admin');
      const result = await run(['--email', email], {
        DATABASE_URL: undefined,
        EMBEDDED_PG_PORT: String(local.port),
        ADMIN_PASSWORD: 'Operator-Chosen-Passphrase-1',
      });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Using the embedded PostgreSQL already running on 127.0.0.1:${local.port}`);
      const id = /Created administrator ([0-9a-f-]{36})/.exec(result.stdout)?.[1];
      const sql = postgres(local.adminUrl, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`
          select u.status, array_agg(r.role_name) as roles
            from users u join user_roles r on r.user_id = u.id where u.id = ${id as string} group by u.id`;
        expect(row).toMatchObject({ status: 'active', roles: ['admin'] });
        // The same database npm start serves: migrated, with its demo data.
        const [demo] = await sql`select count(*)::int as n from programs`;
        expect(demo?.n).toBeGreaterThan(0);
      } finally {
        await sql.end();
      }
    } finally {
      await local.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

// Runs last in this file: it deactivates every other administrator of the file's database.
describe('the last active administrator', () => {
  test('cannot lose the role or the account; two admins removing each other: one wins', async () => {
    const a = await createTestUser(app.db.sql, { roles: ['admin'] });
    const b = await createTestUser(app.db.sql, { roles: ['admin'] });
    await app.db.sql`
      update users set status = 'inactive'
       where id in (select user_id from user_roles where role_name = 'admin') and id not in (${a.id}, ${b.id})`;

    expect((await send('DELETE', `/users/${a.id}/roles/admin`, { as: a })).status).toBe(409);

    const [ab, ba] = await Promise.all([
      send('DELETE', `/users/${b.id}/roles/admin`, { as: a }),
      send('DELETE', `/users/${a.id}/roles/admin`, { as: b }),
    ]);
    expect([ab.status, ba.status].sort()).toEqual([204, 409]);
    const [winner, loser] = ab.status === 204 ? [a, b] : [b, a];

    // The loser's access token still says admin for up to 15 minutes (the residual window), but the
    // last active administrator is protected whatever the caller's token claims.
    expect((await send('DELETE', `/users/${winner.id}/roles/admin`, { as: loser })).status).toBe(409);
    expect((await send('POST', `/users/${winner.id}/deactivate`, { as: loser })).status).toBe(409);
    expect((await send('PATCH', `/users/${winner.id}`, { as: loser, body: { status: 'locked' } })).status).toBe(409);
    const [row] = await app.db.sql`
      select u.status, array_agg(r.role_name) as roles
        from users u join user_roles r on r.user_id = u.id where u.id = ${winner.id} group by u.status`;
    expect(row).toMatchObject({ status: 'active', roles: ['admin'] });

    // With a second active administrator the same change is allowed.
    expect((await send('PUT', `/users/${loser.id}/roles/admin`, { as: winner })).status).toBe(204);
    expect((await send('DELETE', `/users/${winner.id}/roles/admin`, { as: loser })).status).toBe(204);
  });
});
