// The portal flow in a real browser (headless Chromium, Debian's package): a page on another origin that is
// in CORS_ALLOWED_ORIGINS signs in with cookies, reads /auth/me, changes it with the CSRF header (a
// PATCH, which Chromium sends only if the preflight lists it), is refused without the header, renews
// the session and signs out. What curl cannot show: the browser's own CORS, cookie and preflight rules.
// The portal is http://127.0.0.1:<another port>: another origin, but the same site as the API, so the
// SameSite=Strict cookies go along (a page on http://localhost would be another site and send none).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import {
  type RecordedPage,
  requestsOffLoopback,
  type StaticOrigin,
  serveStaticPages,
  skipBrowserTests,
  useBrowser,
} from './helpers/browser';
import { TEST_PASSWORD } from './helpers/users';

let portal: StaticOrigin;
// Before the app starts: its configuration must already name the portal's origin.
beforeAll(async () => {
  portal = await serveStaticPages({
    '/portal.html': readFileSync(path.join(__dirname, 'fixtures', 'portal.html'), 'utf8'),
  });
  process.env.CORS_ALLOWED_ORIGINS = portal.origin;
});
afterAll(async () => {
  await portal?.close();
});

const app = useTestApp();
const browser = useBrowser();

type Portal = {
  signIn(email: string, password: string): Promise<string>;
  loadProfile(): Promise<string>;
  rename(firstName: string, options?: { csrf?: boolean }): Promise<string>;
  refresh(): Promise<string>;
  signOut(): Promise<string>;
  readableCookies(): string[];
};

/** Calls one of the page's portal actions and returns what #status then shows the user. */
async function act<K extends keyof Portal>(
  { page }: RecordedPage,
  action: K,
  ...args: Parameters<Portal[K]>
): Promise<string> {
  await page.evaluate(
    (name, callArgs) =>
      (globalThis as unknown as { portal: Record<string, (...a: unknown[]) => unknown> }).portal[name]?.(...callArgs),
    action,
    args as unknown[],
  );
  return page.$eval('#status', (element) => element.textContent ?? '');
}

describe.skipIf(skipBrowserTests)('the portal in Chromium', () => {
  test('signs in with cookies, reads and changes the profile with the CSRF header, renews, signs out', async () => {
    const { createTestUser } = await import('./helpers/users');
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Ada', lastName: 'Lovelace' });
    const tab = await browser.newPage();
    await tab.page.goto(`${portal.origin}/portal.html?api=${encodeURIComponent(app.url)}`);

    expect(await act(tab, 'signIn', user.email, TEST_PASSWORD)).toBe('Signed in as Ada Lovelace');
    // The tokens are HttpOnly: the page's script sees only the CSRF cookie (same host, another port).
    const readable = await tab.page.evaluate(() =>
      (globalThis as unknown as { portal: Portal }).portal.readableCookies(),
    );
    expect(readable).toEqual(['__Host-aada-csrf']);
    expect(await act(tab, 'loadProfile')).toBe('Profile: Ada Lovelace');

    // A PATCH from another origin: Chromium sends it only after a preflight that lists PATCH.
    expect(await act(tab, 'rename', 'Augusta')).toBe('Saved: Augusta Lovelace');
    expect(await act(tab, 'rename', 'Byron', { csrf: false })).toBe('Not saved (403): Missing or wrong CSRF token');
    expect(await act(tab, 'loadProfile')).toBe('Profile: Augusta Lovelace');

    expect(await act(tab, 'refresh')).toBe('Session renewed');
    // The renewed CSRF token is the one the next change needs.
    expect(await act(tab, 'rename', 'Ada')).toBe('Saved: Ada Lovelace');

    expect(await act(tab, 'signOut')).toBe('Signed out');
    expect(await act(tab, 'loadProfile')).toBe('Not signed in: Sign in to continue');
    expect(await act(tab, 'refresh')).toMatch(/^Session not renewed \(401\)/);

    const [stored] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from refresh_tokens where user_id = ${user.id} and revoked_at is null`;
    expect(stored?.n).toBe(0);
    expect(requestsOffLoopback(tab.requests)).toEqual([]);
    // The browser logs the refused requests (401, 403) it was asked to make; nothing else went wrong.
    expect(tab.errors.filter((message) => !/status of (401|403)/.test(message))).toEqual([]);
  });
});
