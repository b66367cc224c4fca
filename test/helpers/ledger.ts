// Ledgers in bulk for tests that need many (balances over 1,000 students): inserted straight into the
// database in one statement, as finance would have posted them, with receipt numbers for payments from
// the same gap-free counter the API uses.
import type postgres from 'postgres';

export interface LedgerLine {
  studentId: string;
  enrollmentId?: string | undefined;
  kind: 'charge' | 'payment' | 'adjustment' | 'refund' | 'write_off';
  amountCents: number;
  /** When it was posted (an ISO instant); now unless told. */
  postedAt?: string | undefined;
}

const CATEGORY = { charge: 'tuition', payment: 'cash', adjustment: 'other', refund: 'student', write_off: 'write_off' };
const DIRECTION = { charge: 'debit', payment: 'credit', adjustment: 'credit', refund: 'debit', write_off: 'credit' };

export async function insertLedger(sql: postgres.Sql, lines: readonly LedgerLine[], postedBy: string): Promise<void> {
  let payments = 0;
  const receipts = lines.map((line) => (line.kind === 'payment' ? ++payments : null));
  await sql`
    with counter as (
      update receipt_counter set last_issued = last_issued + ${payments} returning last_issued - ${payments} as start)
    insert into ledger_entries (user_id, enrollment_id, program_id, kind, category, direction, amount_cents,
                                receipt_number, posted_by, posted_at)
    select x.user_id, e.id, e.program_id, x.kind, x.category, x.direction, x.amount,
           case when x.receipt is null then null else counter.start + x.receipt end, ${postedBy},
           coalesce(x.posted_at, now())
      from unnest(${lines.map((line) => line.studentId)}::uuid[], ${lines.map((line) => line.enrollmentId ?? null)}::uuid[],
                  ${lines.map((line) => line.kind)}::text[], ${lines.map((line) => CATEGORY[line.kind])}::text[],
                  ${lines.map((line) => DIRECTION[line.kind])}::text[], ${lines.map((line) => line.amountCents)}::bigint[],
                  ${receipts}::bigint[], ${lines.map((line) => line.postedAt ?? null)}::timestamptz[])
           with ordinality as x(user_id, enrollment_id, kind, category, direction, amount, receipt, posted_at, n)
      cross join counter
      left join enrollments e on e.id = x.enrollment_id
     order by x.n`;
}
