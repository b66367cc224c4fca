// A lesson's `(H5P: key)` placeholders resolved when the published lesson is read, over HTTP: a key of
// the lesson's own module becomes the activity's embed (listed in `activities`), a key the module has no
// current activity of (never uploaded, retired, another module's or another programme's key) a note
// saying the activity is not available, never a broken page; script fragments in the lesson text and in
// a package's title come out inert; and whoever may not read the lesson sees none of it.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, type TestProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';
import { minimalH5p } from './helpers/zip';

const app = useTestApp();

let program: TestProgram;
let otherProgram: TestProgram;
let instructor: TestUser;
let otherInstructor: TestUser;
let student: TestUser;
let outsider: TestUser;

beforeAll(async () => {
  const sql = app.db.sql;
  const accounts = await createRoleAccounts(sql);
  program = await createProgram(sql, { hours: [10, 10, 10] });
  otherProgram = await createProgram(sql, { hours: [10] });
  instructor = accounts.instructor;
  await assignInstructor(sql, instructor.id, program.programId);
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  await assignInstructor(sql, otherInstructor.id, otherProgram.programId);
  student = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, student.id, program.programId);
  outsider = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, outsider.id, otherProgram.programId);
});

const moduleAt = (index: number) => program.moduleIds[index] as string;

async function uploadActivity(moduleId: string, key: string, title: string, as = instructor) {
  const response = await app.api(`/modules/${moduleId}/h5p/${key}`, {
    method: 'PUT',
    headers: { ...as.headers, 'Content-Type': 'application/zip' },
    body: minimalH5p(title),
  });
  expect(response.status, await response.clone().text()).toBe(201);
}

async function publishLesson(moduleId: string, markdown: string, as = instructor) {
  const saved = await send('POST', `/modules/${moduleId}/lesson/versions`, { as, body: { title: 'Lesson', markdown } });
  expect(saved.status, await saved.clone().text()).toBe(201);
  const { version } = (await saved.json()) as { version: number };
  expect((await send('POST', `/modules/${moduleId}/lesson/publication`, { as, body: { version } })).status).toBe(200);
}

interface Lesson {
  html: string;
  activities: { activityKey: string; available: boolean; title?: string; href?: string }[];
}

async function readLesson(moduleId: string, as: TestUser = student): Promise<Lesson> {
  const response = await send('GET', `/modules/${moduleId}/lesson`, { as });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Lesson;
}

