// Skills check-offs: an instructor of the programme (or the office) records an attempt at a clinical
// skill, pending or decided on the spot, and decides a pending one; nothing is edited, a rejected
// attempt is followed by the next. Education records: PHI routes, no-store, audited. Rules and SQL:
// lib/skills.ts; who may call what: docs/access-policy.md, "skills".
import { z } from 'zod';
import type { Role } from '../lib/access';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import {
  CHECKOFF_ORDER,
  CHECKOFF_STATUSES,
  checkoffPageQuery,
  decideAttempt,
  recordAttempt,
  SKILLS_READ_REACH,
  SKILLS_WRITE_REACH,
  skillsReadScope,
  skillsWriteScope,
  toCheckoffViews,
} from '../lib/skills';
import { singleLine } from '../lib/text';

const CHECKOFF_RECORDERS: readonly Role[] = [...SKILLS_WRITE_REACH.all, 'instructor'];
const CHECKOFF_READERS: readonly Role[] = [...SKILLS_READ_REACH.all, 'instructor', 'student'];

const skillCode = singleLine(40, {
  pattern: { regex: /^[A-Z][A-Z0-9_]{1,39}$/, message: 'Capital letters, digits and _ (PPE_DON_DOFF)' },
});
const licenseNumber = singleLine(50);

/** A user of the school (an instructor) or someone external, with the licence number either way. */
const Evaluator = z.union([
  z.strictObject({ userId: z.uuid(), licenseNumber }),
  z.strictObject({ name: singleLine(200), licenseNumber }),
]);

const NewAttempt = z
  .strictObject({
    studentId: z.uuid(),
    moduleId: z.uuid(),
    skillCode,
    status: z.enum(CHECKOFF_STATUSES),
    /** Required to approve or reject. */
    evaluator: Evaluator.optional(),
    /** Where the evidence is (a file name, a link): stored encrypted. */
    evidenceRef: singleLine(500).optional(),
  })
  .superRefine((attempt, ctx) => {
    if (attempt.status !== 'pending' && !attempt.evaluator) {
      ctx.addIssue({ code: 'custom', path: ['evaluator'], message: 'A decision names its evaluator and licence' });
    }
  });

endpoint({
  name: 'skills-checkoffs-record',
  methods: ['POST'],
  route: 'skills/checkoffs',
  access: CHECKOFF_RECORDERS,
  phi: true,
  body: NewAttempt,
  handler: async function skillsCheckoffsRecord({ sql, body, caller, audit }) {
    const checkoff = await recordAttempt(sql, skillsWriteScope(caller), caller.userId, body);
    audit.resourceIds.checkoffId = checkoff?.id as string;
    return created(checkoff);
  },
});

const CheckoffParams = z.object({ checkoffId: z.uuid() });

const Decision = z.strictObject({
  status: z.enum(['approved', 'rejected']),
  evaluator: Evaluator,
  evidenceRef: singleLine(500).optional(),
});

endpoint({
  name: 'skills-checkoffs-decide',
  methods: ['POST'],
  route: 'skills/checkoffs/{checkoffId}/decision',
  access: CHECKOFF_RECORDERS,
  phi: true,
  params: CheckoffParams,
  body: Decision,
  handler: async function skillsCheckoffsDecide({ sql, params, body, caller, audit }) {
    const decision = await decideAttempt(sql, skillsWriteScope(caller), caller.userId, params.checkoffId, body);
    if (!decision) throw notFound('No such check-off');
    audit.resourceIds.decisionId = decision.id;
    return created(decision);
  },
});

const CheckoffListQuery = z.object({
  limit: limitSchema,
  cursor: CHECKOFF_ORDER.cursor,
  studentId: z.uuid().optional(),
  moduleId: z.uuid().optional(),
  skillCode: skillCode.optional(),
});

endpoint({
  name: 'skills-checkoffs-list',
  methods: ['GET'],
  route: 'skills/checkoffs',
  access: CHECKOFF_READERS,
  phi: true,
  query: CheckoffListQuery,
  handler: async function skillsCheckoffsList({ sql, query, caller, request }) {
    // A student's scope is their own check-offs, whatever studentId they pass.
    const rows = await checkoffPageQuery(sql, query, skillsReadScope(caller), query.cursor, query.limit);
    const page = pageOf(rows, query.limit, toCheckoffViews);
    return json(page, 200, nextLink(request.url, page.next));
  },
});
