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
import { decrypt, encrypt } from '../lib/crypto';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { scormScope, scormVisible } from '../lib/scorm';

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

interface ScormRow {
  user_id: string;
  module_id: string;
  lesson_status: string;
  score_scaled: string | null;
  score_raw: string | null;
  session_time: string | null;
  suspend_data_ciphertext: string | null;
  interactions_ciphertext: string | null;
  /** Legacy plaintext (before 0008), NULL once keys:rotate has run or the field was written again. */
  suspend_data: string | null;
  interactions: unknown[] | null;
  created_at: Date;
  updated_at: Date;
}

const toRecord = (row: ScormRow) => ({
  userId: row.user_id,
  moduleId: row.module_id,
  lessonStatus: row.lesson_status,
  // numeric arrives as a string (exact); these fit a double.
  scoreScaled: row.score_scaled === null ? null : Number(row.score_scaled),
  scoreRaw: row.score_raw === null ? null : Number(row.score_raw),
  sessionTime: row.session_time,
  suspendData: row.suspend_data_ciphertext
    ? decrypt(row.suspend_data_ciphertext, 'scorm_records.suspend_data')
    : row.suspend_data,
  interactions: row.interactions_ciphertext
    ? (JSON.parse(decrypt(row.interactions_ciphertext, 'scorm_records.interactions')) as unknown[])
    : (row.interactions ?? []),
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

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
    const suspendData = body.suspendData === undefined ? null : encrypt(body.suspendData, 'scorm_records.suspend_data');
    const interactions =
      body.interactions === undefined ? null : encrypt(JSON.stringify(body.interactions), 'scorm_records.interactions');
    const [row] = await sql<ScormRow[]>`
      insert into scorm_records (user_id, module_id, lesson_status, score_scaled, score_raw, session_time,
                                 suspend_data_ciphertext, interactions_ciphertext)
      select ${caller.userId}, m.id, coalesce(${body.lessonStatus ?? null}::text, 'not attempted'),
             ${body.scoreScaled ?? null}::numeric, ${body.scoreRaw ?? null}::numeric, ${body.sessionTime ?? null}::text,
             ${suspendData}::text, ${interactions}::text
        from modules m
       where m.id = ${params.moduleId}
         and exists (select 1 from enrollments e
                      where e.user_id = ${caller.userId} and e.program_id = m.program_id and e.status = 'active')
      on conflict (user_id, module_id) do update set
             lesson_status = coalesce(${body.lessonStatus ?? null}::text, scorm_records.lesson_status),
             score_scaled = coalesce(${body.scoreScaled ?? null}::numeric, scorm_records.score_scaled),
             score_raw = coalesce(${body.scoreRaw ?? null}::numeric, scorm_records.score_raw),
             session_time = coalesce(${body.sessionTime ?? null}::text, scorm_records.session_time),
             suspend_data_ciphertext = coalesce(${suspendData}::text, scorm_records.suspend_data_ciphertext),
             suspend_data = case when ${suspendData}::text is null then scorm_records.suspend_data end,
             interactions_ciphertext = coalesce(${interactions}::text, scorm_records.interactions_ciphertext),
             interactions = case when ${interactions}::text is null then scorm_records.interactions end
      returning *`;
    if (!row) throw notFound('No module of a programme you are actively enrolled in');
    return json(toRecord(row));
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
    const [row] = await sql<ScormRow[]>`
      select * from scorm_records where user_id = ${caller.userId} and module_id = ${params.moduleId}`;
    if (!row) throw notFound('No resume data for this module');
    return json(toRecord(row));
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
    const [row] = await sql<ScormRow[]>`
      select s.*
        from scorm_records s
        join modules m on m.id = s.module_id
       where s.user_id = ${params.userId} and s.module_id = ${params.moduleId}
         and ${scormVisible(sql, scormScope(caller))}`;
    if (!row) throw notFound('No resume data for this learner and module');
    return json(toRecord(row));
  },
});
