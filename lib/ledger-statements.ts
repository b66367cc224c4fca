// Statements of account: a student's ledger over a period (school days, America/New_York), in total or
// for one enrollment — the opening balance (every entry before the period), the period's entries with
// the balance after each, their debits and credits, and the closing balance — as JSON and as a PDF
// (lib/pdf.ts). Read only by whoever may read the student's ledger (lib/ledger.ts ledgerOwnerVisible):
// anyone else's statement is a 404, whatever the ids.
import type { Caller } from './access';
import { decryptRows } from './crypto';
import type { AnySql } from './db';
import { badRequest } from './errors';
import { type EntryRow, entryColumns, formatCents, ledgerOwnerVisible, memoJoin, toEntryView } from './ledger';
import { receiptLabel } from './ledger-payments';
import { type Block, renderPdf, type TableColumn } from './pdf';
import { calendarDate, SCHOOL, schoolDate } from './school';

/** The most entries one statement holds: a longer period is a 400 naming `query.from` (narrow it). */
export const STATEMENT_ENTRY_CAP = 2_000;

export interface StatementRequest {
  studentId: string;
  /** First school day of the period (YYYY-MM-DD); none: from the first entry. */
  from?: string | undefined;
  /** Last school day of the period; none: today at the school. */
  to?: string | undefined;
  enrollmentId?: string | undefined;
}

interface StatementHeadRow {
  student_id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  to_day: string;
  enrollment_found: boolean;
  program_name: string | null;
  opening: string;
  in_period: number;
}

/** The instant a school day starts (midnight in Atlanta), as SQL. */
const dayStart = (sql: AnySql, day: string) => sql`(${day}::date::timestamp at time zone ${SCHOOL.timeZone})`;

/**
 * The statement of a student, or null when the caller may not read their ledger (or there is no such
 * account). A 400 names `query.enrollmentId` when the enrollment is not the student's, and
 * `query.from` when the period holds more than STATEMENT_ENTRY_CAP entries.
 */
export async function studentStatement(sql: AnySql, request: StatementRequest, caller: Caller) {
  const enrollmentId = request.enrollmentId ?? null;
  const today = sql`(now() at time zone ${SCHOOL.timeZone})::date`;
  const toDay = request.to ? sql`${request.to}::date` : today;
  const start = request.from ? dayStart(sql, request.from) : sql`'-infinity'::timestamptz`;
  const end = sql`((${toDay} + 1)::timestamp at time zone ${SCHOOL.timeZone})`;
  const ofEnrollment = enrollmentId ? sql`and le.enrollment_id = ${enrollmentId}` : sql``;
  // One statement for the head: who, the enrollment, the opening balance and how many entries follow.
  const [head] = await sql<StatementHeadRow[]>`
    select u.id as student_id, u.first_name_ciphertext, u.last_name_ciphertext, ${toDay}::text as to_day,
           e.id is not null as enrollment_found, p.name as program_name,
           (select coalesce(sum(case le.direction when 'debit' then le.amount_cents else -le.amount_cents end), 0)
              from ledger_entries le
             where le.user_id = u.id and le.posted_at < ${start} ${ofEnrollment})::bigint as opening,
           (select count(*) from ledger_entries le
             where le.user_id = u.id and le.posted_at >= ${start} and le.posted_at < ${end} ${ofEnrollment})::int
             as in_period
      from users u
      left join enrollments e on e.id = ${enrollmentId} and e.user_id = u.id
      left join programs p on p.id = e.program_id
     where u.id = ${request.studentId} and ${ledgerOwnerVisible(sql, caller)}`;
  if (!head) return null;
  if (enrollmentId && !head.enrollment_found) {
    const message = `No enrollment ${enrollmentId} of this student`;
    throw badRequest('The enrollment is not one of this student’s', [{ field: 'query.enrollmentId', message }]);
  }
  if (head.in_period > STATEMENT_ENTRY_CAP) {
    const message = `A statement holds at most ${STATEMENT_ENTRY_CAP} entries (this period has ${head.in_period}): narrow the period`;
    throw badRequest(message, [{ field: 'query.from', message }]);
  }
  const entries = await sql<EntryRow[]>`
    select ${entryColumns(sql, 'le')}
      from ledger_entries le ${memoJoin(sql, 'le')}
     where le.user_id = ${request.studentId} and le.posted_at >= ${start} and le.posted_at < ${end} ${ofEnrollment}
     order by le.entry_number`;
  return toStatementView(head, request, entries);
}

