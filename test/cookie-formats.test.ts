// Fixed vectors of the session cookies (split from test/stored-formats.test.ts, which needs no app): the exact
// Set-Cookie lines of a browser sign-in and of a sign-out, as literals. Portals depend on the names
// (`__Host-`/`__Secure-` prefixes), paths, lifetimes and attributes.
import { describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { createTestUser, TEST_PASSWORD } from './helpers/users';

const CLIENTS = 'clients depend on this: changing it breaks every deployed portal and tool';

describe('session cookies of a browser sign-in', () => {
  const app = useTestApp();
  /** Each Set-Cookie line with its value replaced by `<value>`, and the values by name. */
  const cookiesOf = (response: Response) => {
    const lines = response.headers.getSetCookie();
    const values = new Map(lines.map((line) => line.split(';')[0]!.split(/=(.*)/s).slice(0, 2) as [string, string]));
    return { lines: lines.map((line) => line.replace(/^([^=]+)=[^;]*/, '$1=<value>')), values };
  };

  test('names, paths, lifetimes and attributes are exactly these', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const signIn = await app.api('/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: user.email, password: TEST_PASSWORD }),
    });
    expect(signIn.status).toBe(200);
    const { lines, values } = cookiesOf(signIn);
    expect(lines.sort(), CLIENTS).toEqual([
      '__Host-aada-access=<value>; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict',
      '__Host-aada-csrf=<value>; Path=/; Max-Age=604800; Secure; SameSite=Strict',
      '__Host-aada-device=<value>; Path=/; Max-Age=15552000; HttpOnly; Secure; SameSite=Strict',
      '__Secure-aada-refresh=<value>; Path=/api/auth; Max-Age=604800; HttpOnly; Secure; SameSite=Strict',
    ]);
    const body = (await signIn.json()) as {
      accessToken: string;
      tokenType: string;
      expiresIn: number;
      csrfToken: string;
    };
    expect({ tokenType: body.tokenType, expiresIn: body.expiresIn }, CLIENTS).toEqual({
      tokenType: 'Bearer',
      expiresIn: 900,
    });
    expect(values.get('__Host-aada-access'), CLIENTS).toBe(body.accessToken);
    expect(values.get('__Host-aada-csrf'), CLIENTS).toBe(body.csrfToken);

    const signOut = await app.api('/auth/logout', {
      method: 'POST',
      headers: {
        Cookie: [...values].map(([name, value]) => `${name}=${value}`).join('; '),
        'X-CSRF-Token': body.csrfToken,
      },
    });
    expect(signOut.status).toBe(204);
    expect(cookiesOf(signOut).lines.sort(), CLIENTS).toEqual([
      '__Host-aada-access=<value>; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
      '__Host-aada-csrf=<value>; Path=/; Max-Age=0; Secure; SameSite=Strict',
      '__Secure-aada-refresh=<value>; Path=/api/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict',
    ]);
    expect([...cookiesOf(signOut).values.values()], CLIENTS).toEqual(['', '', '']);
  });
});
