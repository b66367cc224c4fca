// Transcripts: a dated snapshot of a student's record in one programme, built from the latest
// enrollment's progress (every module of the programme in order, clock hours, status, score) with the
// school's GPA rule, printed as a PDF with the student's decrypted name (lib/pdf.ts) and kept in the
// database, encrypted, with its SHA-256 (instances are ephemeral: nothing goes to local disk).
//
// Only a transcript of a completed enrollment is official; any other is printed and returned as an
// unofficial transcript (a progress report), and says so. The module lines are stored with the
// transcript (transcripts.lines), so reading it later shows what it certified, not today's progress.
//
// Who reaches a transcript is visibleTo() below. Transcripts are never deleted: regenerating makes a
// new one.
//
// Why one file over 350 lines: the rule (GPA, clock hours), the stored snapshot and its printed view
// must agree line for line; keeping them together keeps what is certified and what is printed in step.
import { createHash, randomUUID } from 'node:crypto';
import { type Caller, type RecordReach, type Role, recordVisibleSql, scopeOf } from './access';
import { decryptBytes, decryptRows, encryptBytes } from './crypto';
import type { AnySql } from './db';
import { type Block, renderPdf } from './pdf';
import { calendarDate, SCHOOL, schoolDate } from './school';

export const ISSUERS: readonly Role[] = ['registrar', 'admin'];

/**
 * One module row of a transcript, as returned and as stored in transcripts.lines. A type alias, not an
 * interface: only an alias is assignable to postgres.js's JSONValue (sql.json).
 */
export type ModuleLine = {
  position: number;
  code: string;
  title: string;
  clockHours: number;
  status: string;
  score: number | null;
};

/** Official only for a completed enrollment (stored as transcripts.kind; NULL before migration 0008). */
export type TranscriptKind = 'official' | 'unofficial';

const COMPLETE = new Set(['completed', 'passed']);
const LABELS: Record<TranscriptKind, string> = {
  official: 'Official transcript',
  unofficial: 'Unofficial transcript — progress report',
};
const STATUS_LABELS: Record<string, string> = {
  not_started: 'Not started',
  incomplete: 'In progress',
  completed: 'Completed',
  passed: 'Passed',
  failed: 'Failed',
};

// ---------------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------------

/**
 * The old rule, kept: the mean of the scores of the modules that have one, divided by 25, at most 4.0,
 * rounded half up to two decimals; null when no module has a score. Computed in integers (the score sum
 * × 4 / count is the GPA × 100) so no floating-point residue can tip the rounding.
 */
export function gpaOf(modules: readonly ModuleLine[]): number | null {
  const scores = modules.flatMap((module) => (module.score === null ? [] : [module.score]));
  if (scores.length === 0) return null;
  const sum = scores.reduce((total, score) => total + score, 0);
  return Math.min(400, Math.round((sum * 4) / scores.length)) / 100;
}

export function clockHoursOf(modules: readonly ModuleLine[]): { totalClockHours: number; completedClockHours: number } {
  const hours = (lines: readonly ModuleLine[]) => lines.reduce((sum, module) => sum + module.clockHours, 0);
  return {
    totalClockHours: hours(modules),
    completedClockHours: hours(modules.filter((module) => COMPLETE.has(module.status))),
  };
}

export const kindOf = (enrollmentStatus: string): TranscriptKind =>
  enrollmentStatus === 'completed' ? 'official' : 'unofficial';

// ---------------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------------

/** Registrar and admin reach every transcript, a student their own; the rest is a 404. */
const TRANSCRIPT_REACH: RecordReach = { all: ISSUERS, taught: false };
export const visibleTo = (sql: AnySql, caller: Caller) =>
  recordVisibleSql(sql, scopeOf(caller, TRANSCRIPT_REACH), { owner: sql`t.user_id`, program: sql`t.program_id` });

// ---------------------------------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------------------------------

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
 * The latest enrollment of the student in the programme, the programme, the name ciphertexts and every
 * module in order with this enrollment's progress (modules without a row are "not started"): one round
 * trip.
 */
