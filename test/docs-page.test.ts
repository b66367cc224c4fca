// The docs page at /api/docs: Swagger UI served by the API from its npm package, offline. Over HTTP: the
// page's strict CSP, its fingerprinted assets cached for a year, unknown assets a 404. In headless
// Chromium: every operation of the OpenAPI document is rendered (scrolling through Swagger UI's virtual
// list), and no request leaves the loopback (and the CSP refuses nothing the page needs: no console error).
import { describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { requestsOffLoopback, skipBrowserTests, useBrowser } from './helpers/browser';

const app = useTestApp();
const browser = useBrowser();

/** The asset URLs (relative to the API base) the page links. */
async function linkedAssets(): Promise<string[]> {
  const html = await (await app.api('/docs')).text();
  return [...html.matchAll(/(?:src|href)="\/api(\/docs\/assets\/[^"]+)"/g)].map((match) => match[1] as string);
}

describe('the docs page over HTTP', () => {
  test('is HTML under a CSP that allows only the API’s own origin', async () => {
    const response = await app.api('/docs');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
    expect(await linkedAssets()).toHaveLength(3);
  });

  test('links fingerprinted assets cached for a year; another fingerprint is a 404', async () => {
    for (const asset of await linkedAssets()) {
      const response = await app.api(asset);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(response.headers.get('content-type')).toMatch(/^text\/(javascript|css); charset=utf-8$/);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(100);
    }
    const stale = await app.api('/docs/assets/swagger-ui-bundle.0000000000000000.js');
    expect(stale.status).toBe(404);
    expect(stale.headers.get('cache-control')).toBe('no-store');
    expect((await app.api('/docs/assets/..%2Fpackage.json')).status).toBe(400);
  });
});

describe.skipIf(skipBrowserTests)('the docs page in Chromium', () => {
  // Swagger UI (5.35) virtualises an operations list once it holds about 150 operations: only those near the
  // viewport are in the DOM. So the test scrolls the page to the end, as a reader would, and collects every
  // operation that was rendered on the way.
  test('renders every operation of the OpenAPI document, with no request off the loopback', async () => {
    const document = (await (await app.api('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    const operationIds = Object.values(document.paths).flatMap((methods) =>
      Object.values(methods).map((operation) => operation.operationId),
    );
    expect(operationIds.length).toBeGreaterThan(40);

    const tab = await browser.newPage();
    await tab.page.goto(`${app.url}/docs`);
    // Rendering takes seconds on a machine busy with other test files.
    await tab.page.waitForSelector('.opblock', { timeout: 90_000 });
    const rendered = new Set<string>();
    const paths = new Set<string>();
    for (let atEnd = false, step = 0; !atEnd && step < 2_000; step++) {
      // Let the virtual list render the rows the last scroll brought into view.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const seen = await tab.page.$$eval('.opblock', (elements) =>
        elements.map((element) => ({
          id: element.id,
          path: element.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '',
        })),
      );
      for (const { id, path } of seen) {
        rendered.add(id);
        paths.add(path);
      }
      atEnd = await tab.page.evaluate(() => {
        const view = globalThis as unknown as {
          scrollBy(x: number, y: number): void;
          innerHeight: number;
          scrollY: number;
          document: { documentElement: { scrollHeight: number } };
        };
        const end = view.scrollY + view.innerHeight >= view.document.documentElement.scrollHeight - 2;
        view.scrollBy(0, view.innerHeight / 2);
        return end;
      });
    }
    // Swagger UI names each operation's block `operations-<tag>-<operationId>`.
    const missing = operationIds.filter((operationId) => ![...rendered].some((id) => id.endsWith(`-${operationId}`)));
    expect(missing).toEqual([]);
    expect(rendered.size).toBe(operationIds.length);
    expect(paths).toContain('/api/students/{id}');
    expect(paths).toContain('/api/docs');

    expect(tab.requests.some((url) => url.includes('/docs/assets/swagger-ui-bundle.'))).toBe(true);
    expect(tab.requests.some((url) => url.endsWith('/api/openapi.json'))).toBe(true);
    expect(requestsOffLoopback(tab.requests)).toEqual([]);
    // A CSP refusal or a script error would be logged here.
    expect(tab.errors).toEqual([]);
  }, 120_000);

  // "Try it out" with cookie sign-in: an unsafe request must carry the CSRF header, as the portals send it,
  // or the API refuses it with a 403. The page's request interceptor echoes the CSRF cookie.
  test('"Try it out" changes data with cookie sign-in: the page sends the CSRF header', async () => {
    const { createTestUser, TEST_PASSWORD } = await import('./helpers/users');
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Grace', lastName: 'Hopper' });
    const tab = await browser.newPage();
    await tab.page.goto(`${app.url}/docs`);
    const signedIn = await tab.page.evaluate(
      async (email, password) =>
        (
          await fetch('/api/auth/login', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ email, password }),
          })
        ).status,
      user.email,
      TEST_PASSWORD,
    );
    expect(signedIn).toBe(200);

    // The operation's block (PATCH auth/me): scrolled to, since the virtual list renders only rows in view.
    const block = '#operations-auth-auth-me-update';
    await tab.page.waitForSelector('.opblock', { timeout: 90_000 });
    for (let step = 0; step < 400 && !(await tab.page.$(block)); step++) {
      await tab.page.evaluate(() =>
        (globalThis as unknown as { scrollBy(x: number, y: number): void }).scrollBy(0, 300),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await tab.page.$eval(block, (element) => (element as unknown as { scrollIntoView(): void }).scrollIntoView());
    await tab.page.click(`${block} .opblock-summary`);
    // Swagger UI renders the opened operation after the click: wait for its button, do not race it.
    await (await tab.page.waitForSelector(`${block} .try-out__btn`))?.click();
    const body = `${block} textarea.body-param__text`;
    await tab.page.waitForSelector(body);
    await tab.page.$eval(body, (element) => {
      (element as unknown as { value: string }).value = '';
    });
    await tab.page.type(body, '{"firstName": "Amazing"}');
    await tab.page.click(`${block} .execute`);
    const status = `${block} .live-responses-table tr.response .response-col_status`;
    await tab.page.waitForSelector(status, { timeout: 30_000 });
    expect((await tab.page.$eval(status, (element) => element.textContent ?? '')).trim()).toBe('200');

    // The change is stored: the profile, read again with the same cookies, has the new name.
    const firstName = await tab.page.evaluate(
      async () => ((await (await fetch('/api/auth/me')).json()) as { firstName: string }).firstName,
    );
    expect(firstName).toBe('Amazing');
    expect(tab.errors).toEqual([]);
  }, 120_000);
});
