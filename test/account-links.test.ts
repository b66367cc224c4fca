// The ways into an account without a usable password, over real HTTP: the invitation a student or
// staff account created without a password gets (and staff may send again), and "forgot password".
// Both links lead to POST auth/password-reset, which sets the password once, ends every session and
// never reopens a locked account; the request step answers alike for known and unknown addresses.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { postFrom, send } from './helpers/http';
import { linkTokenIn, messagesTo } from './helpers/outbox';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const app = useTestApp();
const SET_PASSWORD = 'account/set-password';
const NEW_PASSWORD = 'Lantern-Orchard-Copper-42';

let registrar: TestUser;
let admin: TestUser;
let instructor: TestUser;
let sources = 0;
/** A loopback address no earlier request of this file used, so the per-source limits start at zero. */
const newSource = () => `127.44.${Math.floor(sources / 250)}.${(sources++ % 250) + 2}`;

beforeAll(async () => {
  registrar = await createTestUser(app.db.sql, { roles: ['registrar'] });
  admin = await createTestUser(app.db.sql, { roles: ['admin'] });
  instructor = await createTestUser(app.db.sql, { roles: ['instructor'] });
});

const post = (path: string, body: unknown, source = newSource()) => postFrom(`${app.url}${path}`, body, source);
const signIn = (email: string, password: string) => post('/auth/login', { email, password, client: 'tool' });
const setPassword = (token: string, password = NEW_PASSWORD, source?: string) =>
  post('/auth/password-reset', { token, password }, source);
const requestReset = (email: string, source?: string) => post('/auth/password-reset/request', { email }, source);

async function statusOf(id: string): Promise<string | undefined> {
  const [row] = await app.db.sql<{ status: string }[]>`select status from users where id = ${id}`;
  return row?.status;
}

async function newPendingStudent(): Promise<{ id: string; email: string }> {
  const email = `invited-${Date.now()}-${sources}@example.test`;
  const response = await send('POST', '/students', {
    as: registrar,
    body: { email, firstName: 'Ines', lastName: 'Invited' },
  });
  expect(response.status).toBe(201);
  const { id } = (await response.json()) as { id: string };
  return { id, email };
}

describe('the invitation of an account created without a password', () => {
  test('is queued with the creation; its link sets the password once and the student can sign in', async () => {
    const student = await newPendingStudent();
    expect(await statusOf(student.id)).toBe('pending');
    const [invitation] = await messagesTo(app.db.sql, 'account_invitation', student.email);
    expect(invitation).toContain('choose your password');
    const token = linkTokenIn(invitation, SET_PASSWORD);
    expect((await signIn(student.email, NEW_PASSWORD)).status).toBe(401);

    const accepted = await setPassword(token);
    expect(accepted.status).toBe(200);
    expect(await statusOf(student.id)).toBe('active');
    expect((await signIn(student.email, NEW_PASSWORD)).status).toBe(200);

    const replayed = await setPassword(token, 'Another-Fine-Passphrase-7');
    expect(replayed.status).toBe(400);
    expect(((await replayed.json()) as { errors: { field: string }[] }).errors[0]?.field).toBe('body.token');
    expect((await signIn(student.email, NEW_PASSWORD)).status).toBe(200);
  });

  test('an administrator creating a staff account without a password sends one too', async () => {
    const email = `staff-invited-${Date.now()}@example.test`;
    const response = await send('POST', '/users', {
      as: admin,
      body: { email, firstName: 'Sam', lastName: 'Staff', roles: ['staff'] },
    });
    expect(response.status).toBe(201);
    expect(await messagesTo(app.db.sql, 'account_invitation', email)).toHaveLength(1);
  });

  test('an account created with a password gets no invitation', async () => {
    const email = `with-password-${Date.now()}@example.test`;
    const body = { email, firstName: 'Pia', lastName: 'Password', password: 'Harbour-Violet-Seven-77' };
    expect((await send('POST', '/students', { as: registrar, body })).status).toBe(201);
    expect(await messagesTo(app.db.sql, 'account_invitation', email)).toEqual([]);
  });

  test('a refused password names the field and keeps the link working', async () => {
    const student = await newPendingStudent();
    const token = linkTokenIn((await messagesTo(app.db.sql, 'account_invitation', student.email))[0], SET_PASSWORD);
    for (const weak of ['short', student.email, 'password123456']) {
      const refused = await setPassword(token, weak);
      expect(refused.status).toBe(400);
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await refused.json()) as { errors: { field: string }[] }).errors[0]?.field).toBe('body.password');
    }
    expect(await statusOf(student.id)).toBe('pending');
    expect((await setPassword(token)).status).toBe(200);
  });

  test('sent again by a registrar: only the new link works', async () => {
    const student = await newPendingStudent();
    const first = linkTokenIn((await messagesTo(app.db.sql, 'account_invitation', student.email))[0], SET_PASSWORD);
    const resent = await send('POST', `/students/${student.id}/invitation`, { as: registrar });
    expect(resent.status).toBe(202);
    const messages = await messagesTo(app.db.sql, 'account_invitation', student.email);
    expect(messages).toHaveLength(2);
    expect((await setPassword(first)).status).toBe(400);
    expect((await setPassword(linkTokenIn(messages[1], SET_PASSWORD))).status).toBe(200);
  });

  test('is refused for an active account, a staff account, an unknown id and a role without the right', async () => {
    const active = await createTestUser(app.db.sql, { roles: ['student'] });
    const both = await createTestUser(app.db.sql, { roles: ['student', 'staff'], password: null });
    await app.db.sql`update users set status = 'pending' where id = ${both.id}`;
    const cases: [string, TestUser, number][] = [
      [`/students/${active.id}/invitation`, registrar, 409],
      [`/students/${both.id}/invitation`, registrar, 403],
      [`/students/${admin.id}/invitation`, registrar, 404],
      ['/students/00000000-0000-4000-8000-000000000000/invitation', registrar, 404],
      [`/students/${active.id}/invitation`, instructor, 403],
      [`/users/${both.id}/invitation`, registrar, 403],
      ['/students/not-an-id/invitation', registrar, 400],
    ];
    for (const [path, caller, status] of cases) {
      const response = await send('POST', path, { as: caller });
      expect([path, response.status]).toEqual([path, status]);
    }
    expect((await send('POST', `/users/${both.id}/invitation`, { as: admin })).status).toBe(202);
    expect(await messagesTo(app.db.sql, 'account_invitation', active.email)).toEqual([]);
  });
});