async function latestEnrollmentRecord(sql: AnySql, studentId: string, programId: string) {
  const [source] = await sql<TranscriptSource[]>`
    with enrollment as (
      select * from enrollments
       where user_id = ${studentId} and program_id = ${programId}
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
  return source;
}

/** What a new transcript says, as printed and as returned. */
export interface Transcript {
  id: string;
  kind: TranscriptKind;
  generatedAt: Date;
  studentId: string;
  studentName: string;
  programId: string;
  programCode: string;
  programName: string;
  credentialLevel: string;
  enrollmentId: string;
  enrollmentStatus: string;
  startDate: Date;
  expectedEndDate: Date | null;
  modules: ModuleLine[];
  gpa: number | null;
}

function transcriptOf(source: TranscriptSource, studentId: string, programId: string): Transcript {
  const [names] = decryptRows([source], {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  });
  return {
    id: randomUUID(),
    kind: kindOf(source.enrollment_status),
    generatedAt: new Date(),
    studentId,
    studentName: `${names?.first_name_ciphertext} ${names?.last_name_ciphertext}`,
    programId,
    programCode: source.program_code,
    programName: source.program_name,
    credentialLevel: source.credential_level,
    enrollmentId: source.enrollment_id,
    enrollmentStatus: source.enrollment_status,
    startDate: source.start_date,
    expectedEndDate: source.expected_end_date,
    modules: source.modules,
    gpa: gpaOf(source.modules),
  };
}

const TABLE_COLUMNS = [
  { title: '#', width: 22, align: 'right' },
  { title: 'Code', width: 62 },
  { title: 'Module', width: 228 },
  { title: 'Hours', width: 44, align: 'right' },
  { title: 'Status', width: 90 },
  { title: 'Score', width: 58, align: 'right' },
] as const;

/** The transcript as a document (lib/pdf.ts). No name in the metadata: viewers show it unopened. */
export function transcriptDocument(transcript: Transcript) {
  const issued = schoolDate(transcript.generatedAt);
  const { totalClockHours, completedClockHours } = clockHoursOf(transcript.modules);
  const enrollment =
    `${transcript.enrollmentStatus}, started ${calendarDate(transcript.startDate)}` +
    (transcript.expectedEndDate ? `, expected end ${calendarDate(transcript.expectedEndDate)}` : '');
  const blocks: Block[] = [
    { kind: 'heading', text: SCHOOL.name, level: 1 },
    { kind: 'heading', text: LABELS[transcript.kind], level: 2 },
    { kind: 'space', points: 8 },
    {
      kind: 'fields',
      rows: [
        ['Student', transcript.studentName],
        ['Student ID', transcript.studentId],
        ['Program', `${transcript.programName} (${transcript.programCode}), ${transcript.credentialLevel}`],
        ['Enrollment', enrollment],
        ['Issued', issued],
        ['Transcript ID', transcript.id],
      ],
    },
    { kind: 'space', points: 10 },
    {
      kind: 'table',
      columns: TABLE_COLUMNS,
      rows: transcript.modules.map((module) => [
        String(module.position),
        module.code,
        module.title,
        String(module.clockHours),
        STATUS_LABELS[module.status] ?? module.status,
        module.score === null ? '—' : String(module.score),
      ]),
    },
    { kind: 'space', points: 10 },
    { kind: 'text', text: `Clock hours completed: ${completedClockHours} of ${totalClockHours}` },
    {
      kind: 'text',
      text: `GPA: ${transcript.gpa === null ? 'not available (no scored modules)' : transcript.gpa.toFixed(2)}`,
      size: 11,
      bold: true,
    },
  ];
  if (transcript.kind === 'unofficial') {
    blocks.push(
      { kind: 'space', points: 8 },
      {
        kind: 'text',
        text: `This is not an official transcript: the enrollment is ${transcript.enrollmentStatus}, not completed. It reports progress on ${issued}.`,
      },
    );
  }
  return {
    title: `${LABELS[transcript.kind]} ${transcript.id}`,
    author: SCHOOL.name,
    createdAt: transcript.generatedAt,
    blocks,
    footer: `${LABELS[transcript.kind]} · ${transcript.id} · issued ${issued}`,
    missingGlyphsNote:
      'Characters this document cannot display are shown as "?"; the student record holds the exact spelling.',
  };
}

/** The PDF as stored and served: its bytes, size and SHA-256. */
export interface StoredPdf {
  content: Uint8Array;
  sha256: Buffer;
}

async function insertTranscript(sql: AnySql, transcript: Transcript, pdf: StoredPdf, issuerId: string) {
  await sql`
    with transcript as (
      insert into transcripts (id, user_id, program_id, kind, gpa, lines, generated_at, generated_by)
      values (${transcript.id}, ${transcript.studentId}, ${transcript.programId}, ${transcript.kind},
              ${transcript.gpa}, ${sql.json(transcript.modules)}, ${transcript.generatedAt}, ${issuerId})
      returning id)
    insert into transcript_documents (transcript_id, content_ciphertext, content_length, content_type, sha256)
    select id, ${encryptBytes(pdf.content, 'transcript_documents.content')}, ${pdf.content.byteLength},
           'application/pdf', ${pdf.sha256}
      from transcript`;
}

/** Generates, prints and stores a transcript; null when the student has no enrollment in the programme. */
export async function generateTranscript(
  sql: AnySql,
  request: { studentId: string; programId: string },
  issuer: Caller,
): Promise<{ transcript: Transcript; pdf: StoredPdf } | null> {
  const source = await latestEnrollmentRecord(sql, request.studentId, request.programId);
  if (!source) return null;
  const transcript = transcriptOf(source, request.studentId, request.programId);
  const content = await renderPdf(transcriptDocument(transcript));
  const pdf = { content, sha256: createHash('sha256').update(content).digest() };
  await insertTranscript(sql, transcript, pdf, issuer.userId);
  return { transcript, pdf };
}

const pdfLink = (id: string, bytes: number | null, sha256: Buffer) => ({
  href: `/api/transcripts/${id}/pdf`,
  bytes,
  sha256: sha256.toString('hex'),
});

/** A new transcript as the API returns it. */
export const toNewTranscriptView = ({ transcript, pdf }: { transcript: Transcript; pdf: StoredPdf }) => ({
  id: transcript.id,
  kind: transcript.kind,
  studentId: transcript.studentId,
  studentName: transcript.studentName,
  programId: transcript.programId,
  program: { code: transcript.programCode, name: transcript.programName, credentialLevel: transcript.credentialLevel },
  enrollmentId: transcript.enrollmentId,
  enrollmentStatus: transcript.enrollmentStatus,
  gpa: transcript.gpa,
  ...clockHoursOf(transcript.modules),
  modules: transcript.modules,
  generatedAt: transcript.generatedAt.toISOString(),
  pdf: pdfLink(transcript.id, pdf.content.byteLength, pdf.sha256),
});

// ---------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------

interface TranscriptRow {
  id: string;
  user_id: string;
  program_id: string;
  program_code: string;
  program_name: string;
  kind: TranscriptKind | null;
  gpa: string | null;
  /** Null for transcripts generated before 0004 stored the lines (their PDF holds them). */
  lines: ModuleLine[] | null;
  generated_at: Date;
  generated_by: string | null;
  pdf_bytes: number | null;
  sha256: Buffer | null;
}

export async function transcriptVisibleTo(sql: AnySql, id: string, caller: Caller) {
  const [row] = await sql<TranscriptRow[]>`
    select t.id, t.user_id, t.program_id, p.code as program_code, p.name as program_name, t.kind, t.gpa, t.lines,
           t.generated_at, t.generated_by, d.content_length as pdf_bytes, d.sha256
      from transcripts t
      join programs p on p.id = t.program_id
      left join transcript_documents d on d.transcript_id = t.id
     where t.id = ${id} and ${visibleTo(sql, caller)}`;
  return row;
}

/** A stored transcript as the API returns it; `kind` is null for those generated before 0008. */
export const toTranscriptView = (row: TranscriptRow) => ({
  id: row.id,
  kind: row.kind,
  studentId: row.user_id,
  programId: row.program_id,
  program: { code: row.program_code, name: row.program_name },
  gpa: row.gpa === null ? null : Number(row.gpa),
  ...(row.lines === null ? { totalClockHours: null, completedClockHours: null } : clockHoursOf(row.lines)),
  modules: row.lines,
  generatedAt: row.generated_at.toISOString(),
  generatedBy: row.generated_by,
  pdf: row.sha256 ? pdfLink(row.id, row.pdf_bytes, row.sha256) : null,
});

/** The PDF of a transcript the caller may see, decrypted; null when there is none for them. */
export async function transcriptPdfVisibleTo(
  sql: AnySql,
  id: string,
  caller: Caller,
): Promise<{ content: Buffer; contentType: string; sha256: Buffer } | null> {
  const [row] = await sql<
    { content_ciphertext: Buffer | null; content: Buffer | null; content_type: string; sha256: Buffer }[]
  >`
    select d.content_ciphertext, d.content, d.content_type, d.sha256
      from transcripts t
      join transcript_documents d on d.transcript_id = t.id
     where t.id = ${id} and ${visibleTo(sql, caller)}`;
  if (!row) return null;
  // `content` is legacy plaintext from before migration 0008, until keys:rotate encrypts it.
  const content = row.content_ciphertext
    ? decryptBytes(row.content_ciphertext, 'transcript_documents.content')
    : (row.content as Buffer);
  return { content, contentType: row.content_type, sha256: row.sha256 };
}
