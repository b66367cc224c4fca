// Transcripts over HTTP: the record built from progress, the old GPA rule, a PDF that shows the
// decrypted name (read back with a PDF text extractor), stored in the database and streamed only to
// the student and the registrar.
import { createHash } from 'node:crypto';
import pdfLib from 'pdf-lib';
import { extractText, getDocumentProxy } from 'unpdf';
import { beforeAll, describe, expect, test } from 'vitest';
import { calendarDate, schoolDate } from '../lib/school';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram, createTranscript, recordProgress } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let registrar: TestUser;
let admin: TestUser;
let instructor: TestUser;
let student: TestUser;
let otherStudent: TestUser;

let programCounter = 0;
/** A programme with modules of the given clock hours (codes T1..Tn, in order). */
function programWith(hours: number[]) {
  programCounter += 1;
  return createProgram(app.db.sql, {
    code: `TR-${programCounter}`,
    name: 'Dental Assisting (20 weeks)',
    hours,
    modulePrefix: 'T',
  });
}

/** Enrolls `user` and records the given (status, score) per module; `null` leaves a module without a row. */
async function enrollWithProgress(
  user: TestUser,
  programId: string,
  moduleIds: string[],
  progress: ([string, number | null] | null)[],
): Promise<string> {
  const sql = app.db.sql;
  const enrollmentId = await createEnrollment(sql, user.id, programId, { startDate: '2026-01-05' });
  for (const [i, entry] of progress.entries()) {
    if (entry) await recordProgress(sql, enrollmentId, moduleIds[i] as string, { status: entry[0], score: entry[1] });
  }
  return enrollmentId;
}

const post = (user: TestUser | null, body: unknown) => send('POST', '/transcripts', { as: user, body });
const get = (path: string, user: TestUser | null) => send('GET', path, { as: user });

interface Transcript {
  id: string;
  kind: 'official' | 'unofficial';
  generatedAt: string;
  gpa: number | null;
  studentName: string;
  totalClockHours: number;
  completedClockHours: number;
  modules: {
    position: number;
    code: string;
    title: string;
    status: string;
    score: number | null;
    clockHours: number;
  }[];
  pdf: { href: string; bytes: number; sha256: string };
}

async function pdfText(bytes: ArrayBuffer): Promise<string> {
  // A copy: PDF.js takes ownership of (detaches) the buffer it is given.
  const document = await getDocumentProxy(new Uint8Array(bytes.slice(0)));
  const { text } = await extractText(document, { mergePages: true });
  return text;
}

/** The base font names a PDF uses (its font dictionaries sit in compressed object streams). */
async function fontsOf(bytes: ArrayBuffer): Promise<string[]> {
  const document = await pdfLib.PDFDocument.load(new Uint8Array(bytes.slice(0)));
  const { PDFDict, PDFName } = pdfLib;
  return document.context
    .enumerateIndirectObjects()
    .flatMap(([, object]) =>
      object instanceof PDFDict && object.get(PDFName.of('Type')) === PDFName.of('Font')
        ? [String(object.get(PDFName.of('BaseFont')))]
        : [],
    );
}

beforeAll(async () => {
  const sql = app.db.sql;
  ({ registrar, admin, instructor } = await createRoleAccounts(sql));
  student = await createTestUser(sql, { roles: ['student'], firstName: 'Zoë', lastName: 'Nguyễn' });
  otherStudent = await createTestUser(sql, { roles: ['student'] });
});