describe('forgot password', () => {
  test('known and unknown addresses get the same answer; only the known one gets a link', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const known = await requestReset(user.email);
    const unknown = await requestReset(`nobody-${Date.now()}@example.test`);
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(202);
    expect(await known.json()).toEqual(await unknown.json());
    expect(await messagesTo(app.db.sql, 'password_reset', user.email)).toHaveLength(1);
    // A second request within the minute sends nothing more, and still answers the same.
    expect((await requestReset(user.email)).status).toBe(202);
    expect(await messagesTo(app.db.sql, 'password_reset', user.email)).toHaveLength(1);
  });

  test('the reset ends every session and replaces the password', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const before = (await (await signIn(user.email, TEST_PASSWORD)).json()) as { refreshToken: string };
    await requestReset(user.email);
    const token = linkTokenIn((await messagesTo(app.db.sql, 'password_reset', user.email))[0], SET_PASSWORD);
    expect((await setPassword(token)).status).toBe(200);
    expect((await post('/auth/refresh', { refreshToken: before.refreshToken })).status).toBe(401);
    expect((await signIn(user.email, TEST_PASSWORD)).status).toBe(401);
    expect((await signIn(user.email, NEW_PASSWORD)).status).toBe(200);
  });

  test('a locked account gets no link, and a link issued before the lock no longer works', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    await requestReset(user.email);
    const token = linkTokenIn((await messagesTo(app.db.sql, 'password_reset', user.email))[0], SET_PASSWORD);
    expect((await send('PATCH', `/users/${user.id}`, { as: admin, body: { status: 'locked' } })).status).toBe(200);
    expect((await setPassword(token)).status).toBe(400);
    expect(await statusOf(user.id)).toBe('locked');
    await app.db
      .sql`update one_time_tokens set issued_at = issued_at - interval '2 minutes' where user_id = ${user.id}`;
    expect((await requestReset(user.email)).status).toBe(202);
    expect(await messagesTo(app.db.sql, 'password_reset', user.email)).toHaveLength(1);
  });

  test('tokens that are not ours, and bodies that are wrong, are refused with the field named', async () => {
    const cases: [unknown, string][] = [
      [{ token: 'x'.repeat(43), password: NEW_PASSWORD }, 'body.token'],
      [{ token: "' or 1=1 --", password: NEW_PASSWORD }, 'body.token'],
      [{ token: 42, password: NEW_PASSWORD }, 'body.token'],
      [{ token: 'x'.repeat(43) }, 'body.password'],
      [{ token: 'x'.repeat(43), password: NEW_PASSWORD, admin: true }, 'body'],
    ];
    for (const [body, field] of cases) {
      const response = await post('/auth/password-reset', body);
      expect(response.status).toBe(400);
      const problem = (await response.json()) as { errors?: { field: string }[] };
      expect(problem.errors?.map((error) => error.field).some((f) => f.startsWith(field))).toBe(true);
    }
  });

  test('one source asking too often is told to wait', async () => {
    const source = newSource();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await requestReset(`flood-${i}@example.test`, source)).status);
    expect(statuses.slice(0, 10).every((status) => status === 202)).toBe(true);
    expect(statuses[10]).toBe(429);
  });
});
