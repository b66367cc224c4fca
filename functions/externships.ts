// Externships: the office places a student at a site with a supervisor; the student (or the office)
// logs the hours of each day; the office approves each entry (by the supervisor's confirmation or its
// own) and verifies the whole with a document. The total is derived from the approved log. PHI routes,
// no-store, audited. Rules and SQL: lib/externships.ts; who may call: docs/access-policy.md.
import { z } from 'zod';
import type { Role } from '../lib/access';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import {
  approveHours,
  createExternship,
  EXTERNSHIP_ORDER,
  EXTERNSHIP_REACH,
  externshipPageQuery,
  externshipScope,
  findExternship,
  logHours,
  toExternshipViews,
  verifyExternship,
} from '../lib/externships';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { multiLine, singleLine } from '../lib/text';

/** The office places students and approves and verifies their hours. */
const EXTERNSHIP_MANAGERS: readonly Role[] = ['admin', 'staff'];
const EXTERNSHIP_READERS: readonly Role[] = [...EXTERNSHIP_REACH.all, 'instructor', 'student'];
const HOURS_LOGGERS: readonly Role[] = [...EXTERNSHIP_MANAGERS, 'student'];

const isoDate = z.iso.date();

const NewExternship = z
  .strictObject({
    enrollmentId: z.uuid(),
    siteName: singleLine(200),
    siteAddress: singleLine(500).optional(),
    supervisor: z.strictObject({
      name: singleLine(200),
      email: z.email().max(254).optional(),
      phone: singleLine(30, { pattern: { regex: /^\+?[0-9 ().-]{7,30}$/, message: 'A telephone number' } }).optional(),
    }),
    startDate: isoDate,
    endDate: isoDate.optional(),
  })
  .refine((x) => !x.endDate || x.endDate >= x.startDate, {
    message: 'Must be on or after startDate',
    path: ['endDate'],
  });

endpoint({
  name: 'externships-create',
  methods: ['POST'],
  route: 'externships',
  access: EXTERNSHIP_MANAGERS,
  phi: true,
  body: NewExternship,
  handler: async function externshipsCreate({ sql, body, caller, audit }) {
    const id = await createExternship(sql, caller.userId, body);
    audit.resourceIds.externshipId = id;
    return created(await findExternship(sql, id, { kind: 'all' }), `/api/externships/${id}`);
  },
});

const ExternshipListQuery = z.object({
  limit: limitSchema,
  cursor: EXTERNSHIP_ORDER.cursor,
  studentId: z.uuid().optional(),
  enrollmentId: z.uuid().optional(),
  verified: z
    .enum(['true', 'false'])
    .transform((value) => value === 'true')
    .optional(),
});

endpoint({
  name: 'externships-list',
  methods: ['GET'],
  route: 'externships',
  access: EXTERNSHIP_READERS,
  phi: true,
  query: ExternshipListQuery,
  handler: async function externshipsList({ sql, query, caller, request }) {
    const rows = await externshipPageQuery(sql, query, externshipScope(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, toExternshipViews);
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const ExternshipParams = z.object({ externshipId: z.uuid() });

endpoint({
  name: 'externships-get',
  methods: ['GET'],
  route: 'externships/{externshipId}',
  access: EXTERNSHIP_READERS,
  phi: true,
  params: ExternshipParams,
  handler: async function externshipsGet({ sql, params, caller }) {
    const externship = await findExternship(sql, params.externshipId, externshipScope(caller));
    if (!externship) throw notFound('No such externship');
    return json(externship);
  },
});

const HoursEntry = z.strictObject({
  workDate: isoDate,
  minutes: z
    .number()
    .int()
    .min(1)
    .max(24 * 60),
  note: multiLine(1000).optional(),
});

endpoint({
  name: 'externships-log-hours',
  methods: ['POST'],
  route: 'externships/{externshipId}/hours',
  access: HOURS_LOGGERS,
  phi: true,
  params: ExternshipParams,
  body: HoursEntry,
  handler: async function externshipsLogHours({ sql, params, body, caller }) {
    if (!(await logHours(sql, externshipScope(caller), caller.userId, params.externshipId, body))) {
      throw notFound('No such externship');
    }
    return created(await findExternship(sql, params.externshipId, { kind: 'all' }));
  },
});

const EntryParams = z.object({ externshipId: z.uuid(), entryId: z.uuid() });

const Approval = z.union([
  z.strictObject({ by: z.literal('staff') }),
  /** The supervisor confirmed the day: where that confirmation is (a signed timesheet, an email). */
  z.strictObject({ by: z.literal('supervisor'), confirmationRef: singleLine(500) }),
]);

endpoint({
  name: 'externships-approve-hours',
  methods: ['POST'],
  route: 'externships/{externshipId}/hours/{entryId}/approval',
  access: EXTERNSHIP_MANAGERS,
  phi: true,
  params: EntryParams,
  body: Approval,
  handler: async function externshipsApproveHours({ sql, params, body, caller }) {
    const approved = await approveHours(
      sql,
      externshipScope(caller),
      caller.userId,
      params.externshipId,
      params.entryId,
      body,
    );
    if (!approved) throw notFound('No such entry');
    return json(await findExternship(sql, params.externshipId, { kind: 'all' }));
  },
});

const Verification = z.strictObject({ documentRef: singleLine(500) });

endpoint({
  name: 'externships-verify',
  methods: ['POST'],
  route: 'externships/{externshipId}/verification',
  access: EXTERNSHIP_MANAGERS,
  phi: true,
  params: ExternshipParams,
  body: Verification,
  handler: async function externshipsVerify({ sql, params, body, caller, audit }) {
    if (!(await verifyExternship(sql, externshipScope(caller), caller.userId, params.externshipId, body.documentRef))) {
      throw notFound('No such externship');
    }
    audit.event = 'externship_verified';
    return json(await findExternship(sql, params.externshipId, { kind: 'all' }));
  },
});
