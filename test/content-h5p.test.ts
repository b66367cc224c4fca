// H5P activities over HTTP and Azurite: a good package round-trips (every file served byte for byte
// at its signed address, with its type and a sandbox CSP); each bad package (a path leaving the package,
// an absolute path, a symlink, a zip bomb, one that lies about its size, no h5p.json, h5p.json that does
// not parse or names no library it carries, a script outside a library folder, a nested archive or an
// executable, oversize, not a ZIP, truncated) gets a 4xx naming the problem and stores nothing; a
// tampered, foreign or expired grant is refused; a student of another programme gets a 404; replacing
// and retiring (a retired activity's addresses stop at once).
import { createHmac } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { beforeAll, describe, expect, test } from 'vitest';
import { config } from '../lib/config';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../lib/files';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, type TestProgram } from './helpers/records';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';
import { type ZipEntry, zip } from './helpers/zip';

const PORTAL = 'https://portal.example.test';
const app = useTestApp({ env: { CORS_ALLOWED_ORIGINS: PORTAL } });

let accounts: RoleAccounts;
let program: TestProgram;
let instructor: TestUser;
let student: TestUser;
let outsider: TestUser;

beforeAll(async () => {
  const sql = app.db.sql;
  accounts = await createRoleAccounts(sql);
  program = await createProgram(sql, { hours: [10, 10] });
  const otherProgram = await createProgram(sql, { hours: [10] });
  instructor = accounts.instructor;
  await assignInstructor(sql, instructor.id, program.programId);
  student = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, student.id, program.programId);
  outsider = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, outsider.id, otherProgram.programId);
});

const moduleId = () => program.moduleIds[0] as string;
const activityUrl = (key: string) => `/modules/${moduleId()}/h5p/${key}`;

const H5P_JSON = {
  title: 'Infection control quiz',
  language: 'en',
  mainLibrary: 'H5P.MultiChoice',
  embedTypes: ['iframe'],
  preloadedDependencies: [{ machineName: 'H5P.MultiChoice', majorVersion: 1, minorVersion: 16 }],
};
const LIBRARY = 'H5P.MultiChoice-1.16';
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');

function goodEntries(overrides: Record<string, unknown> = {}): ZipEntry[] {
  return [
    { name: 'h5p.json', data: JSON.stringify({ ...H5P_JSON, ...overrides }) },
    { name: 'content/', data: '' },
    { name: 'content/content.json', data: JSON.stringify({ question: '<p>Which gloves?</p>', answers: [] }) },
    { name: 'content/images/gloves.png', data: PNG },
    { name: `${LIBRARY}/library.json`, data: JSON.stringify({ machineName: 'H5P.MultiChoice', majorVersion: 1 }) },
    { name: `${LIBRARY}/js/multichoice.js`, data: 'H5P.MultiChoice = function () {};' },
    { name: `${LIBRARY}/css/multichoice.css`, data: '.h5p-multichoice { color: black; }' },
  ];
}

function upload(key: string, body: Buffer, as: TestUser = instructor) {
  return app.api(activityUrl(key), {
    method: 'PUT',
    headers: { ...as.headers, 'Content-Type': 'application/zip' },
    body,
  });
}

const counts = async () =>
  (
    await app.db.sql<{ activities: number; files: number; stored: number }[]>`
      select (select count(*)::int from h5p_activities) as activities,
             (select count(*)::int from h5p_activity_files) as files,
             (select count(*)::int from stored_files) as stored`
  )[0];

async function openActivity(key: string, as: TestUser = student) {
  const response = await send('GET', activityUrl(key), { as });
  // biome-ignore lint/suspicious/noExplicitAny: a JSON answer, read field by field
  return { response, body: (await response.json()) as any };
}

const detailOf = async (response: Response) => ((await response.json()) as { detail: string }).detail;

/** A request to a signed address, without any credential (as a sandboxed frame sends it). */
const fetchAsset = (href: string, headers: Record<string, string> = {}) =>
  app.api(href.replace(/^\/api/, ''), { headers: { Origin: 'null', ...headers } });

