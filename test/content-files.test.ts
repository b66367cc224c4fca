// A module's content files over HTTP: the type judged by the bytes (a PDF renamed .png, an SVG with a
// script, a ZIP, text: each a 415 naming why), per-type size limits (413, nothing stored), PNG and JPEG
// stripped of their metadata (the picture itself unchanged), replacing and retiring by name, who may
// upload and read, and serving: a video streamed whole and by byte ranges (206, Content-Range, 416),
// cached privately with the file's SHA-256 as ETag.
import { randomBytes } from 'node:crypto';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
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
const students = new Map<string, TestUser>();

beforeAll(async () => {
  const sql = app.db.sql;
  accounts = await createRoleAccounts(sql);
  program = await createProgram(sql, { hours: [10, 10, 10] });
  otherProgram = await createProgram(sql, { hours: [10] });
  instructor = accounts.instructor;
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
  await assignInstructor(sql, instructor.id, program.programId);
  await assignInstructor(sql, otherInstructor.id, otherProgram.programId);
  for (const status of ['active', 'on_hold', 'withdrawn']) {
    const student = await createTestUser(sql, { roles: ['student'] });
    await createEnrollment(sql, student.id, program.programId, { status });
    students.set(status, student);
  }
  const outsider = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, outsider.id, otherProgram.programId);
  students.set('other programme', outsider);
});

const moduleId = (index = 0) => program.moduleIds[index] as string;
const fileUrl = (name: string, index = 0) => `/modules/${moduleId(index)}/files/${encodeURIComponent(name)}`;

function upload(name: string, bytes: Buffer, contentType = 'application/octet-stream', as: TestUser = instructor) {
  return app.api(fileUrl(name), {
    method: 'PUT',
    headers: { ...as.headers, 'Content-Type': contentType },
    body: bytes,
  });
}

async function download(name: string, as: TestUser, headers: Record<string, string> = {}) {
  const response = await send('GET', fileUrl(name), { as, headers });
  return { response, bytes: Buffer.from(await response.arrayBuffer()) };
}

const contentFileCount = async () =>
  Number((await app.db.sql<{ n: string }[]>`select count(*) as n from content_files`)[0]?.n);

// ---------------------------------------------------------------------------------------------------
// Files made by hand
// ---------------------------------------------------------------------------------------------------

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A 1×1 red PNG carrying an author text chunk, a time chunk and EXIF with a GPS position. */
function pngWithMetadata(): Buffer {
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('tEXt', Buffer.from('Author\0Jane Student', 'latin1')),
    pngChunk('eXIf', Buffer.from('MM\0*GPS 33.7490N 84.3880W', 'latin1')),
    pngChunk('tIME', Buffer.from([0x07, 0xea, 12, 2, 5, 0, 0])),
    pngChunk('IDAT', deflateSync(Buffer.from([0, 255, 0, 0]))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function jpegSegment(marker: number, data: Buffer): Buffer {
  const header = Buffer.from([0xff, marker, 0, 0]);
  header.writeUInt16BE(data.length + 2, 2);
  return Buffer.concat([header, data]);
}

/** A JPEG's structure: JFIF, EXIF with a GPS position, XMP, a comment, a table, the scan. */
function jpegWithMetadata(): { file: Buffer; scan: Buffer; table: Buffer } {
  const table = jpegSegment(0xdb, Buffer.alloc(65, 1));
  const scan = Buffer.concat([
    jpegSegment(0xda, Buffer.from([1, 1, 0, 0, 0x3f, 0])),
    randomBytes(200),
    Buffer.from([0xff, 0xd9]),
  ]);
  const file = Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    jpegSegment(0xe0, Buffer.from('JFIF\0\x01\x01\0\0\x01\0\x01\0\0', 'latin1')),
    jpegSegment(0xe1, Buffer.from('Exif\0\0MM\0*GPS 33.7490N 84.3880W Canon', 'latin1')),
    jpegSegment(0xe1, Buffer.from('http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>Jane Student</x:xmpmeta>', 'latin1')),
    jpegSegment(0xfe, Buffer.from('taken at home by Jane', 'latin1')),
    table,
    scan,
  ]);
  return { file, scan, table };
}

