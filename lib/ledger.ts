// The student ledger: append-only entries of positive integer cents with a direction (a debit raises
// what the student owes, a credit lowers it), their queries (post, reverse, history, balances) and
// views. The database refuses to change or remove an entry (migration 0017); a mistake is undone by a
// reversal pointing at the entry it reverses. Payments are posted by lib/ledger-payments.ts, refund
// entries by lib/refunds.ts; both go through postEntry below.
//
// Who reads a ledger: finance and admin every student's, a student their own (the student's row is
// found through ledgerOwnerVisible, so anyone else's ledger is a 404, whatever the route).
//
// Why one file over 350 lines: posting, reversing and reading share the entry row, its columns and the
// rule of signed cents; payments (lib/ledger-payments.ts) and refunds (lib/refunds.ts) live apart.
import type postgres from 'postgres';
import { z } from 'zod';
import { type Caller, type RecordReach, type Role, recordVisibleSql, scopeOf } from './access';
import { decrypt, decryptRows, encrypt } from './crypto';
import type { AnySql } from './db';
import { badRequest, notFound } from './errors';
import { keyset } from './pagination';
import { multiLine, singleLine } from './text';

/** Finance posts money; administrators and finance read every ledger (a student their own). */
export const LEDGER_POSTERS: readonly Role[] = ['finance'];
export const ALL_LEDGER_READERS: readonly Role[] = ['finance', 'admin'];
const LEDGER_REACH: RecordReach = { all: ALL_LEDGER_READERS, taught: false };

export const ENTRY_KINDS = ['charge', 'payment', 'adjustment', 'refund', 'write_off', 'reversal'] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];
export type Direction = 'debit' | 'credit';

/** The categories of each kind an entry may be posted with (a reversal takes its original's kind). */
export const CATEGORIES = {
  charge: ['tuition', 'fee', 'books', 'kit', 'other'],
  payment: ['cash', 'check', 'card', 'bank', 'financial_aid', 'sponsor'],
  adjustment: ['tuition_reduction', 'other'],
  refund: ['student', 'third_party'],
  write_off: ['write_off'],
} as const;

/** The largest amount of one entry: one million dollars, in cents (also a CHECK in the schema). */
export const MAX_AMOUNT_CENTS = 100_000_000;

/** A charge or a refund paid out raises what the student owes; the rest lower it. */
export function directionOf(kind: Exclude<EntryKind, 'reversal'>): Direction {
  return kind === 'charge' || kind === 'refund' ? 'debit' : 'credit';
}

/** What an entry does to the balance: + for a debit, − for a credit. */
export const signedCents = (entry: { direction: Direction; amountCents: number }) =>
  entry.direction === 'debit' ? entry.amountCents : -entry.amountCents;

// ---------------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------------

/**
 * "This account's ledger is the caller's to read": the condition on a users row aliased `u`. Any
 * account may have a ledger (only students are posted to, but a student may become staff).
 */
export function ledgerOwnerVisible(sql: AnySql, caller: Caller): postgres.Fragment {
  return recordVisibleSql(sql, scopeOf(caller, LEDGER_REACH), { owner: sql`u.id`, program: sql`null::uuid` });
}

// ---------------------------------------------------------------------------------------------------
// Request values
// ---------------------------------------------------------------------------------------------------

/** Positive whole cents, at most MAX_AMOUNT_CENTS: no zero, negative, fractional or huge amounts. */
export const AmountCents = z
  .int({ error: 'Write the amount as a whole number of cents' })
  .min(1, 'Must be at least 1 cent')
  .max(MAX_AMOUNT_CENTS, `At most ${MAX_AMOUNT_CENTS} cents`);

