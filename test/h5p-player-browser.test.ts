// The H5P player in a real browser (headless Chromium, Debian's package): a portal page on another origin
// shows a published lesson whose `(H5P: glove-order)` became the player page in a sandboxed frame; the
// player (h5p-standalone, served by the API) loads the demo package (dev/demo-h5p) through its signed
// addresses and renders the question, which answers a click. The frame runs in an opaque origin (it
// cannot read the API's cookies), and nothing is requested off the loopback. The answer is saved as
// the student's state: reloaded, the activity shows it again; a classmate's frame shows none of it.

import type { Frame, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { demoH5pPackage } from '../dev/demo-h5p';
import { useTestApp } from './helpers/app';
import {
  type RecordedPage,
  requestsOffLoopback,
  type StaticOrigin,
  serveStaticPages,
  skipBrowserTests,
  useBrowser,
} from './helpers/browser';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram } from './helpers/records';
import { createTestUser } from './helpers/users';

let portal: StaticOrigin;
const pages: Record<string, string> = {};
// Before the app starts: its configuration must already name the portal's origin (frame-ancestors).
beforeAll(async () => {
  portal = await serveStaticPages(pages);
  process.env.CORS_ALLOWED_ORIGINS = portal.origin;
});
afterAll(async () => {
  await portal?.close();
});

const app = useTestApp();
const browser = useBrowser();

/** A portal's page showing a lesson's HTML. */
function portalPage(lessonHtml: string): string {
  const apiOrigin = new URL(app.url).origin;
  return `<!doctype html><html><head><link rel="icon" href="data:,"></head><body><main>${lessonHtml.replaceAll('src="/api/', `src="${apiOrigin}/api/`)}</main></body></html>`;
}

/** The page's player frame, once the player is ready (or the reasons it is not). */
async function reopenedFrame(page: Page, recorded?: RecordedPage): Promise<Frame> {
  const frameElement = await page.waitForSelector('iframe.h5p-player');
  const frame = await frameElement?.contentFrame();
  if (!frame) throw new Error('the lesson has no player frame');
  await frame.waitForSelector('body[data-h5p-state="ready"]', { timeout: 30_000 }).catch(async (error) => {
    const body = await frame.$eval('body', (element) => element.outerHTML.slice(0, 2000)).catch(() => '(unreadable)');
    throw new Error(
      `${error}\nerrors: ${recorded?.errors.join('\n')}\nrequests: ${recorded?.requests.join('\n')}\nbody: ${body}`,
    );
  });
  return frame;
}

describe.skipIf(skipBrowserTests)('the H5P player in Chromium', () => {
  test('a lesson shows its activity in a sandboxed frame, rendered from the signed addresses, and it answers', async () => {
    const sql = app.db.sql;
    const program = await createProgram(sql, { hours: [10] });
    const moduleId = program.moduleIds[0] as string;
    const instructor = await createTestUser(sql, { roles: ['instructor'] });
    await assignInstructor(sql, instructor.id, program.programId);
    const student = await createTestUser(sql, { roles: ['student'] });
    await createEnrollment(sql, student.id, program.programId);

    const uploaded = await app.api(`/modules/${moduleId}/h5p/glove-order`, {
      method: 'PUT',
      headers: { ...instructor.headers, 'Content-Type': 'application/zip' },
      body: demoH5pPackage('glove-order'),
    });
    expect(uploaded.status, await uploaded.clone().text()).toBe(201);
    const saved = await send('POST', `/modules/${moduleId}/lesson/versions`, {
      as: instructor,
      body: { title: 'Gloves', markdown: '# Gloves\n\n(H5P: glove-order)\n' },
    });
    const { version } = (await saved.json()) as { version: number };
    await send('POST', `/modules/${moduleId}/lesson/publication`, { as: instructor, body: { version } });
    const lesson = (await (await send('GET', `/modules/${moduleId}/lesson`, { as: student })).json()) as {
      html: string;
    };
    expect(lesson.html).toMatch(
      /<iframe class="h5p-player" src="\/api\/h5p-player\/[^"]+" [^>]*sandbox="allow-scripts"/,
    );

    // The portal puts the lesson's HTML in its page, its addresses on the API's origin.
    pages['/lesson.html'] = portalPage(lesson.html);
    const tab = await browser.newPage();
    await tab.page.goto(`${portal.origin}/lesson.html`);
    const frame = await reopenedFrame(tab.page, tab);
    const question = await frame.waitForSelector('.h5p-aada-quiz-question');
    expect(await question?.evaluate((element) => element.textContent)).toBe('When do you put on new gloves?');
    const answers = await frame.$$eval('.h5p-aada-quiz-answers button', (buttons) => buttons.map((b) => b.textContent));
    expect(answers).toHaveLength(3);

    // Answering saves the state (a POST under the page's grant, which names this student).
    const saving = tab.page.waitForResponse(
      (response) => /\/api\/h5p-state\//.test(response.url()) && response.request().method() === 'POST',
      { timeout: 30_000 },
    );
    await frame.click('.h5p-aada-quiz-answers li:first-child button');
    await frame.waitForSelector('.h5p-aada-quiz[data-answered="correct"]');
    expect(await frame.$eval('.h5p-aada-quiz-feedback', (element) => element.textContent)).toMatch(/^Correct/);
    expect((await saving).status()).toBe(204);

    // An opaque origin: the frame's script can read no cookie of the API's origin.
    const cookies = await frame.$eval('body', (element) => {
      try {
        return element.ownerDocument.cookie;
      } catch {
        return 'refused';
      }
    });
    expect(cookies).toBe('refused');

    // Reloaded, the activity shows the answer given: the page carries the student's saved state.
    await tab.page.reload();
    const reloaded = await reopenedFrame(tab.page);
    await reloaded.waitForSelector('.h5p-aada-quiz[data-answered="correct"]');
    expect(await reloaded.$eval('.h5p-aada-quiz-feedback', (element) => element.textContent)).toMatch(/^Correct/);
    expect(await reloaded.$eval('.h5p-aada-quiz-correct', (element) => element.textContent)).toBe(answers[0]);

    // A classmate's lesson frames the player under their own grant: their page has none of it.
    const classmate = await createTestUser(sql, { roles: ['student'] });
    await createEnrollment(sql, classmate.id, program.programId);
    const theirs = (await (await send('GET', `/modules/${moduleId}/lesson`, { as: classmate })).json()) as {
      html: string;
    };
    expect(theirs.html).not.toBe(lesson.html);
    pages['/classmate.html'] = portalPage(theirs.html);
    const other = await browser.newPage();
    await other.page.goto(`${portal.origin}/classmate.html`);
    const theirFrame = await reopenedFrame(other.page);
    await theirFrame.waitForSelector('.h5p-aada-quiz-question');
    expect(await theirFrame.$('.h5p-aada-quiz[data-answered]')).toBeNull();
    expect(await theirFrame.$('.h5p-aada-quiz-correct')).toBeNull();
    expect(other.errors).toEqual([]);

    // The package came through its signed addresses, the player from the API; nothing left the loopback.
    expect(tab.requests.some((url) => /\/api\/h5p-assets\/[^/]+\/[^/]+\/content\/content\.json$/.test(url))).toBe(true);
    expect(tab.requests.some((url) => /\/api\/h5p-runtime\/[0-9a-f]{16}\/main\.bundle\.js$/.test(url))).toBe(true);
    expect(requestsOffLoopback(tab.requests)).toEqual([]);
    expect(tab.errors).toEqual([]);
  }, 90_000);
});
