// An access token stops working when its session ends — logout, deactivation, a role change — not
// 15 minutes later (the old system's defect 18). Each instance re-reads the ended sessions every
// SESSION_REVOCATION_POLL_SECONDS; 0 here, so the effect is immediate.
import { describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const app = useTestApp({ env: { SESSION_REVOCATION_POLL_SECONDS: '0' } });

interface Session {
  accessToken: string;
  refreshToken: string;
}

async function signIn(user: TestUser): Promise<Session> {
  const response = await app.api('/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: user.email, password: TEST_PASSWORD, client: 'tool' }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Session;
}

const me = (session: Session) =>
  app.api('/auth/me', { headers: { Authorization: `Bearer ${session.accessToken}` } }).then((r) => r.status);

describe('ended sessions', () => {
  test('after logout the access token of that session is refused; another session lives on', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const [phone, laptop] = [await signIn(user), await signIn(user)];
    expect(await me(phone)).toBe(200);
    const logout = await app.api('/auth/logout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: phone.refreshToken }),
    });
    expect(logout.status).toBe(204);
    expect(await me(phone)).toBe(401);
    expect(await me(laptop)).toBe(200);
  });

  test('deactivating an account or changing its roles ends its live access tokens', async () => {
    const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
    const deactivated = await createTestUser(app.db.sql, { roles: ['staff'] });
    const promoted = await createTestUser(app.db.sql, { roles: ['staff'] });
    const [a, b] = [await signIn(deactivated), await signIn(promoted)];
    expect([await me(a), await me(b)]).toEqual([200, 200]);

    const post = (path: string, method = 'POST') => app.api(path, { method, headers: admin.headers });
    expect((await post(`/users/${deactivated.id}/deactivate`)).status).toBe(200);
    expect((await post(`/users/${promoted.id}/roles/registrar`, 'PUT')).status).toBe(204);
    expect([await me(a), await me(b)]).toEqual([401, 401]);
  });
});
