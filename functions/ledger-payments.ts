// Payment routes: finance records a payment with an Idempotency-Key (lib/idempotency.ts: a retry
// gets the first answer, never a second payment) and prints its receipt. Payments, receipts and their
// queries are lib/ledger-payments.ts; the entry itself is posted by lib/ledger.ts.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { bytes } from '../lib/http';
import { idempotencyKeyOf, onceForKey } from '../lib/idempotency';
import { ALL_LEDGER_READERS, AmountCents, LEDGER_POSTERS, Memo, postEntry, Reference } from '../lib/ledger';
import { findReceipt, receiptHref, receiptLabel, renderReceipt, toPaymentView } from '../lib/ledger-payments';

const common = { amountCents: AmountCents, enrollmentId: z.uuid().optional(), memo: Memo.optional() };

/** Check, card and bank payments carry what proves them: the check number, the processor's reference. */
const NewPayment = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('cash'), reference: Reference.optional(), ...common }),
  z.strictObject({ method: z.literal('check'), reference: Reference, ...common }),
  z.strictObject({ method: z.literal('card'), reference: Reference, ...common }),
  z.strictObject({ method: z.literal('bank'), reference: Reference, ...common }),
  z.strictObject({ method: z.literal('financial_aid'), reference: Reference.optional(), ...common }),
  z.strictObject({ method: z.literal('sponsor'), reference: Reference.optional(), ...common }),
]);

endpoint({
  name: 'ledger-payments-post',
  methods: ['POST'],
  route: 'students/{id}/payments',
  access: LEDGER_POSTERS,
  phi: true,
  params: z.object({ id: z.uuid() }),
  body: NewPayment,
  handler: async function recordPayment({ sql, params, body, caller, request, audit }) {
    const key = idempotencyKeyOf(request);
    const { method, ...rest } = body;
    const { reply, replayed } = await onceForKey(
      sql,
      { callerId: caller.userId, scope: 'payment', key, payload: { studentId: params.id, ...body } },
      async () => {
        const entry = await postEntry(sql, {
          ...rest,
          kind: 'payment',
          category: method,
          studentId: params.id,
          postedBy: caller.userId,
          withReceipt: true,
        });
        audit.resourceIds.entryId = entry.id;
        return { status: 201, body: toPaymentView(entry), headers: { Location: receiptHref(entry.id) } };
      },
    );
    if (replayed) audit.event = 'idempotent_replay';
    return reply;
  },
});

endpoint({
  name: 'ledger-payments-receipt',
  methods: ['GET'],
  route: 'ledger/payments/{id}/receipt',
  // A student prints their own receipts (findReceipt applies the ledger's owner rule: anyone else's is a 404).
  access: [...ALL_LEDGER_READERS, 'student'],
  phi: true,
  params: z.object({ id: z.uuid() }),
  handler: async function downloadReceipt({ sql, params, caller }) {
    const row = await findReceipt(sql, params.id, caller);
    if (!row) throw notFound('No such payment');
    const pdf = await renderReceipt(row);
    const name = receiptLabel(Number(row.receipt_number));
    return bytes(pdf, 'application/pdf', { 'Content-Disposition': `attachment; filename="receipt-${name}.pdf"` });
  },
});
