// Module progress of an enrollment: what a learner has done in each module (education records: PHI
// routes, no-store, audited). The routes and the report's schema; who may write and read, the rules of
// a report and the statements are lib/progress.ts.
import { z } from 'zod';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { MAX_SECTIONS, PROGRESS_READ_REACH, progressSummary, recordProgress } from '../lib/progress';
import { singleLine } from '../lib/text';

const ProgressParams = z.object({ enrollmentId: z.uuid(), moduleId: z.uuid() });
const EnrollmentParams = z.object({ enrollmentId: z.uuid() });

const ProgressReport = z
  .strictObject({
    status: z.enum(['not_started', 'incomplete', 'completed', 'passed', 'failed']),
    score: z.number().int().min(0).max(100),
    progressPct: z.number().int().min(0).max(100),
    lastScrollPosition: z.number().int().min(0).max(2_147_483_647),
    sectionsViewed: z
      .array(singleLine(100))
      .max(MAX_SECTIONS)
      .transform((sections) => [...new Set(sections)]),
    activeSecondsDelta: z.number().int().min(0).max(3600),
  })
  .partial()
  .refine((report) => Object.keys(report).length > 0, { message: 'Report at least one field' });

async function reportProgress({
  sql,
  params,
  body,
  caller,
}: ChangeInput<z.infer<typeof ProgressParams>, unknown, z.infer<typeof ProgressReport>>) {
  return json(await recordProgress(sql, params, body, caller));
}

endpoint({
  name: 'progress-record',
  methods: ['PUT'],
  route: 'enrollments/{enrollmentId}/progress/{moduleId}',
  access: ['student', 'instructor', 'admin'],
  phi: true,
  maxBodyBytes: 64 * 1024,
  params: ProgressParams,
  body: ProgressReport,
  handler: reportProgress,
});

async function readProgressSummary({ sql, params, caller }: ReadInput<z.infer<typeof EnrollmentParams>>) {
  const summary = await progressSummary(sql, params.enrollmentId, caller);
  if (!summary) throw notFound('No such enrollment');
  return json(summary);
}

endpoint({
  name: 'progress-summary',
  methods: ['GET'],
  route: 'enrollments/{enrollmentId}/progress',
  access: ['student', 'instructor', ...PROGRESS_READ_REACH.all],
  phi: true,
  params: EnrollmentParams,
  handler: readProgressSummary,
});