describe('generating a transcript', () => {
  test('modules in order with scores and hours, the old GPA rule, and a PDF with the real name', async () => {
    const { programId, moduleIds } = await programWith([20, 40, 60, 80]);
    // Scores 95, 88, 72: mean 85 → GPA 3.40. The fourth module has no progress row at all.
    await enrollWithProgress(student, programId, moduleIds, [['passed', 95], ['completed', 88], ['failed', 72], null]);
    const response = await post(registrar, { studentId: student.id, programId });
    expect(response.status).toBe(201);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const transcript = (await response.json()) as Transcript;
    expect(response.headers.get('location')).toBe(`/api/transcripts/${transcript.id}`);
    expect(transcript.gpa).toBe(3.4);
    expect(transcript.studentName).toBe('Zoë Nguyễn');
    expect(transcript.modules.map((m) => [m.code, m.status, m.score, m.clockHours])).toEqual([
      ['T1', 'passed', 95, 20],
      ['T2', 'completed', 88, 40],
      ['T3', 'failed', 72, 60],
      ['T4', 'not_started', null, 80],
    ]);
    expect(transcript.totalClockHours).toBe(200);
    expect(transcript.completedClockHours).toBe(60);

    const pdf = await get(transcript.pdf.href.replace(/^\/api/, ''), registrar);
    expect(pdf.status).toBe(200);
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    expect(pdf.headers.get('cache-control')).toBe('no-store');
    expect(pdf.headers.get('content-disposition')).toBe(`attachment; filename="transcript-${transcript.id}.pdf"`);
    const bytes = await pdf.arrayBuffer();
    const digest = createHash('sha256').update(Buffer.from(bytes)).digest();
    expect(digest.toString('hex')).toBe(transcript.pdf.sha256);
    expect(pdf.headers.get('repr-digest')).toBe(`sha-256=:${digest.toString('base64')}:`);

    // "ễ" is outside WinAnsi: the Unicode font is embedded (a subset) for this transcript.
    expect(await fontsOf(bytes)).toEqual(expect.arrayContaining([expect.stringMatching(/^\/DejaVuSans-\d+$/)]));
    const text = await pdfText(bytes);
    expect(text).toContain('Zoë Nguyễn');
    expect(text).toContain('GPA: 3.40');
    expect(text).toContain(transcript.id);
    expect(text).toContain('Dental Assisting (20 weeks)');
    expect(text).not.toMatch(/v1\.[\w-]+\./); // no ciphertext (original-system.md §6.21)
    expect(text).not.toContain('?');

    const [stored] = await app.db.sql<{ gpa: string; sha256: Buffer; size: number; plaintext: Buffer | null }[]>`
      select t.gpa::text as gpa, d.sha256, d.content_length as size, d.content as plaintext
        from transcripts t join transcript_documents d on d.transcript_id = t.id where t.id = ${transcript.id}`;
    expect(stored?.gpa).toBe('3.40');
    expect(stored?.sha256.toString('hex')).toBe(transcript.pdf.sha256);
    expect(stored?.size).toBe(bytes.byteLength);
    expect(stored?.plaintext).toBeNull(); // stored encrypted (test/pii-at-rest.test.ts scans the bytes)
  });

  test('GPA: capped at 4.0, rounded to two decimals, absent without scores', async () => {
    const cases: [([string, number | null] | null)[], number | null, string][] = [
      [
        [
          ['passed', 100],
          ['passed', 100],
        ],
        4,
        'GPA: 4.00',
      ],
      // (83 + 84 + 84) / 3 / 25 = 3.3466… → 3.35
      [
        [
          ['passed', 83],
          ['passed', 84],
          ['passed', 84],
        ],
        3.35,
        'GPA: 3.35',
      ],
      [[['completed', null], null], null, 'GPA: not available'],
    ];
    for (const [progress, gpa, printed] of cases) {
      const someone = await createTestUser(app.db.sql, { roles: ['student'] });
      const { programId, moduleIds } = await programWith(progress.map(() => 10));
      await enrollWithProgress(someone, programId, moduleIds, progress);
      const response = await post(admin, { studentId: someone.id, programId });
      expect(response.status).toBe(201);
      const transcript = (await response.json()) as Transcript;
      expect(transcript.gpa).toBe(gpa);
      const pdf = await get(`/transcripts/${transcript.id}/pdf`, admin);
      const bytes = await pdf.arrayBuffer();
      expect(await pdfText(bytes)).toContain(printed);
      // A name Helvetica can draw needs no embedded font.
      expect((await fontsOf(bytes)).sort()).toEqual(['/Helvetica', '/Helvetica-Bold']);
    }
  });

  test('a name the fonts cannot draw never breaks the PDF: it is marked, and the record keeps it', async () => {
    const someone = await createTestUser(app.db.sql, {
      roles: ['student'],
      firstName: '王小明',
      lastName: "O'Brien-Łukasiewicz\u0000<script>",
    });
    const { programId, moduleIds } = await programWith([10]);
    await enrollWithProgress(someone, programId, moduleIds, [['passed', 90]]);
    const response = await post(registrar, { studentId: someone.id, programId });
    expect(response.status).toBe(201);
    const transcript = (await response.json()) as Transcript;
    expect(transcript.studentName).toBe("王小明 O'Brien-Łukasiewicz\u0000<script>");
    const text = await pdfText(await (await get(`/transcripts/${transcript.id}/pdf`, registrar)).arrayBuffer());
    expect(text).toContain("??? O'Brien-Łukasiewicz <script>");
    expect(text).toContain('the student record holds the exact spelling');
  });

  test('regenerating makes a new transcript; no enrollment is a 404; bad input a 400', async () => {
    const { programId, moduleIds } = await programWith([10]);
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    await enrollWithProgress(someone, programId, moduleIds, [['passed', 70]]);
    const first = (await (await post(registrar, { studentId: someone.id, programId })).json()) as Transcript;
    const second = (await (await post(registrar, { studentId: someone.id, programId })).json()) as Transcript;
    expect(second.id).not.toBe(first.id);
    expect((await post(registrar, { studentId: otherStudent.id, programId })).status).toBe(404);
    const bad = await post(registrar, { studentId: 'nope', programId, extra: true });
    expect(bad.status).toBe(400);
  });
});

