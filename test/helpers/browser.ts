// The one way tests drive a real browser: Debian's Chromium (never a downloaded build), headless, through
// puppeteer-core over the DevTools protocol. A test file calls useBrowser() and skips itself with
// `describe.skipIf(skipBrowserTests)` when the browser is missing, saying so once (CHROMIUM_MISSING).
// Every request a page makes is recorded, so a test can show that nothing left the loopback.
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll } from 'vitest';

/** Where Debian's `chromium` package puts the browser; CHROMIUM_PATH overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const chromiumInstalled = existsSync(CHROMIUM_PATH);
/** CI installs Chromium (.ci/run): there a missing browser fails the browser tests instead of skipping them. */
export const skipBrowserTests = !chromiumInstalled && !process.env.CI;
export const CHROMIUM_MISSING =
  `Chromium is not installed at ${CHROMIUM_PATH}: the browser tests are ${process.env.CI ? 'failed (CI)' : 'skipped'}. ` +
  'Install it with `apt-get install -y chromium` (Debian; .ci/run does) or set CHROMIUM_PATH.';

if (!chromiumInstalled) console.warn(CHROMIUM_MISSING);

/**
 * Flags for a quiet, offline-minded headless run: no background networking (component updates, safe
 * browsing, sync, metrics) so the recorded requests are the page's own. `--no-sandbox` only as root,
 * where Chromium refuses to start with its sandbox (CI runs as root).
 */
function chromiumArgs(): string[] {
  return [
    '--headless=new',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-default-apps',
    '--disable-sync',
    '--disable-extensions',
    '--metrics-recording-only',
    '--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions',
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
  ];
}

export interface BrowserUnderTest {
  /** A page with no cookies yet (the first tab, then fresh contexts); its requests are recorded in `requests`. */
  newPage(): Promise<RecordedPage>;
}

export interface RecordedPage {
  page: Page;
  /** Every URL the page requested (documents, scripts, styles, images, fonts, fetches), in order. */
  requests: string[];
  /** Messages the page's console printed at error level, and uncaught page errors. */
  errors: string[];
}

/** Starts one Chromium for the test file (before its tests) and closes it after them. */
export function useBrowser(): BrowserUnderTest {
  let browser: Browser | undefined;
  let pagesHandedOut = 0;
  beforeAll(async () => {
    if (skipBrowserTests) return;
    if (!chromiumInstalled) throw new Error(CHROMIUM_MISSING);
    browser = await puppeteer.launch({ executablePath: CHROMIUM_PATH, headless: true, args: chromiumArgs() });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });
  return {
    async newPage() {
      if (!browser) throw new Error(CHROMIUM_MISSING);
      // The tab Chromium opened at launch first (its renderer is already up: a new one costs seconds
      // on a busy machine), then new tabs in fresh contexts, each with its own cookie jar.
      const first = pagesHandedOut++ === 0 ? (await browser.pages())[0] : undefined;
      const page = first ?? (await (await browser.createBrowserContext()).newPage());
      const recorded: RecordedPage = { page, requests: [], errors: [] };
      page.on('request', (request) => recorded.requests.push(request.url()));
      page.on('console', (message) => {
        if (message.type() === 'error') recorded.errors.push(message.text());
      });
      page.on('pageerror', (error) => recorded.errors.push(String(error)));
      return recorded;
    },
  };
}

/** The requests of a page that went anywhere but the loopback (data: and blob: URLs stay in the page). */
export function requestsOffLoopback(requests: readonly string[]): string[] {
  return requests.filter((url) => {
    const { protocol, hostname } = new URL(url);
    if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return false;
    return !['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
  });
}

export interface StaticOrigin {
  /** `http://127.0.0.1:PORT`: another origin than the API's (another port), on the same site. */
  origin: string;
  close(): Promise<void>;
}

/** Serves fixed HTML pages (path → document) on a second loopback origin, as a portal would be. */
export async function serveStaticPages(pages: Record<string, string>): Promise<StaticOrigin> {
  const server = http.createServer((request, response) => {
    const page = pages[new URL(request.url ?? '/', 'http://x').pathname];
    response.writeHead(page === undefined ? 404 : 200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
    });
    response.end(page ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
