// Transcripts: a dated snapshot of a student's record in one programme, built from the latest
// enrollment's progress (every module of the programme in order, clock hours, status, score) with the
// GPA of the old system (mean of the scores / 25, at most 4.0, two decimals), rendered to PDF with the
// student's decrypted name (the old system printed ciphertext, original-system.md §6.21) and stored in
// the database with its SHA-256 (instances are ephemeral: nothing goes to local disk).
//
// The module lines are stored with the transcript (transcripts.lines), so reading it later shows what it
// certified, not today's progress.
//
// The registrar and admins generate and read any transcript; a student reads their own. Anyone else gets
// a 404. Transcripts are never deleted: regenerating makes a new one.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PDFDocument, PDFFont, PDFPage } from 'pdf-lib';
import { z } from 'zod';
import { type Caller, type RecordReach, type Role, recordVisibleSql, scopeOf } from '../lib/access';
import { decryptBytes, decryptRows, encryptBytes } from '../lib/crypto';
import type { Sql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { bytes, created, json } from '../lib/http';

const ISSUERS: readonly Role[] = ['registrar', 'admin'];
const SCHOOL_NAME = 'Atlanta Academy of Dental Assisting';
const COMPLETE = new Set(['completed', 'passed']);

// ---------------------------------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------------------------------

/**
 * One module row of a transcript, as returned and as stored in transcripts.lines. A type alias, not an
 * interface: only an alias is assignable to postgres.js's JSONValue (sql.json).
 */
type ModuleLine = {
  position: number;
  code: string;
  title: string;
  clockHours: number;
  status: string;
  score: number | null;
};

interface TranscriptSource {
  enrollment_id: string;
  enrollment_status: string;
  start_date: Date;
  expected_end_date: Date | null;
  program_code: string;
  program_name: string;
  credential_level: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  modules: ModuleLine[];
}

/**
 * The old rule, kept: the mean of the scores of the modules that have one, divided by 25, at most 4.0,
 * rounded half up to two decimals; null when no module has a score. Computed in integers (the score sum
 * × 4 / count is the GPA × 100) so no floating-point residue can tip the rounding.
 */
function gpaOf(scores: readonly number[]): number | null {
  if (scores.length === 0) return null;
  const sum = scores.reduce((total, score) => total + score, 0);
  return Math.min(400, Math.round((sum * 4) / scores.length)) / 100;
}

function clockHoursOf(modules: readonly ModuleLine[]): { totalClockHours: number; completedClockHours: number } {
  const hours = (lines: readonly ModuleLine[]) => lines.reduce((sum, module) => sum + module.clockHours, 0);
  return {
    totalClockHours: hours(modules),
    completedClockHours: hours(modules.filter((module) => COMPLETE.has(module.status))),
  };
}

const STATUS_LABELS: Record<string, string> = {
  not_started: 'Not started',
  incomplete: 'In progress',
  completed: 'Completed',
  passed: 'Passed',
  failed: 'Failed',
};

// ---------------------------------------------------------------------------------------------------
// The PDF
// ---------------------------------------------------------------------------------------------------

/**
 * Loaded on the first transcript, not at import: pdf-lib and fontkit cost about a second to load,
 * which no other request of this app should pay on a cold start.
 */
type PdfLib = typeof import('pdf-lib');
type Fontkit = Parameters<PDFDocument['registerFontkit']>[0];

const requireHere = createRequire(__filename);
let pdfLib: PdfLib | undefined;
let unicodeKit: { fontkit: Fontkit; regular: Buffer; bold: Buffer } | undefined;

/**
 * DejaVu Sans (Latin incl. Vietnamese, Greek, Cyrillic) for text the standard PDF fonts cannot encode
 * (they know WinAnsi only). Loaded only when a transcript needs it, and embedded as a subset.
 */
function loadUnicodeKit() {
  unicodeKit ??= {
    fontkit: requireHere('@pdf-lib/fontkit') as Fontkit,
    regular: readFileSync(requireHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf')),
    bold: readFileSync(requireHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf')),
  };
  return unicodeKit;
}

interface Face {
  regular: PDFFont;
  bold: PDFFont;
  /** Code points both weights can draw. */
  drawable: Set<number>;
}

type Weight = 'regular' | 'bold';

const faceOf = (regular: PDFFont, bold: PDFFont): Face => {
  const boldSet = new Set(bold.getCharacterSet());
  return { regular, bold, drawable: new Set(regular.getCharacterSet().filter((code) => boldSet.has(code))) };
};

/** Composed (NFC) so accented letters use precomposed glyphs; control characters become spaces. */
const cleaned = (text: string) => text.normalize('NFC').replace(/\p{Cc}/gu, ' ');
const drawableBy = (face: Face, text: string) => [...text].every((char) => face.drawable.has(char.codePointAt(0)!));

/**
 * Chooses a font per string: Helvetica (built into every PDF reader, nothing to embed) when it can draw
 * the string, else DejaVu Sans, embedded only if some string of this document needs it. A character
 * neither can draw (e.g. CJK) is printed as "?", and the document then says the record holds the exact
 * spelling: a name never breaks the PDF.
 */
class Typesetter {
  missingGlyphs = false;

  private constructor(
    private readonly standard: Face,
    private readonly unicode: Face | null,
  ) {}

  static async for(doc: PDFDocument, pdf: PdfLib, texts: readonly string[]): Promise<Typesetter> {
    const standard = faceOf(
      await doc.embedFont(pdf.StandardFonts.Helvetica),
      await doc.embedFont(pdf.StandardFonts.HelveticaBold),
    );
    if (texts.every((text) => drawableBy(standard, cleaned(text)))) return new Typesetter(standard, null);
    const kit = loadUnicodeKit();
    doc.registerFontkit(kit.fontkit);
    const unicode = faceOf(
      await doc.embedFont(kit.regular, { subset: true }),
      await doc.embedFont(kit.bold, { subset: true }),
    );
    return new Typesetter(standard, unicode);
  }

  /** The text as it will be drawn, and the font to draw it with. */
  set(value: string, weight: Weight): { text: string; font: PDFFont } {
    const text = cleaned(value);
    if (drawableBy(this.standard, text) || !this.unicode) {
      return { text: this.replaceMissing(text, this.standard), font: this.standard[weight] };
    }
    return { text: this.replaceMissing(text, this.unicode), font: this.unicode[weight] };
  }

  private replaceMissing(text: string, face: Face): string {
    let out = '';
    for (const char of text) {
      if (face.drawable.has(char.codePointAt(0)!)) {
        out += char;
      } else {
        out += '?';
        this.missingGlyphs = true;
      }
    }
    return out;
  }
}

/** Cuts text to `width` points with an ellipsis. */
function fitted(text: string, font: PDFFont, size: number, width: number): string {
  if (font.widthOfTextAtSize(text, size) <= width) return text;
  const chars = [...text];
  while (chars.length > 0 && font.widthOfTextAtSize(`${chars.join('')}…`, size) > width) chars.pop();
  return `${chars.join('')}…`;
}

interface TranscriptView {
  id: string;
  generatedAt: Date;
  studentId: string;
  studentName: string;
  programCode: string;
  programName: string;
  credentialLevel: string;
  enrollmentStatus: string;
  startDate: string;
  expectedEndDate: string | null;
  modules: ModuleLine[];
  gpa: number | null;
  totalClockHours: number;
  completedClockHours: number;
}

const PAGE = { width: 612, height: 792, margin: 54 }; // US Letter, 3/4 inch margins
const COLUMNS = [
  { title: '#', x: 0, width: 22 },
  { title: 'Code', x: 22, width: 62 },
  { title: 'Module', x: 84, width: 228 },
  { title: 'Hours', x: 312, width: 44 },
  { title: 'Status', x: 356, width: 90 },
  { title: 'Score', x: 446, width: 58 },
] as const;

async function renderTranscriptPdf(view: TranscriptView): Promise<Uint8Array> {
  pdfLib ??= requireHere('pdf-lib') as PdfLib;
  const doc = await pdfLib.PDFDocument.create();
  const cells = (module: ModuleLine) => [
    String(module.position),
    module.code,
    module.title,
    String(module.clockHours),
    STATUS_LABELS[module.status] ?? module.status,
    module.score === null ? '—' : String(module.score),
  ];
  const studentLine = `Student: ${view.studentName}`;
  const programLine = `Program: ${view.programName} (${view.programCode}), ${view.credentialLevel}`;
  const type = await Typesetter.for(doc, pdfLib, [studentLine, programLine, ...view.modules.flatMap(cells)]);
  // No name in the document metadata: indexers and previewers show it without opening the file.
  doc.setTitle(`Transcript ${view.id}`);
  doc.setAuthor(SCHOOL_NAME);
  doc.setProducer('AADA LMS API');
  doc.setCreationDate(view.generatedAt);

  let page: PDFPage = doc.addPage([PAGE.width, PAGE.height]);
  let y = PAGE.height - PAGE.margin;
  const line = (value: string, options: { size?: number; weight?: Weight; gap?: number } = {}) => {
    const size = options.size ?? 10;
    y -= size + (options.gap ?? 4);
    const { text, font } = type.set(value, options.weight ?? 'regular');
    page.drawText(text, { x: PAGE.margin, y, size, font });
  };
  const row = (values: readonly string[], weight: Weight) => {
    y -= 14;
    if (y < PAGE.margin + 60) {
      page = doc.addPage([PAGE.width, PAGE.height]);
      y = PAGE.height - PAGE.margin - 14;
    }
    COLUMNS.forEach((column, i) => {
      const { text, font } = type.set(values[i] ?? '', weight);
      page.drawText(fitted(text, font, 9, column.width - 4), { x: PAGE.margin + column.x, y, size: 9, font });
    });
  };

  line(SCHOOL_NAME, { size: 16, weight: 'bold', gap: 0 });
  line('Official transcript', { size: 12, gap: 6 });
  y -= 8;
  line(studentLine, { size: 11, weight: 'bold' });
  line(`Student ID: ${view.studentId}`);
  line(programLine);
  line(
    `Enrollment: ${view.enrollmentStatus}, started ${view.startDate}` +
      (view.expectedEndDate ? `, expected end ${view.expectedEndDate}` : ''),
  );
  y -= 10;
  row(
    COLUMNS.map((column) => column.title),
    'bold',
  );
  for (const module of view.modules) row(cells(module), 'regular');
  y -= 10;
  line(`Clock hours completed: ${view.completedClockHours} of ${view.totalClockHours}`);
  line(`GPA: ${view.gpa === null ? 'not available (no scored modules)' : view.gpa.toFixed(2)}`, {
    size: 11,
    weight: 'bold',
  });
  y -= 10;
  line(`Generated: ${view.generatedAt.toISOString()}`, { size: 8 });
  line(`Transcript ID: ${view.id}`, { size: 8 });
  if (type.missingGlyphs) {
    line('Characters this document cannot display are shown as "?"; the student record holds the exact spelling.', {
      size: 8,
    });
  }
  return doc.save();
}

// ---------------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------------

const NewTranscript = z.strictObject({ studentId: z.uuid(), programId: z.uuid() });
const TranscriptParams = z.object({ id: z.uuid() });

const dateOnly = (value: Date) => value.toISOString().slice(0, 10);

endpoint({
  name: 'transcripts-create',
  methods: ['POST'],
  route: 'transcripts',
  access: ISSUERS,
  phi: true,
  body: NewTranscript,
  handler: async ({ sql, body, caller, audit }) => {
    // One round trip: the latest enrollment, the programme, the name ciphertexts and every module in
    // order with this enrollment's progress (modules without a row are "not started").
    const [source] = await sql<TranscriptSource[]>`
      with enrollment as (
        select * from enrollments
         where user_id = ${body.studentId} and program_id = ${body.programId}
         order by start_date desc, created_at desc
         limit 1)
      select e.id as enrollment_id, e.status as enrollment_status, e.start_date, e.expected_end_date,
             p.code as program_code, p.name as program_name, p.credential_level,
             u.first_name_ciphertext, u.last_name_ciphertext,
             coalesce((select json_agg(json_build_object(
                                'position', m.position, 'code', m.code, 'title', m.title, 'clockHours', m.clock_hours,
                                'status', coalesce(mp.status, 'not_started'), 'score', mp.score)
                              order by m.position)
                         from modules m
                         left join module_progress mp on mp.module_id = m.id and mp.enrollment_id = e.id
                        where m.program_id = p.id), '[]') as modules
        from enrollment e
        join programs p on p.id = e.program_id
        join users u on u.id = e.user_id`;
    if (!source) throw notFound('This student has no enrollment in this programme');
    const [names] = decryptRows([source], {
      first_name_ciphertext: 'users.first_name',
      last_name_ciphertext: 'users.last_name',
    });
    const scores = source.modules.flatMap((module) => (module.score === null ? [] : [module.score]));
    const view: TranscriptView = {
      id: randomUUID(),
      generatedAt: new Date(),
      studentId: body.studentId,
      studentName: `${names?.first_name_ciphertext} ${names?.last_name_ciphertext}`,
      programCode: source.program_code,
      programName: source.program_name,
      credentialLevel: source.credential_level,
      enrollmentStatus: source.enrollment_status,
      startDate: dateOnly(source.start_date),
      expectedEndDate: source.expected_end_date ? dateOnly(source.expected_end_date) : null,
      modules: source.modules,
      gpa: gpaOf(scores),
      ...clockHoursOf(source.modules),
    };
    const content = await renderTranscriptPdf(view);
    const sha256 = createHash('sha256').update(content).digest();
    await sql`
      with transcript as (
        insert into transcripts (id, user_id, program_id, gpa, lines, generated_at, generated_by)
        values (${view.id}, ${body.studentId}, ${body.programId}, ${view.gpa}, ${sql.json(view.modules)},
                ${view.generatedAt}, ${caller.userId})
        returning id)
      insert into transcript_documents (transcript_id, content_ciphertext, content_length, content_type, sha256)
      select id, ${encryptBytes(content, 'transcript_documents.content')}, ${content.byteLength}, 'application/pdf',
             ${sha256}
        from transcript`;
    audit.resourceIds.transcriptId = view.id;
    return created(
      {
        id: view.id,
        studentId: view.studentId,
        studentName: view.studentName,
        programId: body.programId,
        program: { code: view.programCode, name: view.programName, credentialLevel: view.credentialLevel },
        enrollmentId: source.enrollment_id,
        enrollmentStatus: view.enrollmentStatus,
        gpa: view.gpa,
        totalClockHours: view.totalClockHours,
        completedClockHours: view.completedClockHours,
        modules: view.modules,
        generatedAt: view.generatedAt.toISOString(),
        pdf: { href: `/api/transcripts/${view.id}/pdf`, bytes: content.byteLength, sha256: sha256.toString('hex') },
      },
      `/api/transcripts/${view.id}`,
    );
  },
});

interface TranscriptRow {
  id: string;
  user_id: string;
  program_id: string;
  program_code: string;
  program_name: string;
  gpa: string | null;
  /** Null for transcripts generated before 0004 stored the lines (their PDF holds them). */
  lines: ModuleLine[] | null;
  generated_at: Date;
  generated_by: string | null;
  pdf_bytes: number | null;
  sha256: Buffer | null;
}

/** Registrar and admin reach every transcript, a student their own; the rest is a 404. */
const TRANSCRIPT_REACH: RecordReach = { all: ISSUERS, taught: false };
const visibleTo = (sql: Sql, caller: Caller) =>
  recordVisibleSql(sql, scopeOf(caller, TRANSCRIPT_REACH), { owner: sql`t.user_id`, program: sql`t.program_id` });

endpoint({
  name: 'transcripts-get',
  methods: ['GET'],
  route: 'transcripts/{id}',
  access: ['student', ...ISSUERS],
  phi: true,
  params: TranscriptParams,
  handler: async ({ sql, params, caller }) => {
    const [row] = await sql<TranscriptRow[]>`
      select t.id, t.user_id, t.program_id, p.code as program_code, p.name as program_name, t.gpa, t.lines,
             t.generated_at, t.generated_by, d.content_length as pdf_bytes, d.sha256
        from transcripts t
        join programs p on p.id = t.program_id
        left join transcript_documents d on d.transcript_id = t.id
       where t.id = ${params.id} and ${visibleTo(sql, caller)}`;
    if (!row) throw notFound('No such transcript');
    return json({
      id: row.id,
      studentId: row.user_id,
      programId: row.program_id,
      program: { code: row.program_code, name: row.program_name },
      gpa: row.gpa === null ? null : Number(row.gpa),
      ...(row.lines === null ? { totalClockHours: null, completedClockHours: null } : clockHoursOf(row.lines)),
      modules: row.lines,
      generatedAt: row.generated_at.toISOString(),
      generatedBy: row.generated_by,
      pdf: row.sha256
        ? { href: `/api/transcripts/${row.id}/pdf`, bytes: row.pdf_bytes, sha256: row.sha256.toString('hex') }
        : null,
    });
  },
});

endpoint({
  name: 'transcripts-pdf',
  methods: ['GET'],
  route: 'transcripts/{id}/pdf',
  access: ['student', ...ISSUERS],
  phi: true,
  params: TranscriptParams,
  handler: async ({ sql, params, caller }) => {
    const [row] = await sql<
      { content_ciphertext: Buffer | null; content: Buffer | null; content_type: string; sha256: Buffer }[]
    >`
      select d.content_ciphertext, d.content, d.content_type, d.sha256
        from transcripts t
        join transcript_documents d on d.transcript_id = t.id
       where t.id = ${params.id} and ${visibleTo(sql, caller)}`;
    if (!row) throw notFound('No such transcript');
    // `content` is legacy plaintext from before migration 0008, until keys:rotate encrypts it.
    const content = row.content_ciphertext
      ? decryptBytes(row.content_ciphertext, 'transcript_documents.content')
      : (row.content as Buffer);
    return bytes(new Uint8Array(content), row.content_type, {
      'Content-Disposition': `attachment; filename="transcript-${params.id}.pdf"`,
      // RFC 9530: lets the client check the bytes against the digest the API reported at creation.
      'Repr-Digest': `sha-256=:${row.sha256.toString('base64')}:`,
    });
  },
});
