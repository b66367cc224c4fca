// Lessons over HTTP: Markdown saved as versions (author, time) and one published explicitly; the HTML
// students get is sanitised (a list of known XSS payloads, each saved as a lesson, leaves no script
// vector), links and images point at the module's file routes, the old `(H5P: id)` marker becomes an
// embed placeholder; the published lesson is cached privately with an ETag (304 on If-None-Match);
// who reads (students of the programme while active or on hold, its instructors, the office) and who
// writes (its instructors, the office); someone else's programme is a 404; ugly input is a 400.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, type TestProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let accounts: RoleAccounts;
let program: TestProgram;
let otherProgram: TestProgram;
let instructor: TestUser;
let otherInstructor: TestUser;
const studentsBy = new Map<string, TestUser>();

interface Version {
  moduleId: string;
  version: number;
  title: string;
  markdown: string;
  html: string;
  createdBy: string;
  createdAt: string;
  published: boolean;
}

beforeAll(async () => {
  const sql = app.db.sql;
  accounts = await createRoleAccounts(sql);
  program = await createProgram(sql, { hours: [10, 10, 10, 10, 10] });
  otherProgram = await createProgram(sql, { hours: [10] });
  instructor = accounts.instructor;
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  await assignInstructor(sql, instructor.id, program.programId);
  await assignInstructor(sql, otherInstructor.id, otherProgram.programId);
  for (const status of ['active', 'on_hold', 'pending', 'completed', 'withdrawn', 'cancelled']) {
    const student = await createTestUser(sql, { roles: ['student'] });
    await createEnrollment(sql, student.id, program.programId, { status });
    studentsBy.set(status, student);
  }
  const outsider = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, outsider.id, otherProgram.programId);
  studentsBy.set('other programme', outsider);
});

const moduleAt = (index: number) => program.moduleIds[index] as string;
const student = (status: string) => studentsBy.get(status) as TestUser;

async function save(moduleId: string, markdown: string, as: TestUser = instructor, title = 'Lesson'): Promise<Version> {
  const response = await send('POST', `/modules/${moduleId}/lesson/versions`, { as, body: { title, markdown } });
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json()) as Version;
}

async function publish(moduleId: string, version: number, as: TestUser = instructor): Promise<Response> {
  return send('POST', `/modules/${moduleId}/lesson/publication`, { as, body: { version } });
}

// ---------------------------------------------------------------------------------------------------
// Sanitising
// ---------------------------------------------------------------------------------------------------

/** Known XSS payloads (OWASP's filter evasion cheat sheet and friends), as raw HTML and as Markdown. */
const XSS_PAYLOADS = [
  '<script>alert(1)</script>',
  '<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>',
  '<img src=x onerror=alert(1)>',
  '<IMG SRC="javascript:alert(1);">',
  '<IMG SRC=JaVaScRiPt:alert(1)>',
  '<IMG SRC=`javascript:alert("x")`>',
  '<img src="jav\tascript:alert(1);">',
  '<img src="jav&#x09;ascript:alert(1);">',
  '<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#49;&#41;>',
  '<a href="javascript:alert(1)">x</a>',
  '<a href="  JaVaScRiPt:alert(1)">x</a>',
  '<a href="&#x6A;avascript:alert(1)">x</a>',
  '<a href="java&#0000009script:alert(1)">x</a>',
  '<a href="vbscript:msgbox(1)">x</a>',
  '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
  '<a href="x" onmouseover="alert(1)">x</a>',
  '<svg onload=alert(1)>',
  '<svg><script>alert(1)</script></svg>',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  '<body onload=alert(1)>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  '<object data="javascript:alert(1)"></object>',
  '<embed src="https://xss.example/x.swf">',
  '<form action="javascript:alert(1)"><button>go</button></form>',
  '<button formaction="javascript:alert(1)">x</button>',
  '<input onfocus=alert(1) autofocus>',
  '<details open ontoggle=alert(1)>',
  '<div style="background:url(javascript:alert(1))">x</div>',
  '<style>@import "https://xss.example/x.css";</style>',
  '<link rel=stylesheet href="https://xss.example/x.css">',
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<base href="https://xss.example/">',
  '<table background="javascript:alert(1)">',
  '<div data-h5p-activity="x" onclick="alert(1)">x</div>',
  '<a href="https://ok.example/" target="_blank" onclick="alert(1)">x</a>',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
  '<template><script>alert(1)</script></template>',
  '<<script>script>alert(1)<</script>/script>',
  '<scr<script>ipt>alert(1)</script>',
  '"><script>alert(1)</script>',
  '[click](javascript:alert(1))',
  '[click](JAVASCRIPT:alert(1))',
  '[click](javascript&#58;alert(1))',
  '[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '![x](javascript:alert(1))',
  '![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)',
  '![x" onerror="alert(1)](x.png)',
  '[x](https://ok.example/"onmouseover="alert(1))',
  '<https://ok.example/" onmouseover="alert(1)>',
  '<javascript:alert(1)>',
];