describe('a transcript is a record of what was true when it was issued', () => {
  test("reading it returns the lines it was generated with, not today's progress or titles", async () => {
    const { programId, moduleIds } = await programWith([10, 30]);
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const enrollmentId = await enrollWithProgress(someone, programId, moduleIds, [['passed', 90], null]);
    const generated = (await (await post(registrar, { studentId: someone.id, programId })).json()) as Transcript;
    const certified = [
      { position: 1, code: 'T1', title: 'Module 1', clockHours: 10, status: 'passed', score: 90 },
      { position: 2, code: 'T2', title: 'Module 2', clockHours: 30, status: 'not_started', score: null },
    ];
    expect(generated.modules).toEqual(certified);

    // Afterwards the student completes the second module and the first is renamed and regraded.
    const sql = app.db.sql;
    await recordProgress(sql, enrollmentId, moduleIds[1] as string, { status: 'passed', score: 100 });
    await sql`update module_progress set score = 40, status = 'failed'
               where enrollment_id = ${enrollmentId} and module_id = ${moduleIds[0] as string}`;
    await sql`update modules set title = 'Renamed <b>module</b>', clock_hours = 99 where id = ${moduleIds[0] as string}`;

    for (const reader of [someone, registrar]) {
      const response = await get(`/transcripts/${generated.id}`, reader);
      expect(response.status).toBe(200);
      const read = (await response.json()) as Transcript;
      expect(read.modules).toEqual(certified);
      expect(read).toMatchObject({ gpa: 3.6, totalClockHours: 40, completedClockHours: 10 });
    }
    const [stored] = await sql<{ lines: unknown }[]>`select lines from transcripts where id = ${generated.id}`;
    expect(stored?.lines).toEqual(certified);
  });

  test('a transcript generated before lines were stored reads with modules null, not an invented list', async () => {
    const { programId } = await programWith([10]);
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const transcriptId = await createTranscript(app.db.sql, someone.id, programId, { gpa: 3.2 });
    const response = await get(`/transcripts/${transcriptId}`, someone);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      gpa: 3.2,
      modules: null,
      totalClockHours: null,
      completedClockHours: null,
      pdf: null,
    });
  });

  test('the schema refuses lines that are not an array', async () => {
    const { programId } = await programWith([10]);
    await expect(
      app.db.sql`insert into transcripts (user_id, program_id, lines)
                 values (${student.id}, ${programId}, ${app.db.sql.json({ code: 'T1' })})`,
    ).rejects.toMatchObject({ code: '23514' });
  });
});

describe('who reaches a transcript', () => {
  let transcriptId: string;

  beforeAll(async () => {
    const { programId, moduleIds } = await programWith([10, 10]);
    await enrollWithProgress(student, programId, moduleIds, [['passed', 80], null]);
    const response = await post(registrar, { studentId: student.id, programId });
    transcriptId = ((await response.json()) as Transcript).id;
  });

  test('the student reads their own, as JSON and as PDF', async () => {
    const response = await get(`/transcripts/${transcriptId}`, student);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { gpa: number; pdf: { href: string; sha256: string } };
    expect(body.gpa).toBe(3.2);
    expect(body.pdf.href).toBe(`/api/transcripts/${transcriptId}/pdf`);
    expect((await get(`/transcripts/${transcriptId}/pdf`, student)).status).toBe(200);
  });

  test("someone else's transcript is a 404; other roles 403; anonymous 401", async () => {
    expect((await get(`/transcripts/${transcriptId}`, otherStudent)).status).toBe(404);
    expect((await get(`/transcripts/${transcriptId}/pdf`, otherStudent)).status).toBe(404);
    expect((await get(`/transcripts/${transcriptId}`, instructor)).status).toBe(403);
    expect((await get(`/transcripts/${transcriptId}/pdf`, null)).status).toBe(401);
    expect((await post(student, { studentId: student.id, programId: student.id })).status).toBe(403);
    expect((await post(instructor, { studentId: student.id, programId: student.id })).status).toBe(403);
    expect((await get('/transcripts/00000000-0000-4000-8000-000000000000', registrar)).status).toBe(404);
  });

  test('every read of a transcript is audited as PHI', async () => {
    const rows = await app.db.sql`
      select route, status, phi from audit_log
       where resource_ids ->> 'id' = ${transcriptId} order by id`;
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.every((row) => row.phi === true)).toBe(true);
  });
});

