// A mutation and its audit row commit together or not at all. The audit insert is made to fail for
// one marked request (a trigger this file creates in its own database, raising for one user agent):
// the change must then be rolled back and the client told to retry, while unmarked requests work.
// Also: a refused request is still recorded, a PHI read whose row fails is withheld, and what sign-in
// throttling and refresh-token reuse detection record survives the refusal of the request.
import { beforeAll, describe, expect, test } from 'vitest';
import { emailBlindIndex } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const app = useTestApp();

/** Requests sent with this user agent get no audit row: the trigger below raises for them. */
const MARKED = 'audit-fault-test/1.0';

let registrar: TestUser;

beforeAll(async () => {
  await app.db.sql.unsafe(`
    create function test_refuse_marked_audit() returns trigger language plpgsql as $$
    begin
      if new.user_agent = '${MARKED}' then raise exception 'audit row refused for the test'; end if;
      return new;
    end $$;
    create trigger test_refuse_marked_audit before insert on audit_log
      for each row execute function test_refuse_marked_audit();`);
  registrar = await createTestUser(app.db.sql, { roles: ['registrar'] });
});

/** The toolkit's send, with a user agent: the refusing trigger (above) picks requests out by it. */
const sendAs = (method: string, path: string, user: TestUser, body?: unknown, userAgent = 'vitest') =>
  send(method, path, { as: user, body, headers: { 'user-agent': userAgent } });

async function studentsWithEmail(email: string): Promise<number> {
  const [row] = await app.db.sql<{ n: number }[]>`
    select count(*)::int as n from users where email_blind_index = ${emailBlindIndex(email)}`;
  return row?.n ?? 0;
}

const newStudent = (tag: string) => ({
  email: `atomic-${tag}-${Date.now()}@example.test`,
  firstName: 'Ada',
  lastName: 'Atomic',
});

describe('a mutation whose audit row cannot be written', () => {
  test('POST /students answers 503 with Retry-After and the student does not exist', async () => {
    const student = newStudent('refused');
    const response = await sendAs('POST', '/students', registrar, student, MARKED);
    expect(response.status).toBe(503);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    const problem = (await response.json()) as { detail: string };
    expect(problem.detail).toMatch(/nothing was changed/);
    expect(await studentsWithEmail(student.email)).toBe(0);
  });

  test('the same request unmarked creates the student, with its audit row', async () => {
    const student = newStudent('recorded');
    const response = await sendAs('POST', '/students', registrar, student);
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    expect(await studentsWithEmail(student.email)).toBe(1);
    const rows = await app.db.sql`
      select status from audit_log where route = 'students' and method = 'POST' and resource_ids ->> 'id' = ${id}`;
    expect(rows.map((row) => row.status)).toEqual([201]);
  });

  test('PATCH /auth/me answers 503 and the name is unchanged; unmarked, it changes', async () => {
    const me = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Before' });
    const refused = await sendAs('PATCH', '/auth/me', me, { firstName: 'After' }, MARKED);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    const unchanged = (await (await sendAs('GET', '/auth/me', me)).json()) as { firstName: string };
    expect(unchanged.firstName).toBe('Before');

    const accepted = await sendAs('PATCH', '/auth/me', me, { firstName: 'After' });
    expect(accepted.status).toBe(200);
    const changed = (await (await sendAs('GET', '/auth/me', me)).json()) as { firstName: string };
    expect(changed.firstName).toBe('After');
  });

  test('a PHI read whose audit row fails is withheld', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'], lastName: 'Withheld' });
    const response = await sendAs('GET', `/students/${student.id}`, registrar, undefined, MARKED);
    expect(response.status).toBe(503);
    expect(await response.text()).not.toContain('Withheld');
  });
});

describe('reads in flight together share their audit commits', () => {
  // Each request id the local host gives a response is in its X-Request-Id header.
  const readMe = (userAgent = 'vitest') => sendAs('GET', '/auth/me', registrar, undefined, userAgent);
  const requestIdOf = (response: Response) => response.headers.get('x-request-id') ?? '';

  test('every row is committed before its response arrives, in fewer commits than requests', async () => {
    const requests = 24;
    const responses = await Promise.all(
      Array.from({ length: requests }, async () => {
        const response = await readMe();
        // Checked the moment this response arrives: its row must already be durable.
        const [row] = await app.db.sql<{ xmin: string }[]>`
          select xmin::text from audit_log where request_id = ${requestIdOf(response)}`;
        return { status: response.status, xmin: row?.xmin };
      }),
    );
    expect(responses.every((r) => r.status === 200 && r.xmin !== undefined)).toBe(true);
    // Rows written by one insert share its transaction id.
    expect(new Set(responses.map((r) => r.xmin)).size).toBeLessThan(requests);
  });

  test('a row that cannot be written fails only its own request, not the others in its batch', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'], lastName: 'Batched' });
    const agents = Array.from({ length: 12 }, (_, i) => (i === 5 ? MARKED : `vitest-batch-${i}`));
    const responses = await Promise.all(
      agents.map((agent) => sendAs('GET', `/students/${student.id}`, registrar, undefined, agent)),
    );
    expect(responses.map((r) => r.status)).toEqual(agents.map((agent) => (agent === MARKED ? 503 : 200)));
    const ids = responses.filter((r) => r.status === 200).map(requestIdOf);
    const [row] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from audit_log where request_id = any(${ids})`;
    expect(row?.n).toBe(11);
  });
});

describe('a refused mutation', () => {
  test('rolls back and is recorded on its own with its status', async () => {
    const student = newStudent('duplicate');
    expect((await sendAs('POST', '/students', registrar, student)).status).toBe(201);
    const again = await sendAs('POST', '/students', registrar, student, 'duplicate-attempt');
    expect(again.status).toBe(409);
    expect(await studentsWithEmail(student.email)).toBe(1);
    const rows = await app.db.sql`
      select status from audit_log where route = 'students' and user_agent = 'duplicate-attempt'`;
    expect(rows.map((row) => row.status)).toEqual([409]);
  });

  test('a failed sign-in still counts as a failure, and its audit row says so', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const response = await app.api('/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'failed-login-test' },
      body: JSON.stringify({ email: user.email, password: `${TEST_PASSWORD}-wrong` }),
    });
    expect(response.status).toBe(401);
    const attempts = await app.db.sql`
      select success from login_attempts where account_key = ${emailBlindIndex(user.email)}`;
    expect(attempts.map((row) => row.success)).toEqual([false]);
    const audit = await app.db.sql`
      select status, event from audit_log where route = 'auth/login' and user_agent = 'failed-login-test'`;
    expect(audit).toEqual([{ status: 401, event: 'login_failed' }]);
  });

  test('a reused refresh token is refused and its family stays revoked', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const post = (path: string, body: unknown) =>
      app.api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const login = await post('/auth/login', { email: user.email, password: TEST_PASSWORD, client: 'tool' });
    expect(login.status).toBe(200);
    const first = ((await login.json()) as { refreshToken: string }).refreshToken;
    const rotated = await post('/auth/refresh', { refreshToken: first });
    expect(rotated.status).toBe(200);
    const second = ((await rotated.json()) as { refreshToken: string }).refreshToken;

    expect((await post('/auth/refresh', { refreshToken: first })).status).toBe(401);
    // The reuse revoked the whole family: the token rotated to a moment ago is dead too.
    expect((await post('/auth/refresh', { refreshToken: second })).status).toBe(401);
    const [row] = await app.db.sql`
      select count(*)::int as live from refresh_tokens where user_id = ${user.id} and revoked_at is null`;
    expect(row?.live).toBe(0);
  });
});