/** An MP4 as players see it: an `ftyp` box first, then `size` bytes in all. */
function mp4(size: number): Buffer {
  const ftyp = Buffer.from('\0\0\0\x18ftypisom\0\0\x02\0isomiso2', 'latin1');
  return Buffer.concat([ftyp, randomBytes(size - ftyp.length)]);
}

// ---------------------------------------------------------------------------------------------------
// Types by their bytes
// ---------------------------------------------------------------------------------------------------

describe('what a file is, judged by its bytes', () => {
  test('a PDF, a PNG, a JPEG, an MP3 and an MP4 are accepted with the type their bytes say', async () => {
    const cases: [string, Buffer, string, string][] = [
      ['handout.pdf', PDF, 'application/pdf', 'pdf'],
      ['red.png', pngWithMetadata(), 'image/png', 'image'],
      ['tray.JPG', jpegWithMetadata().file, 'image/jpeg', 'image'],
      [
        'talk.mp3',
        Buffer.concat([Buffer.from('ID3\x04\0\0\0\0\0\0', 'latin1'), randomBytes(500)]),
        'audio/mpeg',
        'audio',
      ],
      ['demo.mp4', mp4(4096), 'video/mp4', 'video'],
    ];
    for (const [name, bytes, contentType, kind] of cases) {
      // Declared as octet-stream: the type comes from the bytes.
      const response = await upload(name, bytes);
      expect([name, response.status]).toEqual([name, 201]);
      expect(await response.json()).toMatchObject({ name, kind, contentType });
    }
  });

  const refusals: [string, string, Buffer, string, RegExp][] = [
    ['a PDF renamed .png', 'chart.png', PDF, 'image/png', /application\/pdf/],
    ['a PDF declared as a PNG', 'chart.pdf', PDF, 'image/png', /not image\/png/],
    [
      'an SVG with a script',
      'logo.svg',
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'),
      'image/svg+xml',
      /SVG/,
    ],
    [
      'an SVG renamed .png',
      'logo.png',
      Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
      'image/png',
      /SVG/,
    ],
    ['an HTML page', 'page.pdf', Buffer.from('<!doctype html><script>alert(1)</script>'), 'application/pdf', /HTML/],
    ['a ZIP', 'package.pdf', Buffer.from('PK\x03\x04\x14\0\0\0\0\0', 'latin1'), 'application/pdf', /ZIP/],
    ['a GIF', 'anim.gif', Buffer.from('GIF89a\x01\0\x01\0', 'latin1'), 'image/gif', /GIF/],
    ['text', 'notes.pdf', Buffer.from('just some notes'), 'text/plain', /judged by its content/],
    [
      'an executable',
      'setup.pdf',
      Buffer.from('MZ\x90\0\x03\0\0\0', 'latin1'),
      'application/pdf',
      /judged by its content/,
    ],
  ];
  test.each(refusals)(
    '%s is refused with a 415 saying why, and nothing is stored',
    async (_label, name, bytes, type, why) => {
      const before = await contentFileCount();
      const response = await upload(name, bytes, type);
      expect(response.status).toBe(415);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      const problem = (await response.json()) as { detail: string; errors: { field: string }[] };
      expect(problem.detail).toMatch(why);
      expect(problem.errors.length).toBe(1);
      expect(await contentFileCount()).toBe(before);
      expect((await send('GET', fileUrl(name), { as: instructor })).status).toBe(404);
    },
  );

  test('an empty file is a 400; a name without an extension or with a path is a 400', async () => {
    expect((await upload('empty.pdf', Buffer.alloc(0))).status).toBe(400);
    for (const name of ['handout', '../handout.pdf', '.hidden.pdf', 'a/b.pdf', `${'x'.repeat(130)}.pdf`]) {
      const response = await upload(name, PDF);
      expect([name, response.status]).toEqual([name, 400]);
    }
  });
});