describe('official or a progress report, issued on a date a person reads', () => {
  const MONTHS = [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ];
  /** The day an instant fell on in Atlanta, spelt out (worked out here from the time zone's calendar parts). */
  function dayInAtlanta(iso: string): string {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat('en-US', {
        timeZone: 'America/New_York',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
      })
        .formatToParts(new Date(iso))
        .map((part) => [part.type, part.value]),
    );
    return `${Number(parts.day)} ${MONTHS[Number(parts.month) - 1]} ${parts.year}`;
  }

  async function generate(enrollmentStatus: string) {
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const { programId, moduleIds } = await programWith([10]);
    const enrollmentId = await createEnrollment(app.db.sql, someone.id, programId, {
      status: enrollmentStatus,
      startDate: '2026-01-05',
    });
    await app.db.sql`insert into module_progress (enrollment_id, module_id, status, score, progress_pct)
                     values (${enrollmentId}, ${moduleIds[0] as string}, 'passed', 90, 100)`;
    const response = await post(registrar, { studentId: someone.id, programId });
    expect(response.status).toBe(201);
    const transcript = (await response.json()) as Transcript;
    const text = await pdfText(await (await get(`/transcripts/${transcript.id}/pdf`, registrar)).arrayBuffer());
    const read = (await (await get(`/transcripts/${transcript.id}`, someone)).json()) as Transcript;
    return { transcript, text, read };
  }

  test('a transcript of an enrollment that is not completed is an unofficial progress report, and says so', async () => {
    for (const status of ['active', 'on_hold', 'withdrawn']) {
      const { transcript, text, read } = await generate(status);
      expect(transcript.kind).toBe('unofficial');
      expect(read.kind).toBe('unofficial');
      expect(text).toContain('Unofficial transcript — progress report');
      expect(text).not.toMatch(/(?<!Un)Official transcript/);
      expect(text).toContain(`the enrollment is ${status}, not completed`);
    }
  });

  test('a transcript of a completed enrollment is official', async () => {
    const { transcript, text, read } = await generate('completed');
    expect(transcript.kind).toBe('official');
    expect(read.kind).toBe('official');
    expect(text).toContain('Official transcript');
    expect(text).not.toContain('Unofficial');
    expect(text).not.toContain('progress report');
  });

  test('the PDF shows the issue and enrollment dates spelt out, not ISO timestamps', async () => {
    const { transcript, text } = await generate('active');
    const issued = dayInAtlanta(transcript.generatedAt);
    expect(text).toContain(issued);
    expect(text).toContain(`issued ${issued}`); // the footer of every page
    expect(text).toContain('started 5 January 2026');
    expect(text).not.toContain(transcript.generatedAt);
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}/);
  });

  test('the issue date is the day at the school (America/New_York), whatever the UTC date', () => {
    expect(schoolDate(new Date('2026-12-01T03:30:00Z'))).toBe('30 November 2026'); // 22:30 in Atlanta
    expect(schoolDate(new Date('2026-12-01T05:00:00Z'))).toBe('1 December 2026');
    expect(schoolDate(new Date('2026-07-01T03:30:00Z'))).toBe('30 June 2026'); // daylight saving time: UTC-4
    expect(schoolDate(new Date('2026-07-01T04:30:00Z'))).toBe('1 July 2026');
    // A calendar date (PostgreSQL date) is the same day everywhere.
    expect(calendarDate(new Date('2026-01-05'))).toBe('5 January 2026');
  });

  test('a transcript generated before kinds were recorded reads with kind null', async () => {
    const { programId } = await programWith([10]);
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const [row] = await app.db.sql<{ id: string }[]>`
      insert into transcripts (user_id, program_id, gpa) values (${someone.id}, ${programId}, 3.0) returning id`;
    expect(await (await get(`/transcripts/${row?.id}`, someone)).json()).toMatchObject({ kind: null });
  });
});