/** A check number or an external processor's reference: a short code, never free text. */
export const Reference = singleLine(64, {
  pattern: { regex: /^[A-Za-z0-9][A-Za-z0-9 ._:/#-]*$/, message: 'Letters, digits, spaces and . _ : / # - only' },
});

/** Free text about the entry (stored encrypted). */
export const Memo = multiLine(500);

/** Dollars as people read them: `$1,234.56`, `-$5.00`; computed in integers, never in floating point. */
export function formatCents(cents: number): string {
  const whole = Math.trunc(Math.abs(cents) / 100).toLocaleString('en-US');
  const rest = String(Math.abs(cents) % 100).padStart(2, '0');
  return `${cents < 0 ? '-' : ''}$${whole}.${rest}`;
}

// ---------------------------------------------------------------------------------------------------
// Posting
// ---------------------------------------------------------------------------------------------------

export interface NewEntry {
  studentId: string;
  enrollmentId?: string | undefined;
  kind: Exclude<EntryKind, 'reversal'>;
  category: string;
  amountCents: number;
  reference?: string | undefined;
  memo?: string | undefined;
  postedBy: string;
  /** Payments only: the receipt number comes from the gap-free counter in the same statement. */
  withReceipt?: boolean;
}

export interface EntryRow {
  id: string;
  entry_number: string;
  user_id: string;
  program_id: string | null;
  enrollment_id: string | null;
  kind: EntryKind;
  category: string;
  direction: Direction;
  amount_cents: string;
  reference: string | null;
  memo_ciphertext: string | null;
  reverses_entry_id: string | null;
  reversed_by_entry_id?: string | null;
  receipt_number: string | null;
  posted_at: Date;
  posted_by: string;
}

const ENTRY_COLUMNS = [
  'id',
  'entry_number',
  'user_id',
  'program_id',
  'enrollment_id',
  'kind',
  'category',
  'direction',
  'amount_cents',
  'reference',
  'reverses_entry_id',
  'receipt_number',
  'posted_at',
  'posted_by',
];
/**
 * An entry's columns as an EntryRow, from `ledger_entries <alias>` joined with its memo (memoJoin).
 */
export const entryColumns = (sql: AnySql, alias: string) =>
  sql`${sql(ENTRY_COLUMNS.map((column) => `${alias}.${column}`))}, ${sql(`${alias}_memo.memo_ciphertext`)}`;

/** The memo of `ledger_entries <alias>`, for entryColumns. */
export const memoJoin = (sql: AnySql, alias: string) =>
  sql`left join ledger_entry_memos ${sql(`${alias}_memo`)} on ${sql(`${alias}_memo.entry_id`)} = ${sql(`${alias}.id`)}`;

/** Inserts the memo of the entry (or entries) a CTE named `posted` returns, when there is one. */
const withMemo = (sql: AnySql, memo: string | null) => sql`
  memo as (insert into ledger_entry_memos (entry_id, memo_ciphertext)
           select id, ${memo}::text from posted where ${memo}::text is not null)`;

/**
 * Posts one entry for a student (and the enrollment, which must be theirs), in one statement.
 * Refuses, naming the field, a student or an enrollment that is not there.
 */
export async function postEntry(sql: AnySql, entry: NewEntry): Promise<EntryRow> {
  const enrollmentId = entry.enrollmentId ?? null;
  const memo = entry.memo ? encrypt(entry.memo, 'ledger_entry_memos.memo') : null;
  const receipt = entry.withReceipt ? sql`(select last_issued from issued)` : sql`null::bigint`;
  const issue = entry.withReceipt
    ? sql`issued as (update receipt_counter set last_issued = last_issued + 1 returning last_issued),`
    : sql``;
  const [row] = await sql<EntryRow[]>`
    with ${issue}
    target as (
      select u.id as user_id, e.id as enrollment_id, e.program_id
        from users u
        left join enrollments e on e.id = ${enrollmentId} and e.user_id = u.id
       where u.id = ${entry.studentId}
         and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')
         and (${enrollmentId}::uuid is null or e.id is not null)),
    posted as (
      insert into ledger_entries (user_id, program_id, enrollment_id, kind, category, direction, amount_cents,
                                  reference, receipt_number, posted_by)
      select user_id, program_id, enrollment_id, ${entry.kind}, ${entry.category}, ${directionOf(entry.kind)},
             ${entry.amountCents}, ${entry.reference ?? null}, ${receipt}, ${entry.postedBy}
        from target
      returning *),
    ${withMemo(sql, memo)}
    select ${sql(ENTRY_COLUMNS)}, ${memo}::text as memo_ciphertext from posted`;
  if (row) return row;
  throw await whyNotPosted(sql, entry.studentId, enrollmentId);
}

/** Why postEntry found nothing to post to: no such student, or an enrollment not theirs. */
async function whyNotPosted(sql: AnySql, studentId: string, enrollmentId: string | null) {
  const [student] = await sql`
    select 1 from user_roles where user_id = ${studentId} and role_name = 'student'`;
  if (!student) return notFound('No such student');
  return badRequest('The enrollment is not one of this student’s', [
    { field: 'body.enrollmentId', message: `No enrollment ${enrollmentId} of this student` },
  ]);
}

export type ReversalOutcome =
  | { kind: 'reversed'; entry: EntryRow }
  | { kind: 'not-found' }
  | { kind: 'already-reversed'; by: string }
  | { kind: 'is-reversal' }
  | { kind: 'refund-entry'; refundId: string };

/** "A refund's approval posted this entry": the condition on a ledger_entries row aliased `le`. */
const postedByRefundApproval = (sql: AnySql) => sql`
  exists (select 1 from refunds r where r.adjustment_entry_id = le.id or r.refund_entry_id = le.id)`;

/**
 * Posts the reversal of an entry: same student, enrollment, amount and the other direction, its
 * reason in the memo. An entry is reversed at most once (a unique constraint settles a race) and a
 * reversal is never reversed (post the original again instead). An entry a refund's approval posted
 * is refused (`refund-entry`) unless `ofRefundApproval`: lib/refunds.ts reverseRefundApproval undoes
 * the approval as a whole, so the refund's status and the ledger cannot disagree.
 */
export async function reverseEntry(
  sql: AnySql,
  entryId: string,
  reason: string,
  postedBy: string,
  options: { ofRefundApproval?: boolean } = {},
) {
  const memo = encrypt(reason, 'ledger_entry_memos.memo');
  const refundGuard = options.ofRefundApproval ? sql`` : sql`and not ${postedByRefundApproval(sql)}`;
  const [row] = await sql<EntryRow[]>`
    with posted as (
      insert into ledger_entries (user_id, program_id, enrollment_id, kind, category, direction, amount_cents,
                                  reverses_entry_id, posted_by)
      select user_id, program_id, enrollment_id, 'reversal', kind,
             case direction when 'debit' then 'credit' else 'debit' end, amount_cents, id, ${postedBy}
        from ledger_entries le
       where le.id = ${entryId} and le.kind <> 'reversal' ${refundGuard}
      on conflict (reverses_entry_id) do nothing
      returning *),
    ${withMemo(sql, memo)}
    select ${sql(ENTRY_COLUMNS)}, ${memo}::text as memo_ciphertext from posted`;
  if (row) return { kind: 'reversed', entry: row } satisfies ReversalOutcome;
  const [original] = await sql<{ kind: EntryKind; reversed_by: string | null; refund_id: string | null }[]>`
    select o.kind, r.id as reversed_by,
           (select f.id from refunds f where f.adjustment_entry_id = o.id or f.refund_entry_id = o.id) as refund_id
      from ledger_entries o left join ledger_entries r on r.reverses_entry_id = o.id
     where o.id = ${entryId}`;
  if (!original) return { kind: 'not-found' } satisfies ReversalOutcome;
  if (original.kind === 'reversal') return { kind: 'is-reversal' } satisfies ReversalOutcome;
  if (original.refund_id && !original.reversed_by && !options.ofRefundApproval) {
    return { kind: 'refund-entry', refundId: original.refund_id } satisfies ReversalOutcome;
  }
  return { kind: 'already-reversed', by: original.reversed_by ?? '' } satisfies ReversalOutcome;
}

// ---------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------

/** Newest first, by posting order; served by idx_ledger_entries_user (user_id, entry_number). */
export const LEDGER_ORDER = keyset([['le.entry_number', 'bigint']], 'desc');

type LedgerPageRow = EntryRow & { student_id: string; page_key: string[] };

/**
 * One page of a student's history, if the caller may read their ledger (else no rows at all): a
 * student without entries gives one row of nulls with `student_id`.
 */
export function ledgerPageQuery(
  sql: AnySql,
  studentId: string,
  caller: Caller,
  page: { limit: number; cursor?: readonly [string] | undefined },
) {
  return sql<(Partial<LedgerPageRow> & { student_id: string })[]>`
    select u.id as student_id, le.*
      from users u
      left join lateral (
        select ${entryColumns(sql, 'le')}, rev.id as reversed_by_entry_id, ${LEDGER_ORDER.key(sql)}
          from ledger_entries le
          ${memoJoin(sql, 'le')}
          left join ledger_entries rev on rev.reverses_entry_id = le.id
         where le.user_id = u.id and ${LEDGER_ORDER.after(sql, page.cursor)}
         ${LEDGER_ORDER.orderBy(sql)}
         limit ${page.limit + 1}) le on true
     where u.id = ${studentId} and ${ledgerOwnerVisible(sql, caller)}`;
}

/** An entry as the API returns it (amounts as numbers of cents; the memo decrypted). */
export function toEntryView(row: EntryRow) {
  const amountCents = Number(row.amount_cents);
  return {
    id: row.id,
    entryNumber: Number(row.entry_number),
    studentId: row.user_id,
    enrollmentId: row.enrollment_id,
    programId: row.program_id,
    kind: row.kind,
    category: row.category,
    direction: row.direction,
    amountCents,
    balanceEffectCents: signedCents({ direction: row.direction, amountCents }),
    reference: row.reference,
    memo: row.memo_ciphertext === null ? null : decrypt(row.memo_ciphertext, 'ledger_entry_memos.memo'),
    reversesEntryId: row.reverses_entry_id,
    reversedByEntryId: row.reversed_by_entry_id ?? null,
    receiptNumber: row.receipt_number === null ? null : Number(row.receipt_number),
    postedAt: row.posted_at.toISOString(),
    postedBy: row.posted_by,
  };
}
export type EntryView = ReturnType<typeof toEntryView>;

const balanceSums = (sql: AnySql) => sql`
  coalesce(sum(le.amount_cents) filter (where le.direction = 'debit'), 0)::bigint as debits,
  coalesce(sum(le.amount_cents) filter (where le.direction = 'credit'), 0)::bigint as credits`;

interface BalanceRow {
  student_id: string;
  enrollment_id: string | null;
  program_id: string | null;
  total: boolean;
  debits: string;
  credits: string;
}

const balanceOf = (row: { debits: string; credits: string }) => ({
  balanceCents: Number(row.debits) - Number(row.credits),
  debitsCents: Number(row.debits),
  creditsCents: Number(row.credits),
});

/**
 * A student's balance, in total and per enrollment (entries without one under `enrollmentId: null`),
 * in one statement over the student's index entries; null when the caller may not read the ledger.
 */
export async function studentBalance(sql: AnySql, studentId: string, caller: Caller) {
  const rows = await sql<BalanceRow[]>`
    select u.id as student_id, le.enrollment_id, le.program_id,
           grouping(le.enrollment_id, le.program_id) <> 0 as total, ${balanceSums(sql)}
      from users u
      left join ledger_entries le on le.user_id = u.id
     where u.id = ${studentId} and ${ledgerOwnerVisible(sql, caller)}
     group by grouping sets ((u.id), (u.id, le.enrollment_id, le.program_id))`;
  const total = rows.find((row) => row.total);
  if (!total) return null;
  return {
    studentId,
    ...balanceOf(total),
    byEnrollment: rows
      .filter((row) => !row.total && (Number(row.debits) > 0 || Number(row.credits) > 0))
      .map((row) => ({ enrollmentId: row.enrollment_id, programId: row.program_id, ...balanceOf(row) })),
  };
}

/** Students in id order; served by the user_roles primary key and idx_ledger_entries_user. */
export const BALANCE_ORDER = keyset([['r.user_id', 'uuid']], 'asc');

interface BalancePageRow {
  student_id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  debits: string;
  credits: string;
  page_key: string[];
}

/** A page of students with their balances: each student's sums come from their own index range. */
export function balancePageQuery(sql: AnySql, page: { limit: number; cursor?: readonly [string] | undefined }) {
  return sql<BalancePageRow[]>`
    select r.user_id as student_id, u.first_name_ciphertext, u.last_name_ciphertext, b.debits, b.credits,
           ${BALANCE_ORDER.key(sql)}
      from user_roles r
      join users u on u.id = r.user_id
      cross join lateral (select ${balanceSums(sql)} from ledger_entries le where le.user_id = r.user_id) b
     where r.role_name = 'student' and ${BALANCE_ORDER.after(sql, page.cursor)}
     ${BALANCE_ORDER.orderBy(sql)}
     limit ${page.limit + 1}`;
}

export function toBalanceViews(rows: readonly BalancePageRow[]) {
  return decryptRows(rows, { first_name_ciphertext: 'users.first_name', last_name_ciphertext: 'users.last_name' }).map(
    (row) => ({
      student: { id: row.student_id, firstName: row.first_name_ciphertext, lastName: row.last_name_ciphertext },
      ...balanceOf(row),
    }),
  );
}
