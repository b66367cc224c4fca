// SCORM resume data: the run-time snapshot a SCO stores per learner and module (cmi.core.lesson_status,
// score, session time, suspend_data, interactions), so a learner resumes where they stopped. Part of the
// learning record: PHI routes, no-store, audited.
//
// A student writes and reads their own, for modules of a programme they are actively enrolled in; an
// instructor of the programme reads their learners' (nobody else: docs/access-policy.md, decision 4).
// Only the fields sent overwrite (the old rule), in one upsert on (user_id, module_id). There is no delete.
//
// suspend_data and interactions are the learner's own answers and responses: stored encrypted
// (lib/crypto.ts, columns *_ciphertext). Rows written before migration 0008 may still hold them in the
// plaintext columns until `npm run keys:rotate` encrypts them; a row is read from whichever is set, and
// a write of either field clears its plaintext.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { findLearnerScormRecord, findOwnScormRecord, saveOwnScormRecord, scormScope, toScormView } from '../lib/scorm';

/** SCORM 2004 SPM of cmi.suspend_data (the column's CHECK says the same). */
const SUSPEND_DATA_MAX = 64_000;
/** SCORM 2004 SPM of cmi.interactions. */
const INTERACTIONS_MAX = 250;
const INTERACTIONS_MAX_BYTES = 128 * 1024;

/** SCORM 1.2 CMITimespan: HHHH:MM:SS(.SS), hours 2 to 4 digits. */
const SCORM12_TIMESPAN = /^\d{2,4}:[0-5]\d:[0-5]\d(\.\d{1,2})?$/;
/** SCORM 2004 timeinterval: an ISO 8601 duration such as PT1H5M30.5S (at least one component). */
const ISO8601_DURATION = /^P(?!$)(\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d{1,2})?S)?)?$/;

const sessionTime = z
  .string()
  .max(32)
  .refine((value) => SCORM12_TIMESPAN.test(value) || ISO8601_DURATION.test(value), {
    message: 'Expected an ISO 8601 duration (PT1H5M30S) or a SCORM 1.2 timespan (0001:05:30)',
  });

const interactions = z
  .array(z.record(z.string().max(64), z.unknown()))
  .max(INTERACTIONS_MAX)
  .refine((list) => Buffer.byteLength(JSON.stringify(list)) <= INTERACTIONS_MAX_BYTES, {
    message: `At most ${INTERACTIONS_MAX_BYTES} bytes of interactions`,
  });

const ScormUpdate = z
  .strictObject({
    lessonStatus: z.enum(['passed', 'completed', 'failed', 'incomplete', 'browsed', 'not attempted', 'unknown']),
    scoreScaled: z.number().min(-1).max(1),
    // numeric(6,2)
    scoreRaw: z.number().gt(-10_000).lt(10_000),
    sessionTime,
    suspendData: z.string().max(SUSPEND_DATA_MAX),
    interactions,
  })
  .partial()
  .refine((update) => Object.keys(update).length > 0, { message: 'Send at least one field' });

const ModuleParams = z.object({ moduleId: z.uuid() });
const LearnerParams = z.object({ moduleId: z.uuid(), userId: z.uuid() });

endpoint({
  name: 'scorm-save',
  methods: ['PUT'],
  route: 'scorm/{moduleId}',
  access: ['student'],
  phi: true,
  // suspend_data may be 64,000 characters, each up to 6 bytes when JSON-escaped, plus interactions.
  maxBodyBytes: 512 * 1024,
  params: ModuleParams,
  body: ScormUpdate,
  handler: async function scormSave({ sql, params, body, caller }) {
    const row = await saveOwnScormRecord(sql, caller.userId, params.moduleId, body);
    if (!row) throw notFound('No module of a programme you are actively enrolled in');
    return json(toScormView(row));
  },
});

endpoint({
  name: 'scorm-own',
  methods: ['GET'],
  route: 'scorm/{moduleId}',
  access: ['student'],
  phi: true,
  params: ModuleParams,
  handler: async function scormOwn({ sql, params, caller }) {
    const row = await findOwnScormRecord(sql, caller.userId, params.moduleId);
    if (!row) throw notFound('No resume data for this module');
    return json(toScormView(row));
  },
});

endpoint({
  name: 'scorm-learner',
  methods: ['GET'],
  route: 'scorm/{moduleId}/users/{userId}',
  // Decision 4 of docs/access-policy.md: a learner's saved answers are for their instructors only.
  access: ['instructor'],
  phi: true,
  params: LearnerParams,
  handler: async function scormLearner({ sql, params, caller }) {
    // lib/scorm.ts decides whose records the caller reaches; anything else is a 404.
    const row = await findLearnerScormRecord(sql, scormScope(caller), params.userId, params.moduleId);
    if (!row) throw notFound('No resume data for this learner and module');
    return json(toScormView(row));
  },
});