/** Nothing in the HTML a browser would run: no script-capable element, no event attribute, no javascript: address. */
function expectInert(html: string) {
  expect(html).not.toMatch(/<(script|object|embed|svg|math|style|base|form|meta|link)\b/i);
  // The tags with their quoted values taken out (text and escaped values may say anything).
  const tags = [...html.matchAll(/<[a-z][^>]*>/gi)].map((tag) => tag[0].replace(/"[^"]*"/g, '""'));
  for (const tag of tags) expect(tag).not.toMatch(/\son[a-z]+\s*=|javascript:|srcdoc/i);
  const iframes = tags.filter((tag) => /^<iframe/i.test(tag));
  for (const iframe of iframes) expect(iframe).toMatch(/\ssandbox="/);
}

describe('placeholders in the published lesson', () => {
  test("a key of the lesson's module is embedded and listed; unknown and retired keys get a note", async () => {
    const moduleId = moduleAt(0);
    await uploadActivity(moduleId, 'glove-order', 'Putting on gloves');
    await uploadActivity(moduleId, 'retired-one', 'Soon gone');
    expect((await send('DELETE', `/modules/${moduleId}/h5p/retired-one`, { as: instructor })).status).toBe(204);
    await publishLesson(
      moduleId,
      [
        '# Gloves',
        '(H5P: glove-order)',
        'Try it inline: (H5P: `glove-order`) now.',
        '(H5P: no-such-activity)',
        '(H5P: retired-one)',
        'In code it stays text: `(H5P: glove-order)`',
      ].join('\n\n'),
    );
    const lesson = await readLesson(moduleId);
    const href = `/api/modules/${moduleId}/h5p/glove-order`;
    const player = (lesson.activities[0] as { player?: string }).player as string;
    expect(player).toMatch(/^\/api\/h5p-player\/[0-9a-f-]{36}\/\d+\.[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);
    expect(lesson.activities).toEqual([
      { activityKey: 'glove-order', available: true, title: 'Putting on gloves', href, player },
      { activityKey: 'no-such-activity', available: false },
      { activityKey: 'retired-one', available: false },
    ]);
    const frame = `<iframe class="h5p-player" src="${player}" title="Putting on gloves" sandbox="allow-scripts" referrerpolicy="no-referrer" loading="lazy" width="100%" height="480"></iframe>`;
    expect(lesson.html).toContain(
      `<div class="h5p-embed" data-h5p-activity="glove-order" data-h5p-title="Putting on gloves" data-h5p-href="${href}">${frame}</div>`,
    );
    expect(lesson.html).toContain(
      `<p>Try it inline: <span class="h5p-embed" data-h5p-activity="glove-order" data-h5p-title="Putting on gloves" data-h5p-href="${href}">${frame}</span> now.</p>`,
    );
    // The player page it frames opens without any credential (the grant is one).
    expect((await app.api(player.replace(/^\/api/, ''))).status).toBe(200);
    expect(lesson.html).toContain(
      '<div class="h5p-embed h5p-unavailable" data-h5p-activity="no-such-activity">The activity “no-such-activity” is not available.</div>',
    );
    expect(lesson.html).toContain('data-h5p-activity="retired-one">The activity “retired-one” is not available.');
    expect(lesson.html).toContain('<code>(H5P: glove-order)</code>');
    // The href the lesson gives opens the activity for the student who reads it.
    expect((await send('GET', href.replace(/^\/api/, ''), { as: student })).status).toBe(200);
  });

  test("a key of another module or another programme is not a way into that content: it is 'not available'", async () => {
    // The keys exist, in module 3 of this programme and in the other programme.
    await uploadActivity(otherProgram.moduleIds[0] as string, 'other-programme', 'Not yours', otherInstructor);
    const moduleId = moduleAt(1);
    await publishLesson(moduleId, ['(H5P: sterilising)', '(H5P: other-programme)'].join('\n\n'));
    await uploadActivity(moduleAt(2), 'sterilising', 'Module three only');
    const lesson = await readLesson(moduleId);
    expect(lesson.activities).toEqual([
      { activityKey: 'sterilising', available: false },
      { activityKey: 'other-programme', available: false },
    ]);
    expect(lesson.html).not.toContain('Module three only');
    expect(lesson.html).not.toContain('Not yours');
    expect(lesson.html).not.toContain(otherProgram.moduleIds[0] as string);
    expect(lesson.html).not.toContain(moduleAt(2));
    // The student of the other programme reads neither this lesson nor its activities.
    expect((await send('GET', `/modules/${moduleId}/lesson`, { as: outsider })).status).toBe(404);
  });

  test('script fragments around and inside markers, and in a package title, come out inert', async () => {
    const moduleId = moduleAt(2);
    await uploadActivity(moduleId, 'autoclave', 'Using the autoclave');
    await uploadActivity(moduleId, 'xss-title', '"><img src=x onerror=alert(1)><script>alert(2)</script>');
    await publishLesson(
      moduleId,
      [
        '(H5P: xss-title)',
        '(H5P: autoclave<script>alert(1)</script>)',
        '(H5P: "><img src=x onerror=alert(1)>)',
        '(H5P: ../../h5p-assets/x)',
        '(H5P: autoclave" onmouseover="alert(1))',
        '<div class="h5p-embed" data-h5p-activity="autoclave" onclick="alert(1)"></div>',
        '<span class="h5p-embed" data-h5p-activity="autoclave"><script>alert(3)</script></span>',
        '<script>document.write("(H5P: autoclave)")</script>',
        '(H5P: autoclave)<img src=x onerror=alert(4)>',
      ].join('\n\n'),
    );
    const lesson = await readLesson(moduleId);
    expectInert(lesson.html);
    expect(lesson.html).toContain(
      'data-h5p-title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;"',
    );
    // Only well-formed keys of this module resolve; nothing else names a path or an id.
    expect(lesson.activities.map((activity) => activity.activityKey).sort()).toEqual(['autoclave', 'xss-title']);
    expect(lesson.activities.every((activity) => activity.available)).toBe(true);
    const named = [...lesson.html.matchAll(/data-h5p-activity="([^"]*)"/g)].map((match) => match[1]);
    expect(new Set(named)).toEqual(new Set(['autoclave', 'xss-title']));
    const hrefs = [...lesson.html.matchAll(/data-h5p-href="([^"]*)"/g)].map((match) => match[1]);
    for (const href of hrefs) expect(href).toMatch(new RegExp(`^/api/modules/${moduleId}/h5p/(autoclave|xss-title)$`));
    // What was not a well-formed marker is left as the text it was.
    expect(lesson.html).toContain('<p>(H5P: ../../h5p-assets/x)</p>');
  });

  test('a lesson without markers is unchanged and lists no activities', async () => {
    const moduleId = program.moduleIds[0] as string;
    const versions = await send('POST', `/modules/${moduleId}/lesson/versions`, {
      as: instructor,
      body: { title: 'Plain', markdown: 'No activity here: (H5P) and (H5P: ) and H5P: x.' },
    });
    const { version, html } = (await versions.json()) as { version: number; html: string };
    await send('POST', `/modules/${moduleId}/lesson/publication`, { as: instructor, body: { version } });
    const lesson = await readLesson(moduleId);
    expect(lesson.activities).toEqual([]);
    expect(lesson.html).toBe(html);
  });
});
