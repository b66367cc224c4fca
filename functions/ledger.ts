// Ledger routes: finance posts charges, adjustments, refunds and write-offs to a student's ledger and
// reverses mistakes; finance and admin read every ledger and the balances of all students, a student
// their own, and statements of account (JSON or PDF) of a period. Payments (with Idempotency-Key) are
// functions/ledger-payments.ts. The entries, their rules and queries are lib/ledger.ts; statements
// lib/ledger-statements.ts.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { conflict, HttpError, notFound } from '../lib/errors';
import { bytes, created, json } from '../lib/http';
import {
  ALL_LEDGER_READERS,
  AmountCents,
  BALANCE_ORDER,
  balancePageQuery,
  CATEGORIES,
  type EntryRow,
  LEDGER_ORDER,
  LEDGER_POSTERS,
  ledgerPageQuery,
  Memo,
  postEntry,
  Reference,
  reverseEntry,
  studentBalance,
  toBalanceViews,
  toEntryView,
} from '../lib/ledger';
import { renderStatement, studentStatement } from '../lib/ledger-statements';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { multiLine } from '../lib/text';

const StudentParams = z.object({ id: z.uuid() });

const entryOf = <K extends 'charge' | 'adjustment' | 'refund' | 'write_off'>(kind: K) =>
  z.strictObject({
    kind: z.literal(kind),
    category: z.enum(CATEGORIES[kind]),
    amountCents: AmountCents,
    enrollmentId: z.uuid().optional(),
    reference: Reference.optional(),
    memo: Memo.optional(),
  });

const NewEntry = z.discriminatedUnion('kind', [
  entryOf('charge'),
  entryOf('adjustment'),
  entryOf('refund'),
  entryOf('write_off'),
]);

endpoint({
  name: 'ledger-post',
  methods: ['POST'],
  route: 'students/{id}/ledger',
  access: LEDGER_POSTERS,
  phi: true,
  params: StudentParams,
  body: NewEntry,
  handler: async function postLedgerEntry({ sql, params, body, caller, audit }) {
    const entry = await postEntry(sql, { ...body, studentId: params.id, postedBy: caller.userId });
    audit.resourceIds.entryId = entry.id;
    return created(toEntryView(entry), `/api/students/${params.id}/ledger`);
  },
});

const Reversal = z.strictObject({ reason: multiLine(500) });

/** The 409 of reversing an entry a refund's approval posted: the approval is undone as a whole. */
function refundEntryReversal(refundId: string) {
  const route = `/api/ledger/refunds/${refundId}/approval-reversal`;
  return new HttpError({
    status: 409,
    slug: 'refund-approval-entry',
    title: 'Posted by a refund’s approval',
    detail: `This entry was posted by the approval of refund ${refundId}; undo that approval (both of its entries) with POST ${route}`,
    errors: [{ field: 'params.id', message: `Posted by the approval of refund ${refundId}` }],
    headers: { Link: `<${route}>; rel="related"` },
  });
}

endpoint({
  name: 'ledger-reverse',
  methods: ['POST'],
  route: 'ledger/entries/{id}/reversal',
  access: LEDGER_POSTERS,
  phi: true,
  params: z.object({ id: z.uuid() }),
  body: Reversal,
  handler: async function reverseLedgerEntry({ sql, params, body, caller, audit }) {
    const outcome = await reverseEntry(sql, params.id, body.reason, caller.userId);
    switch (outcome.kind) {
      case 'not-found':
        throw notFound('No such ledger entry');
      case 'is-reversal':
        throw conflict('A reversal cannot be reversed; post the original entry again instead');
      case 'already-reversed':
        throw conflict(`This entry is already reversed by entry ${outcome.by}`);
      case 'refund-entry':
        throw refundEntryReversal(outcome.refundId);
      case 'reversed':
        audit.resourceIds.entryId = outcome.entry.id;
        return created(toEntryView(outcome.entry));
    }
  },
});

const LedgerQuery = z.object({ limit: limitSchema, cursor: LEDGER_ORDER.cursor });

endpoint({
  name: 'ledger-history',
  methods: ['GET'],
  route: 'students/{id}/ledger',
  access: [...ALL_LEDGER_READERS, 'student'],
  phi: true,
  params: StudentParams,
  query: LedgerQuery,
  handler: async function readLedger({ sql, params, query, caller, request }) {
    const rows = await ledgerPageQuery(sql, params.id, caller, query);
    if (rows.length === 0) throw notFound('No such student');
    const entries = rows.filter((row): row is EntryRow & { page_key: string[]; student_id: string } => !!row.id);
    const page = pageOf(entries, query.limit, (read) => read.map(toEntryView));
    return json({ studentId: params.id, ...page }, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'ledger-balance',
  methods: ['GET'],
  route: 'students/{id}/balance',
  access: [...ALL_LEDGER_READERS, 'student'],
  phi: true,
  params: StudentParams,
  handler: async function readBalance({ sql, params, caller }) {
    const balance = await studentBalance(sql, params.id, caller);
    if (!balance) throw notFound('No such student');
    return json(balance);
  },
});

endpoint({
  name: 'ledger-balances',
  methods: ['GET'],
  route: 'ledger/balances',
  access: ALL_LEDGER_READERS,
  phi: true,
  query: z.object({ limit: limitSchema, cursor: BALANCE_ORDER.cursor }),
  handler: async function listBalances({ sql, query, request }) {
    const page = pageOf(await balancePageQuery(sql, query), query.limit, toBalanceViews);
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const isoDate = z.iso.date({ error: 'A date as YYYY-MM-DD' });

const StatementQuery = z
  .object({
    from: isoDate.optional(),
    to: isoDate.optional(),
    enrollmentId: z.uuid().optional(),
    format: z.enum(['json', 'pdf']).default('json'),
  })
  .refine((query) => !query.from || !query.to || query.from <= query.to, {
    message: 'Must be on or after from',
    path: ['to'],
  });

endpoint({
  name: 'ledger-statement',
  methods: ['GET'],
  route: 'students/{id}/statement',
  access: [...ALL_LEDGER_READERS, 'student'],
  phi: true,
  params: StudentParams,
  query: StatementQuery,
  handler: async function readStatement({ sql, params, query, caller, audit }) {
    const statement = await studentStatement(sql, { ...query, studentId: params.id }, caller);
    if (!statement) throw notFound('No such student');
    if (query.enrollmentId) audit.resourceIds.enrollmentId = query.enrollmentId;
    if (query.format === 'json') return json(statement);
    const pdf = await renderStatement(statement);
    const file = `statement-${statement.period.to}.pdf`;
    return bytes(pdf, 'application/pdf', { 'Content-Disposition': `attachment; filename="${file}"` });
  },
});