function toStatementView(head: StatementHeadRow, request: StatementRequest, rows: readonly EntryRow[]) {
  const [named] = decryptRows([head], {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  });
  const openingBalanceCents = Number(head.opening);
  let balance = openingBalanceCents;
  let debitsCents = 0;
  let creditsCents = 0;
  const entries = rows.map((row) => {
    const entry = toEntryView(row);
    balance += entry.balanceEffectCents;
    if (entry.direction === 'debit') debitsCents += entry.amountCents;
    else creditsCents += entry.amountCents;
    return { ...entry, balanceAfterCents: balance };
  });
  return {
    student: { id: head.student_id, firstName: named?.first_name_ciphertext, lastName: named?.last_name_ciphertext },
    enrollment: request.enrollmentId ? { id: request.enrollmentId, programName: head.program_name } : null,
    period: { from: request.from ?? null, to: head.to_day },
    openingBalanceCents,
    debitsCents,
    creditsCents,
    closingBalanceCents: balance,
    entries,
  };
}
export type StatementView = ReturnType<typeof toStatementView>;

// ---------------------------------------------------------------------------------------------------
// The PDF
// ---------------------------------------------------------------------------------------------------

const KIND_LABELS: Record<string, string> = {
  charge: 'Charge',
  payment: 'Payment',
  adjustment: 'Adjustment',
  refund: 'Refund paid out',
  write_off: 'Write-off',
};

/** What a line says: its kind and category; a reversal names the entry it undoes. No memo (internal notes). */
function describe(entry: StatementView['entries'][number], numbers: ReadonlyMap<string, number>): string {
  if (entry.kind === 'reversal') {
    const number = entry.reversesEntryId ? numbers.get(entry.reversesEntryId) : undefined;
    return `Reversal of ${KIND_LABELS[entry.category]?.toLowerCase() ?? entry.category}${number ? ` #${number}` : ''}`;
  }
  const label = `${KIND_LABELS[entry.kind] ?? entry.kind}: ${entry.category.replace('_', ' ')}`;
  return entry.receiptNumber === null ? label : `${label} (receipt ${receiptLabel(entry.receiptNumber)})`;
}

/** "1 Dec 2026": the short form of the school's dates, for a table column. */
const SHORT_DAY = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  timeZone: SCHOOL.timeZone,
});

const COLUMNS: TableColumn[] = [
  { title: 'Date', width: 13 },
  { title: '#', width: 7, align: 'right' },
  { title: 'Description', width: 36 },
  { title: 'Reference', width: 14 },
  { title: 'Charges', width: 11, align: 'right' },
  { title: 'Credits', width: 11, align: 'right' },
  { title: 'Balance', width: 12, align: 'right' },
];

/** The statement as a document. No name in the metadata: viewers show it unopened. */
export function statementDocument(statement: StatementView, printedAt: Date) {
  const numbers = new Map(statement.entries.map((entry) => [entry.id, entry.entryNumber]));
  const day = (iso: string) => calendarDate(new Date(`${iso}T00:00:00Z`));
  const period = `${statement.period.from ? day(statement.period.from) : 'the first entry'} to ${day(statement.period.to)}`;
  const fields: [string, string][] = [
    ['Student', `${statement.student.firstName} ${statement.student.lastName}`],
    ['Student ID', statement.student.id],
    ['Period', period],
  ];
  if (statement.enrollment) {
    fields.push(['Enrollment', `${statement.enrollment.programName ?? ''} (${statement.enrollment.id})`]);
  }
  fields.push(['Printed', schoolDate(printedAt)]);
  const rows = statement.entries.map((entry) => [
    SHORT_DAY.format(new Date(entry.postedAt)),
    String(entry.entryNumber),
    describe(entry, numbers),
    entry.reference ?? '',
    entry.direction === 'debit' ? formatCents(entry.amountCents) : '',
    entry.direction === 'credit' ? formatCents(entry.amountCents) : '',
    formatCents(entry.balanceAfterCents),
  ]);
  const blocks: Block[] = [
    { kind: 'heading', text: SCHOOL.name, level: 1 },
    { kind: 'heading', text: 'Statement of account', level: 2 },
    { kind: 'space', points: 8 },
    { kind: 'fields', rows: fields },
    { kind: 'space', points: 8 },
    { kind: 'fields', rows: [['Opening balance', formatCents(statement.openingBalanceCents)]] },
    { kind: 'space', points: 4 },
    rows.length > 0 ? { kind: 'table', columns: COLUMNS, rows } : { kind: 'text', text: 'No entries in this period.' },
    { kind: 'space', points: 8 },
    {
      kind: 'fields',
      rows: [
        ['Charges and refunds paid out', formatCents(statement.debitsCents)],
        ['Payments, adjustments and write-offs', formatCents(statement.creditsCents)],
        ['Closing balance', formatCents(statement.closingBalanceCents)],
      ],
    },
    { kind: 'space', points: 8 },
    {
      kind: 'text',
      text: 'A positive balance is owed to the school; a negative balance is owed to the student.',
      size: 8,
    },
  ];
  return {
    title: 'Statement of account',
    author: SCHOOL.name,
    createdAt: printedAt,
    blocks,
    footer: `Statement of account · ${period}`,
    missingGlyphsNote:
      'Characters this document cannot display are shown as "?"; the student record holds the exact spelling.',
  };
}

export const renderStatement = (statement: StatementView, printedAt = new Date()) =>
  renderPdf(statementDocument(statement, printedAt));
