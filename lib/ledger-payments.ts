// Payments: a credit to a student's ledger with its method (cash, check, card, bank, financial aid,
// third-party sponsor) and the external reference that proves it (this API records payments; it never
// charges a card), and a receipt number from the gap-free counter (lib/ledger.ts postEntry). The
// receipt is a PDF printed on demand from the entry (lib/pdf.ts), so it always says what the ledger says.

import type { Caller } from './access';
import { decryptRows } from './crypto';
import type { AnySql } from './db';
import { type EntryRow, entryColumns, formatCents, ledgerOwnerVisible, memoJoin, toEntryView } from './ledger';
import { type Block, renderPdf } from './pdf';
import { SCHOOL, schoolDate } from './school';

export const PAYMENT_METHODS = ['cash', 'check', 'card', 'bank', 'financial_aid', 'sponsor'] as const;
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];

const METHOD_LABELS: Record<PaymentMethod, string> = {
  cash: 'Cash',
  check: 'Check',
  card: 'Card (external processor)',
  bank: 'Bank transfer (external processor)',
  financial_aid: 'Financial aid',
  sponsor: 'Third-party sponsor',
};

/** Receipt numbers as printed: `R-000042`. */
export const receiptLabel = (receiptNumber: number) => `R-${String(receiptNumber).padStart(6, '0')}`;

export const receiptHref = (entryId: string) => `/api/ledger/payments/${entryId}/receipt`;

/** A payment as the API returns it: the entry and where its receipt is. */
export function toPaymentView(row: EntryRow) {
  const entry = toEntryView(row);
  return { ...entry, receipt: { number: receiptLabel(entry.receiptNumber ?? 0), href: receiptHref(entry.id) } };
}

interface ReceiptRow extends EntryRow {
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  program_name: string | null;
  balance_after: string;
}

/**
 * A payment entry with what its receipt prints (the student's name, the programme, the balance right
 * after it), if the caller may read the student's ledger; undefined otherwise or for another kind.
 */
export async function findReceipt(sql: AnySql, entryId: string, caller: Caller) {
  const [row] = await sql<ReceiptRow[]>`
    select ${entryColumns(sql, 'le')}, u.first_name_ciphertext, u.last_name_ciphertext, p.name as program_name,
           (select coalesce(sum(case b.direction when 'debit' then b.amount_cents else -b.amount_cents end), 0)::bigint
              from ledger_entries b where b.user_id = le.user_id and b.entry_number <= le.entry_number) as balance_after
      from ledger_entries le
      ${memoJoin(sql, 'le')}
      join users u on u.id = le.user_id
      left join programs p on p.id = le.program_id
     where le.id = ${entryId} and le.kind = 'payment' and ${ledgerOwnerVisible(sql, caller)}`;
  return row;
}

/** The receipt as a document. No name in the metadata: viewers show it unopened. */
export function receiptDocument(row: ReceiptRow) {
  const [named] = decryptRows([row], {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  });
  const entry = toEntryView(row);
  const number = receiptLabel(entry.receiptNumber ?? 0);
  const received = schoolDate(row.posted_at);
  const rows: [string, string][] = [
    ['Receipt number', number],
    ['Received', received],
    ['Student', `${named?.first_name_ciphertext} ${named?.last_name_ciphertext}`],
    ['Student ID', entry.studentId],
    ['Amount', formatCents(entry.amountCents)],
    ['Method', METHOD_LABELS[entry.category as PaymentMethod] ?? entry.category],
  ];
  if (entry.reference) rows.push(['Reference', entry.reference]);
  if (row.program_name) rows.push(['Programme', row.program_name]);
  rows.push(['Balance after this payment', formatCents(Number(row.balance_after))]);
  const blocks: Block[] = [
    { kind: 'heading', text: SCHOOL.name, level: 1 },
    { kind: 'heading', text: 'Payment receipt', level: 2 },
    { kind: 'space', points: 8 },
    { kind: 'fields', rows },
    { kind: 'space', points: 10 },
    { kind: 'text', text: 'This receipt records a payment received by the school. Keep it for your records.' },
  ];
  return {
    title: `Payment receipt ${number}`,
    author: SCHOOL.name,
    createdAt: row.posted_at,
    blocks,
    footer: `Payment receipt ${number} · ${received}`,
    missingGlyphsNote:
      'Characters this document cannot display are shown as "?"; the student record holds the exact spelling.',
  };
}

export const renderReceipt = (row: ReceiptRow) => renderPdf(receiptDocument(row));
