// Complaints and their handling (GNPEC): a student files their own; staff file for a student or for
// someone who is not a user; staff review and resolve; the complainant (or staff for them) appeals
// within the window; staff close. Any other move is a 409. Every complaint answer carries the
// commission's appeal information. Rules and SQL: lib/complaints.ts; who may call: docs/access-policy.md.
import { z } from 'zod';
import { hasAnyRole, type Role } from '../lib/access';
import {
  APPEAL_WINDOW_DAYS,
  COMPLAINT_CATEGORIES,
  COMPLAINT_FLOW,
  COMPLAINT_ORDER,
  COMPLAINT_REACH,
  COMPLAINT_STATUSES,
  type ComplaintStatus,
  complaintPageQuery,
  complaintScope,
  fileComplaint,
  findComplaint,
  GNPEC_APPEAL_INFORMATION,
  isStudent,
  moveComplaint,
  type NewComplaint,
  toComplaintViews,
} from '../lib/complaints';
import { endpoint } from '../lib/endpoint';
import { badRequest, forbidden, HttpError, notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { multiLine, singleLine } from '../lib/text';

const COMPLAINT_HANDLERS: readonly Role[] = COMPLAINT_REACH.all;
/** Who may call the complaint routes: staff, and students (their own). */
const COMPLAINT_PARTIES: readonly Role[] = [...COMPLAINT_HANDLERS, 'student'];

const OnBehalfOf = z.union([
  z.strictObject({ studentId: z.uuid() }),
  z.strictObject({ name: singleLine(200), contact: singleLine(200).optional() }),
]);

const ComplaintBody = z.strictObject({
  category: z.enum(COMPLAINT_CATEGORIES),
  details: multiLine(10_000),
  /** Staff only, and then required: whom the complaint is from. */
  onBehalfOf: OnBehalfOf.optional(),
});

endpoint({
  name: 'complaints-file',
  methods: ['POST'],
  route: 'complaints',
  access: COMPLAINT_PARTIES,
  phi: true,
  maxBodyBytes: 64 * 1024,
  body: ComplaintBody,
  handler: async function complaintsFile({ sql, body, caller, audit }) {
    const staff = hasAnyRole(caller, COMPLAINT_HANDLERS);
    let complainant: NewComplaint['complainant'];
    if (!staff) {
      if (body.onBehalfOf) throw forbidden('A student files complaints of their own');
      complainant = { userId: caller.userId };
    } else if (!body.onBehalfOf) {
      const message = 'Say whom the complaint is from: a studentId, or the name of someone who is not a student';
      throw badRequest(message, [{ field: 'body.onBehalfOf', message }]);
    } else if ('studentId' in body.onBehalfOf) {
      if (!(await isStudent(sql, body.onBehalfOf.studentId))) {
        throw badRequest('No such student', [{ field: 'body.onBehalfOf.studentId', message: 'No such student' }]);
      }
      complainant = { userId: body.onBehalfOf.studentId };
    } else {
      complainant = body.onBehalfOf;
    }
    const id = await fileComplaint(sql, caller.userId, { category: body.category, details: body.details, complainant });
    audit.resourceIds.complaintId = id;
    return created(await findComplaint(sql, id, { kind: 'all' }), `/api/complaints/${id}`);
  },
});

const ComplaintListQuery = z.object({
  limit: limitSchema,
  cursor: COMPLAINT_ORDER.cursor,
  status: z.enum(COMPLAINT_STATUSES).optional(),
  studentId: z.uuid().optional(),
});

endpoint({
  name: 'complaints-list',
  methods: ['GET'],
  route: 'complaints',
  access: COMPLAINT_PARTIES,
  phi: true,
  query: ComplaintListQuery,
  handler: async function complaintsList({ sql, query, caller, request }) {
    const rows = await complaintPageQuery(sql, query, complaintScope(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, toComplaintViews);
    const appeal = { windowDays: APPEAL_WINDOW_DAYS, information: GNPEC_APPEAL_INFORMATION };
    return json({ appeal, ...page }, 200, nextLink(request.url, page.next));
  },
});

const ComplaintParams = z.object({ complaintId: z.uuid() });

endpoint({
  name: 'complaints-get',
  methods: ['GET'],
  route: 'complaints/{complaintId}',
  access: COMPLAINT_PARTIES,
  phi: true,
  params: ComplaintParams,
  handler: async function complaintsGet({ sql, params, caller }) {
    const complaint = await findComplaint(sql, params.complaintId, complaintScope(caller));
    if (!complaint) throw notFound('No such complaint');
    return json(complaint);
  },
});

const Transition = z.strictObject({
  to: z.enum(COMPLAINT_STATUSES),
  /** Resolution notes (required to resolve), the appeal's notes, or a note on the change. */
  notes: multiLine(10_000).optional(),
});

const transitionRefused = (message: string) =>
  new HttpError({
    status: 409,
    slug: 'illegal-transition',
    title: 'This status change is not allowed',
    detail: message,
    errors: [{ field: 'body.to', message }],
  });

function illegal(from: ComplaintStatus, to: ComplaintStatus): HttpError {
  const allowed = COMPLAINT_FLOW[from];
  return transitionRefused(
    allowed.length
      ? `A complaint that is ${from} can become ${allowed.join(' or ')}, not ${to}`
      : `A complaint that is ${from} is final: it cannot become ${to}`,
  );
}

endpoint({
  name: 'complaints-transition',
  methods: ['POST'],
  route: 'complaints/{complaintId}/transitions',
  access: COMPLAINT_PARTIES,
  phi: true,
  maxBodyBytes: 64 * 1024,
  params: ComplaintParams,
  body: Transition,
  handler: async function complaintsTransition({ sql, params, body, caller, audit }) {
    // The complainant may appeal their own complaint; handling it is the office's.
    if (!hasAnyRole(caller, COMPLAINT_HANDLERS) && body.to !== 'appealed') {
      throw forbidden('Complaints are reviewed, resolved and closed by the school office');
    }
    if (body.to === 'resolved' && !body.notes) {
      const message = 'Resolving a complaint needs resolution notes';
      throw badRequest(message, [{ field: 'body.notes', message }]);
    }
    const outcome = await moveComplaint(
      sql,
      complaintScope(caller),
      caller.userId,
      params.complaintId,
      body.to,
      body.notes,
    );
    switch (outcome.kind) {
      case 'not-found':
        throw notFound('No such complaint');
      case 'illegal':
        throw illegal(outcome.from, body.to);
      case 'window-closed':
        throw transitionRefused(`The appeal window closed on ${outcome.deadline.toISOString()}`);
      case 'window-open':
        throw transitionRefused(
          `The complainant may appeal until ${outcome.deadline.toISOString()}: close the complaint after that`,
        );
      case 'moved':
        audit.event = `complaint_${body.to}`;
        return json(await findComplaint(sql, params.complaintId, { kind: 'all' }));
    }
  },
});