describe('a good package', () => {
  test('is stored, listed, opened by an enrolled student and every file served at its signed address', async () => {
    const entries = goodEntries();
    const response = await upload('quiz-1', zip(entries));
    expect(response.status).toBe(201);
    const view = (await response.json()) as { fileCount: number };
    expect(view).toMatchObject({
      activityKey: 'quiz-1',
      title: 'Infection control quiz',
      mainLibrary: 'H5P.MultiChoice',
    });
    expect(view.fileCount).toBe(6);

    const listed = (await (await send('GET', `/modules/${moduleId()}/h5p`, { as: instructor })).json()) as {
      items: { activityKey: string }[];
    };
    expect(listed.items.map((item: { activityKey: string }) => item.activityKey)).toEqual(['quiz-1']);

    const { response: opened, body } = await openActivity('quiz-1');
    expect(opened.status).toBe(200);
    expect(opened.headers.get('cache-control')).toBe('no-store');
    expect(body.h5p.mainLibrary).toBe('H5P.MultiChoice');
    expect(body.player.contentJsonPath).toBe(`${body.assetBase}content`);
    for (const entry of entries.filter((e) => !e.name.endsWith('/'))) {
      const asset = await fetchAsset(`${body.assetBase}${entry.name}`);
      expect([entry.name, asset.status]).toEqual([entry.name, 200]);
      expect(Buffer.from(await asset.arrayBuffer()).equals(Buffer.from(entry.data))).toBe(true);
      expect(asset.headers.get('content-security-policy')).toMatch(/^sandbox;/);
      expect(asset.headers.get('access-control-allow-origin')).toBe('*');
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
    }
    const js = await fetchAsset(`${body.assetBase}${LIBRARY}/js/multichoice.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    const png = await fetchAsset(`${body.assetBase}content/images/gloves.png`);
    expect(png.headers.get('content-type')).toBe('image/png');
    const etag = png.headers.get('etag') as string;
    expect((await fetchAsset(`${body.assetBase}content/images/gloves.png`, { 'If-None-Match': etag })).status).toBe(
      304,
    );
    expect((await fetchAsset(`${body.assetBase}content/missing.png`)).status).toBe(404);
    // fetch() resolves `..` (and %2e%2e) itself; with escaped slashes it reaches the server, which serves only the package's own paths.
    expect((await fetchAsset(`${body.assetBase}content%2F..%2Fh5p.json`)).status).toBe(404);
  });

  test('the blobs hold no plaintext of the package', async () => {
    const rows = await app.db.sql<{ object_name: string }[]>`
      select sf.object_name from h5p_activity_files f join stored_files sf on sf.id = f.stored_file_id
       where f.path = 'content/content.json'`;
    expect(rows.length).toBe(1);
    const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
    const container = new BlobServiceClient(config().BLOB_ENDPOINT as string, credential).getContainerClient(
      `${config().BLOB_CONTAINER_PREFIX}files`,
    );
    const raw = await container.getBlobClient(rows[0]?.object_name as string).downloadToBuffer();
    expect(raw.subarray(0, 3).toString()).toBe('v1.');
    expect(raw.includes('Which gloves')).toBe(false);
  });

  test('an editor of another programme and a student of another programme get a 404', async () => {
    const otherInstructor = await createTestUser(app.db.sql, { roles: ['instructor'] });
    expect((await upload('quiz-x', zip(goodEntries()), otherInstructor)).status).toBe(404);
    expect((await openActivity('quiz-1', outsider)).response.status).toBe(404);
    expect((await openActivity('no-such-quiz', student)).response.status).toBe(404);
    expect((await upload('quiz-y', zip(goodEntries()), student)).status).toBe(403);
  });
});

describe('signed addresses', () => {
  test('a tampered grant, one for another activity, a forged one and an expired one are refused', async () => {
    const { body } = await openActivity('quiz-1');
    const base = body.assetBase as string;
    const [, , , activityId, grant] = base.split('/') as string[];
    const [expires, signature] = (grant as string).split('.') as [string, string];
    const file = 'content/content.json';
    expect((await fetchAsset(`${base}${file}`)).status).toBe(200);
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
    expect((await fetchAsset(`/api/h5p-assets/${activityId}/${expires}.${flipped}/${file}`)).status).toBe(404);
    // A later expiry with the old signature.
    expect(
      (await fetchAsset(`/api/h5p-assets/${activityId}/${Number(expires) + 3600}.${signature}/${file}`)).status,
    ).toBe(404);
    // The grant of this activity on another activity's id.
    expect((await fetchAsset(`/api/h5p-assets/00000000-0000-4000-8000-000000000000/${grant}/${file}`)).status).toBe(
      404,
    );
    // Signed with a key the server does not hold.
    const forged = createHmac('sha256', Buffer.alloc(32, 7))
      .update(`h5p-assets\n${activityId}\n${expires}`)
      .digest('base64url');
    expect((await fetchAsset(`/api/h5p-assets/${activityId}/${expires}.${forged}/${file}`)).status).toBe(404);
    // Expired: signed properly (with the development key) for a time already past.
    const past = Math.floor(Date.now() / 1000) - 10;
    const demoKey = Buffer.from('ZGVtby1vbmx5LWg1cC1hc3NldC1rZXktZG8tbm90LXVzZQ==', 'base64');
    const old = createHmac('sha256', demoKey).update(`h5p-assets\n${activityId}\n${past}`).digest('base64url');
    const expired = await fetchAsset(`/api/h5p-assets/${activityId}/${past}.${old}/${file}`);
    expect(expired.status).toBe(410);
    expect(await detailOf(expired)).toMatch(/expired/);
    expect((await fetchAsset(`/api/h5p-assets/${activityId}/garbage/${file}`)).status).toBe(404);
  });
});

describe('CORS of the signed addresses (lib/http.ts anonymous CORS)', () => {
  test('a file answers any origin with `*` and never with credentials; the activity route keeps the credentialed list', async () => {
    const { body } = await openActivity('quiz-1');
    const file = `${body.assetBase}content/content.json`;
    for (const origin of ['null', PORTAL, 'https://elsewhere.example.test']) {
      const asset = await fetchAsset(file, { Origin: origin });
      expect([origin, asset.status, asset.headers.get('access-control-allow-origin')]).toEqual([origin, 200, '*']);
      // `*` with credentials would be refused by browsers and would say cookies count: they do not here.
      expect(asset.headers.get('access-control-allow-credentials')).toBeNull();
      expect(asset.headers.get('access-control-expose-headers')).toBe('ETag, X-Request-Id');
    }
    // A refusal is readable by the player too (so it can say the address expired), still without credentials.
    const refused = await fetchAsset(`${body.assetBase}content/missing.json`);
    expect([refused.status, refused.headers.get('access-control-allow-origin')]).toEqual([404, '*']);
    expect(refused.headers.get('access-control-allow-credentials')).toBeNull();

    // The activity route (token or cookie) answers the configured portal only, with credentials, never `null`.
    const fromPortal = await send('GET', activityUrl('quiz-1'), { as: student, headers: { Origin: PORTAL } });
    expect(fromPortal.headers.get('access-control-allow-origin')).toBe(PORTAL);
    expect(fromPortal.headers.get('access-control-allow-credentials')).toBe('true');
    const fromSandbox = await send('GET', activityUrl('quiz-1'), { as: student, headers: { Origin: 'null' } });
    expect(fromSandbox.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('the player page and its runtime', () => {
  test('the page runs in a sandbox, framed only by the portal, over the same grant; the runtime is immutable', async () => {
    const { body } = await openActivity('quiz-1');
    const playerUrl = body.playerUrl as string;
    const activityId = (body.assetBase as string).split('/')[3] as string;
    // The page's grant is the caller's own (it saves their state): the expiry, their id, the HMAC.
    const grant = playerUrl.split('/')[4];
    expect(playerUrl).toMatch(new RegExp(`^/api/h5p-player/${activityId}/\\d+\\.${student.id}\\.[A-Za-z0-9_-]{43}$`));
    const page = await fetchAsset(playerUrl);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = page.headers.get('content-security-policy') as string;
    expect(csp).toMatch(/^sandbox allow-scripts; default-src 'none'; /);
    expect(csp).not.toMatch(/allow-same-origin|unsafe-eval/);
    expect(csp).toContain(`frame-ancestors 'self' ${PORTAL}`);
    expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
    const html = await page.text();
    // No inline script: settings are data attributes; the files come from the activity's signed base.
    expect(html).not.toMatch(/<script>/);
    expect(html).toContain(`data-assets="${(body.assetBase as string).replace(/\/$/, '')}"`);
    expect(html).toContain(`data-state="/api/h5p-state/${activityId}/${grant}"`);
    const runtime = [...html.matchAll(/(?:src|href)="(\/api\/h5p-runtime\/[0-9a-f]{16}\/[^"]+)"/g)].map((m) => m[1]);
    expect(runtime.length).toBeGreaterThanOrEqual(3);
    for (const href of runtime) {
      const file = await fetchAsset(href as string);
      expect([href, file.status]).toEqual([href, 200]);
      expect(file.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(file.headers.get('access-control-allow-origin')).toBe('*');
      expect(file.headers.get('access-control-allow-credentials')).toBeNull();
      // Read to the end: an unread body of a large file holds its response (and the app's close) open.
      expect((await file.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    const version = (runtime[0] as string).split('/')[3];
    const font = await fetchAsset(`/api/h5p-runtime/${version}/fonts/h5p-core-30.woff2`);
    expect(font.status).toBe(200);
    expect((await font.arrayBuffer()).byteLength).toBeGreaterThan(0);
    // The package's SVG logo, its type declarations and anything else are not served; nor another version.
    for (const path of ['images/h5p.svg', 'h5p.d.ts', '..%2Fpackage.json', 'fonts/inter/LICENSE.txt']) {
      expect([path, (await fetchAsset(`/api/h5p-runtime/${version}/${path}`)).status]).toEqual([path, 404]);
    }
    expect((await fetchAsset(`/api/h5p-runtime/0000000000000000/main.bundle.js`)).status).toBe(404);
    expect((await fetchAsset(`/api/h5p-runtime/not-a-version/main.bundle.js`)).status).toBe(400);

    // The page honours only a grant of its own activity, in force; an asset grant is not one.
    expect((await fetchAsset(`/api/h5p-player/${activityId}/${(body.assetBase as string).split('/')[4]}`)).status).toBe(
      404,
    );
    const flipped = `${grant?.slice(0, -2)}${grant?.at(-2) === 'A' ? 'B' : 'A'}${grant?.at(-1)}`;
    expect((await fetchAsset(`/api/h5p-player/${activityId}/${flipped}`)).status).toBe(404);
    expect((await fetchAsset(`/api/h5p-player/00000000-0000-4000-8000-000000000000/${grant}`)).status).toBe(404);
    expect((await fetchAsset(`/api/h5p-player/not-a-uuid/${grant}`)).status).toBe(400);
  });
});

describe('bad packages: a 4xx naming the problem, nothing stored', () => {
  const bomb = () => {
    const zeros = Buffer.alloc(20 * 1024 * 1024);
    const deflated = { bytes: deflateRawSync(zeros), size: zeros.length, crc: crc32(zeros) };
    return [
      ...goodEntries(),
      ...Array.from({ length: 14 }, (_, i) => ({ name: `content/videos/v${i}.mp4`, data: '', deflated })),
    ];
  };
  const lying = () => {
    const zeros = Buffer.alloc(5 * 1024 * 1024);
    const deflated = { bytes: deflateRawSync(zeros), size: 1_000, crc: crc32(zeros) };
    return [...goodEntries(), { name: 'content/images/big.png', data: '', deflated }];
  };
  const good = zip(goodEntries());
  const cases: [string, () => Buffer, number, RegExp | null][] = [
    [
      'a path leaving the package (../)',
      () => zip([...goodEntries(), { name: 'content/../../evil.json', data: '{}' }]),
      400,
      /leaving the package/,
    ],
    ['an absolute path', () => zip([...goodEntries(), { name: '/etc/evil.json', data: '{}' }]), 400, /absolute path/],
    [
      'a backslash path',
      () => zip([...goodEntries(), { name: 'content\\..\\evil.json', data: '{}' }]),
      400,
      /backslash/,
    ],
    [
      'a symlink',
      () => zip([...goodEntries(), { name: 'content/link.json', data: '/etc/passwd', unixMode: 0o120777 }]),
      400,
      /symbolic link/,
    ],
    ['a zip bomb (280 MB of zeros in 300 KB)', () => zip(bomb()), 413, /zip bomb/],
    ['an entry inflating past its declared size', () => zip(lying()), 400, /declares.*zip bomb/],
    ['no h5p.json', () => zip(goodEntries().filter((e) => e.name !== 'h5p.json')), 400, /no h5p\.json/],
    [
      'h5p.json not JSON',
      () => zip([{ name: 'h5p.json', data: '{title:' }, ...goodEntries().slice(1)]),
      400,
      /h5p\.json: not valid JSON/,
    ],
    ['h5p.json without a title', () => zip(goodEntries({ title: '' })), 400, /"title"/],
    ['a main library it does not carry', () => zip(goodEntries({ mainLibrary: 'H5P.Other' })), 400, /mainLibrary/],
    [
      'a library it does not carry',
      () => zip(goodEntries().filter((e) => !e.name.startsWith(LIBRARY))),
      400,
      /main library/,
    ],
    [
      'no content.json',
      () => zip(goodEntries().filter((e) => e.name !== 'content/content.json')),
      400,
      /content\.json/,
    ],
    [
      'a script outside a library folder',
      () => zip([...goodEntries(), { name: 'content/evil.js', data: 'alert(1)' }]),
      400,
      /only inside a library folder/,
    ],
    ['a PHP file', () => zip([...goodEntries(), { name: `${LIBRARY}/shell.php`, data: '<?php' }]), 400, /executables/],
    ['a nested archive', () => zip([...goodEntries(), { name: 'content/more.zip', data: good }]), 400, /archives/],
    ['an HTML page', () => zip([...goodEntries(), { name: 'content/page.html', data: '<script>' }]), 400, /HTML/],
    [
      'an SVG',
      () => zip([...goodEntries(), { name: 'content/images/x.svg', data: '<svg onload=alert(1)>' }]),
      400,
      /SVG/,
    ],
    [
      'a file outside the three H5P places',
      () => zip([...goodEntries(), { name: 'readme.txt', data: 'hi' }]),
      400,
      /only h5p\.json/,
    ],
    ['not a ZIP', () => Buffer.from('%PDF-1.4 not a package'), 415, /Not a ZIP/],
    ['an empty body', () => Buffer.alloc(0), 415, /Not a ZIP/],
    ['a truncated package', () => good.subarray(0, good.length - 30), 400, /truncated or corrupt/],
    // Refused by its Content-Length before the body is read; the connection may close before the
    // problem's body is read back, so only the status is checked.
    ['over 100 MB', () => Buffer.concat([good, Buffer.alloc(101 * 1024 * 1024)]), 413, null],
  ];
  test.each(cases)('%s', async (_label, build, status, detail) => {
    const before = await counts();
    const response = await upload('bad-one', build());
    expect(response.status).toBe(status);
    if (detail) expect(await detailOf(response)).toMatch(detail);
    expect(await counts()).toEqual(before);
  });

  test('too many entries', async () => {
    const many = Array.from({ length: 2_001 }, (_, i) => ({ name: `content/t${i}.txt`, data: 'x' }));
    const response = await upload('bad-one', zip([...goodEntries(), ...many]));
    expect(response.status).toBe(400);
    expect(await detailOf(response)).toMatch(/entries; at most 2000/);
  });

  test('a bad activity key is a 400 naming it', async () => {
    const response = await upload('bad%20key', good);
    expect(response.status).toBe(400);
    expect(JSON.stringify(await response.json())).toMatch(/activityKey/);
  });
});

describe('replacing and retiring', () => {
  test('uploading a key again replaces it (200) and the old addresses stop; retiring removes it', async () => {
    const { body: before } = await openActivity('quiz-1');
    const replaced = await upload('quiz-1', zip(goodEntries({ title: 'Infection control quiz, v2' })));
    expect(replaced.status).toBe(200);
    expect((await fetchAsset(`${before.assetBase}h5p.json`)).status).toBe(404);
    const { body: after } = await openActivity('quiz-1');
    expect(after.title).toBe('Infection control quiz, v2');
    expect((await fetchAsset(`${after.assetBase}h5p.json`)).status).toBe(200);
    expect((await fetchAsset(after.playerUrl)).status).toBe(200);
    expect((await send('DELETE', activityUrl('quiz-1'), { as: instructor })).status).toBe(204);
    expect((await openActivity('quiz-1')).response.status).toBe(404);
    expect((await fetchAsset(`${after.assetBase}h5p.json`)).status).toBe(404);
    // Its player page stops with it.
    expect((await fetchAsset(after.playerUrl)).status).toBe(404);
    expect((await send('DELETE', activityUrl('quiz-1'), { as: instructor })).status).toBe(404);
  });
});