describe('size limits per type', () => {
  test('an image over 10 MB is a 413 and nothing is stored; the same size as a video is accepted', async () => {
    const before = await contentFileCount();
    const big = Buffer.concat([pngWithMetadata().subarray(0, 33), randomBytes(10 * 1024 * 1024)]);
    const refused = await upload('huge.png', big);
    expect(refused.status).toBe(413);
    expect(await contentFileCount()).toBe(before);
    const video = await upload('long.mp4', mp4(11 * 1024 * 1024));
    expect(video.status).toBe(201);
  });
});

// ---------------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------------

describe('image metadata', () => {
  test('a PNG loses its text, time and EXIF chunks; its pixels are unchanged', async () => {
    const original = pngWithMetadata();
    expect((await upload('stripped.png', original)).status).toBe(201);
    const { response, bytes } = await download('stripped.png', students.get('active') as TestUser);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    const text = bytes.toString('latin1');
    for (const gone of ['tEXt', 'eXIf', 'tIME', 'Jane', 'GPS']) expect(text).not.toContain(gone);
    expect(bytes.length).toBeLessThan(original.length);
    // IHDR right after the signature, one IDAT holding the red pixel, IEND last.
    expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
    const idat = bytes.indexOf('IDAT');
    const idatLength = bytes.readUInt32BE(idat - 4);
    expect([...inflateSync(bytes.subarray(idat + 4, idat + 4 + idatLength))]).toEqual([0, 255, 0, 0]);
    expect(bytes.subarray(-8, -4).toString('latin1')).toBe('IEND');
  });

  test('a JPEG loses EXIF, XMP and comments; JFIF, the tables and the scan stay byte for byte', async () => {
    const { file, scan, table } = jpegWithMetadata();
    expect((await upload('tray.jpg', file)).status).toBe(201);
    const { bytes } = await download('tray.jpg', instructor);
    const text = bytes.toString('latin1');
    for (const gone of ['Exif', 'GPS', 'Canon', 'xmpmeta', 'Jane']) expect(text).not.toContain(gone);
    expect(text).toContain('JFIF');
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect(bytes.includes(table)).toBe(true);
    expect(bytes.subarray(bytes.length - scan.length)).toEqual(scan);
  });

  test('a truncated PNG is refused, not stored half-stripped', async () => {
    const broken = pngWithMetadata().subarray(0, 40);
    const response = await upload('broken.png', broken);
    expect(response.status).toBe(415);
    expect(((await response.json()) as { detail: string }).detail).toMatch(/Not a valid image/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Serving, ranges, caching
// ---------------------------------------------------------------------------------------------------

describe('serving a video', () => {
  const size = 300 * 1024 + 17; // several 64 KB segments of the files store, and a short last one
  let video: Buffer;
  beforeAll(async () => {
    video = mp4(size);
    expect((await upload('lecture.mp4', video, 'video/mp4')).status).toBe(201);
  });
  const student = () => students.get('active') as TestUser;

  test('whole, with its length, type and Accept-Ranges', async () => {
    const { response, bytes } = await download('lecture.mp4', student());
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('video/mp4');
    expect(response.headers.get('content-length')).toBe(String(size));
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('content-disposition')).toBe('inline; filename="lecture.mp4"');
    expect(bytes.equals(video)).toBe(true);
  });

  test.each([
    ['the first bytes', 'bytes=0-99', 0, 99],
    ['a range across segment boundaries', 'bytes=65000-140000', 65_000, 140_000],
    ['from an offset to the end', `bytes=${size - 1000}-`, size - 1000, size - 1],
    ['the last bytes', 'bytes=-500', size - 500, size - 1],
    ['past the end, cut at the end', `bytes=${size - 10}-${size + 1000}`, size - 10, size - 1],
  ])('%s: 206 with Content-Range and exactly those bytes', async (_label, range, start, end) => {
    const { response, bytes } = await download('lecture.mp4', student(), { Range: range });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
    expect(response.headers.get('content-length')).toBe(String(end - start + 1));
    expect(bytes.equals(video.subarray(start, end + 1))).toBe(true);
  });

  test('a range past the end is a 416 naming the size', async () => {
    const { response } = await download('lecture.mp4', student(), { Range: `bytes=${size}-` });
    expect(response.status).toBe(416);
    expect(response.headers.get('content-range')).toBe(`bytes */${size}`);
  });

  test('several ranges or another unit: the whole file (RFC 9110 lets a server ignore Range)', async () => {
    for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=abc']) {
      const { response, bytes } = await download('lecture.mp4', student(), { Range: range });
      expect([range, response.status, bytes.length]).toEqual([range, 200, size]);
    }
  });

  test('private caching with the SHA-256 as ETag; If-None-Match gets a 304', async () => {
    const { response } = await download('lecture.mp4', student());
    expect(response.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
    const etag = response.headers.get('etag') as string;
    const again = await download('lecture.mp4', student(), { 'If-None-Match': etag });
    expect(again.response.status).toBe(304);
    expect(again.bytes.length).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Replacing, listing, retiring; who
// ---------------------------------------------------------------------------------------------------

describe('replacing, listing and retiring', () => {
  test('uploading a name again replaces the file; retiring it makes it a 404', async () => {
    const first = await upload('syllabus.pdf', PDF);
    expect(first.status).toBe(201);
    const second = Buffer.concat([PDF, Buffer.from('% revised\n')]);
    const replaced = await upload('syllabus.pdf', second, 'application/pdf', accounts.staff);
    expect(replaced.status).toBe(200);
    const { bytes } = await download('syllabus.pdf', students.get('on_hold') as TestUser);
    expect(bytes.equals(second)).toBe(true);

    const list = await send('GET', `/modules/${moduleId()}/files`, { as: instructor });
    const items = ((await list.json()) as { items: { name: string; byteSize: number; uploadedBy: string }[] }).items;
    const syllabus = items.filter((item) => item.name === 'syllabus.pdf');
    expect(syllabus).toEqual([expect.objectContaining({ byteSize: second.length, uploadedBy: accounts.staff.id })]);

    expect((await send('DELETE', fileUrl('syllabus.pdf'), { as: instructor })).status).toBe(204);
    expect((await send('GET', fileUrl('syllabus.pdf'), { as: instructor })).status).toBe(404);
    expect((await send('DELETE', fileUrl('syllabus.pdf'), { as: instructor })).status).toBe(404);
    // Retired, not deleted: both versions are still on record.
    const [kept] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from content_files where name = 'syllabus.pdf' and retired_at is not null`;
    expect(kept?.n).toBe(2);
  });
});

describe('who uploads and who reads', () => {
  beforeAll(async () => {
    expect((await upload('who.pdf', PDF)).status).toBe(201);
  });

  test('students of the programme read while active or on hold; others get 404, other roles 403', async () => {
    const statusOf = async (as: TestUser | null) => (await send('GET', fileUrl('who.pdf'), { as })).status;
    expect(await statusOf(students.get('active') as TestUser)).toBe(200);
    expect(await statusOf(students.get('on_hold') as TestUser)).toBe(200);
    expect(await statusOf(students.get('withdrawn') as TestUser)).toBe(404);
    expect(await statusOf(students.get('other programme') as TestUser)).toBe(404);
    expect(await statusOf(otherInstructor)).toBe(404);
    expect(await statusOf(accounts.registrar)).toBe(403);
    expect(await statusOf(null)).toBe(401);
  });

  test('students cannot upload, list or retire; another programme’s instructor reaches nothing', async () => {
    const student = students.get('active') as TestUser;
    expect((await upload('mine.pdf', PDF, 'application/pdf', student)).status).toBe(403);
    expect((await send('GET', `/modules/${moduleId()}/files`, { as: student })).status).toBe(403);
    expect((await send('DELETE', fileUrl('who.pdf'), { as: student })).status).toBe(403);
    expect((await upload('who.pdf', PDF, 'application/pdf', otherInstructor)).status).toBe(404);
    expect((await send('GET', `/modules/${moduleId()}/files`, { as: otherInstructor })).status).toBe(404);
    expect((await send('DELETE', fileUrl('who.pdf'), { as: otherInstructor })).status).toBe(404);
    expect((await send('GET', fileUrl('who.pdf'), { as: instructor })).status).toBe(200);
  });
});
