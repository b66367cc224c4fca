// Withdrawal and refund routes: the office (or the student, giving notice) records a withdrawal, which
// moves the enrollment out and calculates the refund under the rule in force; an administrator may
// override the figures with a reason before approval; finance approves (posting the tuition reduction
// and the refund to the ledger in one transaction, after which nothing changes) and records the
// remittance; finance and admin list the refunds coming due. Rules, queries and views: lib/refunds.ts
// and lib/refund-rules.ts.
import { z } from 'zod';
import { hasAnyRole } from '../lib/access';
import { endpoint } from '../lib/endpoint';
import { badRequest, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { ALL_LEDGER_READERS, LEDGER_POSTERS, MAX_AMOUNT_CENTS, Reference } from '../lib/ledger';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import {
  approveRefund,
  DUE_ORDER,
  enrollmentWithdrawal,
  findRefund,
  overrideRefund,
  recordWithdrawal,
  refundsDuePageQuery,
  remitRefund,
  reverseRefundApproval,
  toDueViews,
  WITHDRAWAL_RECORDERS,
} from '../lib/refunds';
import { decimalInt, multiLine } from '../lib/text';

const Params = z.object({ id: z.uuid() });
const isoDate = z.iso.date({ error: 'A date as YYYY-MM-DD' });

const NewWithdrawal = z
  .strictObject({
    kind: z.enum(['official', 'unofficial']),
    notifiedAt: z.iso.datetime({ offset: true, error: 'An instant with its offset (2026-03-02T15:00:00Z)' }).optional(),
    determinedOn: isoDate.optional(),
    lastDateOfAttendance: isoDate.optional(),
    reason: multiLine(1000).optional(),
  })
  .refine((body) => body.kind === 'official' || body.notifiedAt === undefined, {
    message: 'Only an official withdrawal has a notice from the student',
    path: ['notifiedAt'],
  });

/** What a student may send about their own withdrawal: notice now, and a reason; the dates are the school's. */
function refuseSchoolFieldsFromStudents(body: z.infer<typeof NewWithdrawal>) {
  if (body.kind !== 'official') {
    throw badRequest('A student gives notice: an official withdrawal', [
      { field: 'body.kind', message: 'A student gives notice: official' },
    ]);
  }
  for (const field of ['notifiedAt', 'determinedOn', 'lastDateOfAttendance'] as const) {
    if (body[field] !== undefined) {
      throw badRequest('The school records this date', [{ field: `body.${field}`, message: 'Set by the school' }]);
    }
  }
}

endpoint({
  name: 'ledger-withdrawal-record',
  methods: ['POST'],
  route: 'enrollments/{id}/withdrawal',
  access: [...WITHDRAWAL_RECORDERS, 'student'],
  phi: true,
  params: Params,
  body: NewWithdrawal,
  handler: async function recordEnrollmentWithdrawal({ sql, params, body, caller, audit }) {
    if (!hasAnyRole(caller, WITHDRAWAL_RECORDERS)) refuseSchoolFieldsFromStudents(body);
    const ids = await recordWithdrawal(sql, { ...body, enrollmentId: params.id, recordedBy: caller.userId }, caller);
    audit.resourceIds.withdrawalId = ids.withdrawalId;
    audit.resourceIds.refundId = ids.refundId;
    return created(await enrollmentWithdrawal(sql, params.id, caller), `/api/enrollments/${params.id}/withdrawal`);
  },
});

endpoint({
  name: 'ledger-withdrawal-read',
  methods: ['GET'],
  route: 'enrollments/{id}/withdrawal',
  access: [...WITHDRAWAL_RECORDERS, 'finance', 'student'],
  phi: true,
  params: Params,
  handler: async function readEnrollmentWithdrawal({ sql, params, caller }) {
    const found = await enrollmentWithdrawal(sql, params.id, caller);
    if (!found) throw notFound('No such enrollment');
    return json(found);
  },
});

endpoint({
  name: 'ledger-refund-read',
  methods: ['GET'],
  route: 'ledger/refunds/{id}',
  access: ALL_LEDGER_READERS,
  phi: true,
  params: Params,
  handler: async function readRefund({ sql, params, caller }) {
    const refund = await findRefund(sql, params.id, caller);
    if (!refund) throw notFound('No such refund');
    return json(refund);
  },
});

/** Zero or more whole cents, at most MAX_AMOUNT_CENTS: an override may say "nothing". */
const CentsOrZero = z
  .int({ error: 'Write the amount as a whole number of cents' })
  .min(0, 'Must not be negative')
  .max(MAX_AMOUNT_CENTS, `At most ${MAX_AMOUNT_CENTS} cents`);

const Override = z.strictObject({
  adjustmentCents: CentsOrZero,
  refundCents: CentsOrZero,
  reason: multiLine(1000, { min: 10 }),
});

endpoint({
  name: 'ledger-refund-override',
  methods: ['POST'],
  route: 'ledger/refunds/{id}/override',
  // An administrator overrides; finance, who posts money, approves: never the same account.
  access: ['admin'],
  phi: true,
  params: Params,
  body: Override,
  handler: async function overrideRefundFigures({ sql, params, body, caller, audit }) {
    const overrideId = await overrideRefund(sql, params.id, { ...body, by: caller.userId });
    audit.resourceIds.overrideId = overrideId;
    audit.event = 'refund_override';
    return created(await findRefund(sql, params.id, caller), `/api/ledger/refunds/${params.id}`);
  },
});

const Approval = z.strictObject({ payee: z.enum(['student', 'third_party']).default('student') });

endpoint({
  name: 'ledger-refund-approve',
  methods: ['POST'],
  route: 'ledger/refunds/{id}/approval',
  access: LEDGER_POSTERS,
  phi: true,
  params: Params,
  body: Approval,
  handler: async function approveRefundAndPost({ sql, params, body, caller, audit }) {
    await approveRefund(sql, params.id, { payee: body.payee, by: caller.userId });
    const refund = await findRefund(sql, params.id, caller);
    audit.event = 'refund_approved';
    if (refund?.approval?.adjustmentEntryId) audit.resourceIds.adjustmentEntryId = refund.approval.adjustmentEntryId;
    if (refund?.approval?.refundEntryId) audit.resourceIds.refundEntryId = refund.approval.refundEntryId;
    return json(refund);
  },
});

endpoint({
  name: 'ledger-refund-approval-reverse',
  methods: ['POST'],
  route: 'ledger/refunds/{id}/approval-reversal',
  access: LEDGER_POSTERS,
  phi: true,
  params: Params,
  body: z.strictObject({ reason: multiLine(1000, { min: 10 }) }),
  handler: async function reverseApprovalOfRefund({ sql, params, body, caller, audit }) {
    audit.resourceIds.approvalReversalId = await reverseRefundApproval(sql, params.id, {
      reason: body.reason,
      by: caller.userId,
    });
    audit.event = 'refund_approval_reversed';
    return json(await findRefund(sql, params.id, caller));
  },
});

endpoint({
  name: 'ledger-refund-remit',
  methods: ['POST'],
  route: 'ledger/refunds/{id}/remittance',
  access: LEDGER_POSTERS,
  phi: true,
  params: Params,
  body: z.strictObject({ reference: Reference }),
  handler: async function recordRefundRemittance({ sql, params, body, caller }) {
    await remitRefund(sql, params.id, { reference: body.reference, by: caller.userId });
    return json(await findRefund(sql, params.id, caller));
  },
});

const DueQuery = z.object({
  withinDays: decimalInt({ min: 0, max: 365 }).default(14),
  limit: limitSchema,
  cursor: DUE_ORDER.cursor,
});

endpoint({
  name: 'ledger-refunds-due',
  methods: ['GET'],
  route: 'ledger/refunds-due',
  access: ALL_LEDGER_READERS,
  phi: true,
  query: DueQuery,
  handler: async function listRefundsDue({ sql, query, request }) {
    const page = pageOf(await refundsDuePageQuery(sql, query.withinDays, query), query.limit, toDueViews);
    return json(page, 200, nextLink(request.url, page.next));
  },
});