/** The decoded values of every attribute of every tag in `html`, with the tag names. */
function tagsOf(html: string): { tag: string; attributes: Record<string, string> }[] {
  const decode = (value: string) =>
    value
      .replace(/&#x([0-9a-f]+);?/gi, (_m, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
      .replace(/&#(\d+);?/g, (_m, dec: string) => String.fromCodePoint(Number(dec)))
      .replace(/&colon;/gi, ':')
      .replace(/&tab;/gi, '\t')
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
  return [...html.matchAll(/<([a-zA-Z][\w-]*)([^>]*)>/g)].map((match) => ({
    tag: (match[1] as string).toLowerCase(),
    attributes: Object.fromEntries(
      [...(match[2] as string).matchAll(/([^\s"'=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)].map((a) => [
        (a[1] as string).toLowerCase(),
        decode(a[2] ?? a[3] ?? a[4] ?? ''),
      ]),
    ),
  }));
}

const FORBIDDEN_TAGS = new Set([
  ...['script', 'style', 'iframe', 'object', 'embed', 'svg', 'math', 'form', 'input', 'button', 'textarea'],
  ...['link', 'meta', 'base', 'body', 'template', 'noscript', 'frame', 'frameset', 'applet'],
]);

/** What in `html` could run script or load something from elsewhere: empty when nothing. */
function scriptVectors(html: string): string[] {
  const found: string[] = [];
  for (const { tag, attributes } of tagsOf(html)) {
    if (FORBIDDEN_TAGS.has(tag)) found.push(`<${tag}>`);
    for (const [name, value] of Object.entries(attributes)) {
      if (name.startsWith('on')) found.push(`${tag} ${name}`);
      if (['style', 'srcdoc', 'formaction', 'background', 'action', 'target'].includes(name)) {
        found.push(`${tag} ${name}`);
      }
      if (name === 'href' || name === 'src') {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: browsers drop these inside a scheme
        const bare = value.replace(/[\u0000-\u0020]/g, '').toLowerCase();
        if (/^(javascript|vbscript|data|file):/.test(bare)) found.push(`${tag} ${name}=${value}`);
        if (name === 'src' && !bare.startsWith(`/api/modules/`)) found.push(`${tag} src from elsewhere: ${value}`);
      }
    }
  }
  return found;
}

describe('sanitising', () => {
  test('every known XSS payload is saved and rendered without a script vector', async () => {
    const moduleId = moduleAt(0);
    const results: { payload: string; vectors: string[] }[] = [];
    for (const payload of XSS_PAYLOADS) {
      const saved = await save(moduleId, `Before\n\n${payload}\n\nAfter`);
      results.push({ payload, vectors: scriptVectors(saved.html) });
      // The author's text is kept as written: only the HTML is cleaned.
      expect(saved.markdown).toBe(`Before\n\n${payload}\n\nAfter`);
      expect(saved.html).toContain('Before');
    }
    expect(results.filter((result) => result.vectors.length > 0)).toEqual([]);
    // The checker itself finds vectors: the raw payloads hold plenty.
    expect(XSS_PAYLOADS.filter((payload) => scriptVectors(payload).length > 0).length).toBeGreaterThan(30);
  });

  test('what students read is the sanitised HTML too', async () => {
    const moduleId = moduleAt(1);
    const saved = await save(moduleId, XSS_PAYLOADS.join('\n\n'));
    expect((await publish(moduleId, saved.version)).status).toBe(200);
    const response = await send('GET', `/modules/${moduleId}/lesson`, { as: student('active') });
    expect(response.status).toBe(200);
    const lesson = (await response.json()) as { html: string };
    expect(scriptVectors(lesson.html)).toEqual([]);
    expect(lesson).not.toHaveProperty('markdown');
  });

  test('Markdown is rendered; files become file routes; the H5P marker an embed placeholder', async () => {
    const moduleId = moduleAt(2);
    const files = `/api/modules/${moduleId}/files`;
    const saved = await save(
      moduleId,
      [
        '# Infection control',
        'Read the [guide](guide.pdf) and the [chart](./Hand%20washing.pdf#page=2), not [that](charts/x.pdf).',
        '![Gloves](gloves.png "Gloves")',
        'See [the CDC](https://www.cdc.gov/infection-control/) or [mail us](mailto:office@example.test).',
        '![tracker](https://tracker.example/pixel.png) [up](../../secret.txt) [api](/api/auth/me) [net](//evil.example/)',
        '(H5P: `glove-order`)',
        'Try it: (H5P: hand-wash) now.',
        '```\n(H5P: not-an-embed)\n```',
        '| a | b |\n| - | - |\n| 1 | 2 |',
      ].join('\n\n'),
    );
    const html = saved.html;
    expect(html).toContain('<h1>Infection control</h1>');
    expect(html).toContain(`<a href="${files}/guide.pdf" rel="noopener noreferrer nofollow">guide</a>`);
    expect(html).toContain(`href="${files}/Hand%20washing.pdf"`);
    // A module's files have one-segment names: a folder names none.
    expect(html).toContain('<a>that</a>');
    expect(html).toContain(`<img alt="Gloves" title="Gloves" src="${files}/gloves.png" />`);
    expect(html).toContain('<a href="https://www.cdc.gov/infection-control/" rel="noopener noreferrer nofollow">');
    expect(html).toContain('href="mailto:office@example.test"');
    // No image from elsewhere (it would tell another site who reads the lesson), no way out of the module.
    expect(html).not.toContain('tracker.example');
    expect(html).not.toContain('secret.txt');
    expect(html).not.toContain('/api/auth/me');
    expect(html).not.toContain('evil.example');
    expect(html).toContain('<div class="h5p-embed" data-h5p-activity="glove-order"></div>');
    expect(html).toContain('<p>Try it: <span class="h5p-embed" data-h5p-activity="hand-wash"></span> now.</p>');
    expect(html).toContain('(H5P: not-an-embed)');
    expect(html).not.toContain('data-h5p-activity="not-an-embed"');
    expect(html).toContain('<table>');
  });
});

// ---------------------------------------------------------------------------------------------------
// Versions and publishing
// ---------------------------------------------------------------------------------------------------

describe('versions and publishing', () => {
  const moduleId = () => moduleAt(3);

  test('every save is a new version with its author and time; the published one is chosen explicitly', async () => {
    const reader = student('active');
    expect((await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).status).toBe(404);

    const before = Date.now();
    const first = await save(moduleId(), 'First draft', instructor, 'Sterilisation');
    const second = await save(moduleId(), 'Second draft', accounts.staff, 'Sterilisation, revised');
    expect([first.version, second.version]).toEqual([1, 2]);
    expect(first.createdBy).toBe(instructor.id);
    expect(second.createdBy).toBe(accounts.staff.id);
    expect(Date.parse(first.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect([first.published, second.published]).toEqual([false, false]);
    // Saved is not published.
    expect((await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).status).toBe(404);

    expect((await publish(moduleId(), 1)).status).toBe(200);
    let lesson = (await (await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).json()) as Version;
    expect([lesson.version, lesson.title, lesson.html]).toEqual([1, 'Sterilisation', '<p>First draft</p>\n']);

    const third = await save(moduleId(), 'Third draft');
    lesson = (await (await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).json()) as Version;
    expect(lesson.version).toBe(1);

    const published = await publish(moduleId(), third.version, accounts.admin);
    expect(published.status).toBe(200);
    expect(await published.json()).toMatchObject({ moduleId: moduleId(), version: 3 });
    lesson = (await (await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).json()) as Version;
    expect([lesson.version, lesson.html]).toEqual([3, '<p>Third draft</p>\n']);

    // Going back to an older version is publishing it again.
    expect((await publish(moduleId(), 2, accounts.staff)).status).toBe(200);
    lesson = (await (await send('GET', `/modules/${moduleId()}/lesson`, { as: reader })).json()) as Version;
    expect(lesson.version).toBe(2);
  });

  test('editors list the versions newest first, page by page, and read any of them', async () => {
    const page1 = await send('GET', `/modules/${moduleId()}/lesson/versions?limit=2`, { as: instructor });
    expect(page1.status).toBe(200);
    const body1 = (await page1.json()) as { items: Version[]; next: string | null };
    expect(body1.items.map((item) => [item.version, item.published])).toEqual([
      [3, false],
      [2, true],
    ]);
    expect(body1.items[0]).not.toHaveProperty('markdown');
    expect(page1.headers.get('link')).toContain('rel="next"');
    const page2 = await send('GET', `/modules/${moduleId()}/lesson/versions?limit=2&cursor=${body1.next}`, {
      as: accounts.staff,
    });
    const body2 = (await page2.json()) as { items: Version[]; next: string | null };
    expect([body2.items.map((item) => item.version), body2.next]).toEqual([[1], null]);

    const old = await send('GET', `/modules/${moduleId()}/lesson/versions/1`, { as: accounts.admin });
    expect(old.status).toBe(200);
    expect(await old.json()).toMatchObject({ version: 1, markdown: 'First draft', createdBy: instructor.id });
    expect((await send('GET', `/modules/${moduleId()}/lesson/versions/99`, { as: instructor })).status).toBe(404);
  });

  test('a version that does not exist cannot be published: a 400 naming the field, nothing changed', async () => {
    const response = await publish(moduleId(), 42);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(((await response.json()) as { errors: { field: string }[] }).errors[0]?.field).toBe('body.version');
    const lesson = (await (await send('GET', `/modules/${moduleId()}/lesson`, { as: student('active') })).json()) as {
      version: number;
    };
    expect(lesson.version).toBe(2);
  });

  test('versions are never changed in place: the app may not update or delete them', async () => {
    const [grants] = await app.db.sql<{ update: boolean; delete: boolean; truncate: boolean }[]>`
      select has_table_privilege('aada_app', 'lesson_versions', 'UPDATE') as update,
             has_table_privilege('aada_app', 'lesson_versions', 'DELETE') as delete,
             has_table_privilege('aada_app', 'lesson_versions', 'TRUNCATE') as truncate`;
    expect(grants).toEqual({ update: false, delete: false, truncate: false });
  });
});

// ---------------------------------------------------------------------------------------------------
// Caching
// ---------------------------------------------------------------------------------------------------

describe('caching the published lesson', () => {
  test('private, max-age with an ETag; If-None-Match gets a 304 until another version is published', async () => {
    const moduleId = moduleAt(4);
    await save(moduleId, 'Cached once');
    await publish(moduleId, 1);
    const reader = student('active');
    const first = await send('GET', `/modules/${moduleId}/lesson`, { as: reader });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
    expect(first.headers.get('vary')).toContain('Authorization');
    const etag = first.headers.get('etag') as string;
    expect(etag).toMatch(/^"[^"]+"$/);

    const again = await send('GET', `/modules/${moduleId}/lesson`, { as: reader, headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');

    await save(moduleId, 'Cached twice');
    await publish(moduleId, 2);
    const changed = await send('GET', `/modules/${moduleId}/lesson`, {
      as: reader,
      headers: { 'If-None-Match': etag },
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);

    // The editors' views are no-store: drafts are not for caches.
    const versions = await send('GET', `/modules/${moduleId}/lesson/versions`, { as: instructor });
    expect(versions.headers.get('cache-control')).toBe('no-store');
  });
});

// ---------------------------------------------------------------------------------------------------
// Who
// ---------------------------------------------------------------------------------------------------

describe('who reads and who writes', () => {
  let moduleId: string;
  let foreignModule: string;
  beforeAll(async () => {
    moduleId = moduleAt(0);
    await publish(moduleId, 1);
    foreignModule = otherProgram.moduleIds[0] as string;
    const made = await save(foreignModule, 'Theirs', otherInstructor);
    await publish(foreignModule, made.version, otherInstructor);
  });

  test('students of the programme read it while active or on hold; not before, after or outside it', async () => {
    const statusOf = async (who: TestUser | null) =>
      (await send('GET', `/modules/${moduleId}/lesson`, { as: who })).status;
    expect(await statusOf(student('active'))).toBe(200);
    expect(await statusOf(student('on_hold'))).toBe(200);
    for (const status of ['pending', 'completed', 'withdrawn', 'cancelled', 'other programme']) {
      expect([status, await statusOf(student(status))]).toEqual([status, 404]);
    }
    expect(await statusOf(null)).toBe(401);
    for (const role of ['registrar', 'finance', 'admissions_counselor', 'admissions_manager'] as const) {
      expect([role, await statusOf(accounts[role])]).toEqual([role, 403]);
    }
    for (const reader of [instructor, accounts.admin, accounts.staff]) expect(await statusOf(reader)).toBe(200);
    expect(await statusOf(otherInstructor)).toBe(404);
  });

  test('students never see versions or write; the instructor of another programme reaches nothing here', async () => {
    const reader = student('active');
    for (const path of [`/modules/${moduleId}/lesson/versions`, `/modules/${moduleId}/lesson/versions/1`]) {
      expect((await send('GET', path, { as: reader })).status).toBe(403);
      expect((await send('GET', path, { as: otherInstructor })).status).toBe(404);
    }
    const body = { title: 'Mine now', markdown: 'Overwritten' };
    expect((await send('POST', `/modules/${moduleId}/lesson/versions`, { as: reader, body })).status).toBe(403);
    expect((await send('POST', `/modules/${moduleId}/lesson/versions`, { as: otherInstructor, body })).status).toBe(
      404,
    );
    expect((await publish(moduleId, 1, otherInstructor)).status).toBe(404);
    expect((await publish(moduleId, 1, reader)).status).toBe(403);
    // And the other way round: this programme's instructor cannot touch theirs.
    expect((await send('POST', `/modules/${foreignModule}/lesson/versions`, { as: instructor, body })).status).toBe(
      404,
    );
    const [count] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from lesson_versions where markdown = 'Overwritten'`;
    expect(count?.n).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Ugly input
// ---------------------------------------------------------------------------------------------------

describe('bad input', () => {
  const cases: [string, unknown, string][] = [
    ['an empty title', { title: '  ', markdown: 'x' }, 'body.title'],
    ['no Markdown', { title: 'T' }, 'body.markdown'],
    ['Markdown as a number', { title: 'T', markdown: 42 }, 'body.markdown'],
    ['a control character', { title: 'T', markdown: 'a\u0007b' }, 'body.markdown'],
    ['a zero-width character', { title: 'T\u200b', markdown: 'x' }, 'body.title'],
    ['too long', { title: 'T', markdown: 'x'.repeat(200_001) }, 'body.markdown'],
    ['an unknown field', { title: 'T', markdown: 'x', html: '<script>' }, 'body'],
  ];
  test.each(cases)('%s is a 400 naming the field, and nothing is saved', async (_name, body, field) => {
    const moduleId = moduleAt(4);
    const [before] = await app.db.sql<{ n: number }[]>`select count(*)::int as n from lesson_versions`;
    const response = await send('POST', `/modules/${moduleId}/lesson/versions`, { as: instructor, body });
    expect(response.status).toBe(400);
    const problem = (await response.json()) as { errors: { field: string }[]; stack?: unknown };
    expect(problem.errors.map((error) => error.field).some((name) => name.startsWith(field))).toBe(true);
    expect(problem.stack).toBeUndefined();
    const [after] = await app.db.sql<{ n: number }[]>`select count(*)::int as n from lesson_versions`;
    expect(after?.n).toBe(before?.n);
  });

  test('bad ids and version numbers are 400s; an unknown module a 404', async () => {
    expect((await send('GET', '/modules/not-a-uuid/lesson', { as: instructor })).status).toBe(400);
    expect((await send('GET', `/modules/${moduleAt(3)}/lesson/versions/0x1`, { as: instructor })).status).toBe(400);
    expect((await send('GET', `/modules/${moduleAt(3)}/lesson/versions/0`, { as: instructor })).status).toBe(400);
    expect(
      (await send('GET', `/modules/${moduleAt(3)}/lesson/versions?cursor=forged`, { as: instructor })).status,
    ).toBe(400);
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await send('GET', `/modules/${unknown}/lesson`, { as: accounts.admin })).status).toBe(404);
    const body = { title: 'T', markdown: 'x' };
    expect((await send('POST', `/modules/${unknown}/lesson/versions`, { as: accounts.admin, body })).status).toBe(404);
    expect((await publish(moduleAt(3), 1.5)).status).toBe(400);
    expect((await publish(moduleAt(3), '1' as unknown as number)).status).toBe(400);
  });
});
