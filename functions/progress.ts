// Module progress of an enrollment: what a learner has done in each module (education records: PHI
// routes, no-store, audited).
//
// Who may write:
// * the enrolled student, on their own enrollment while it is active. A student's report never moves
//   a module backwards (status only goes not_started → incomplete → completed, the percentage only
//   grows) and cannot grade: `score` and the statuses passed, failed and not_started are the
//   instructor's (a credential depends on them);
// * an instructor of the programme or an admin (lib/progress.ts), on any enrollment that is not
//   withdrawn or cancelled, in any direction (corrections).
// Who may read: lib/progress.ts as well; both rules run inside the statement.
// Active time accumulates (`active_time_seconds + delta`); sections viewed are merged with the stored
// ones. Each write is one race-free upsert on (enrollment_id, module_id).
import { z } from 'zod';
import { hasAnyRole, type Role } from '../lib/access';
import type { AnySql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { badRequest, conflict, forbidden, notFound } from '../lib/errors';
import { json } from '../lib/http';
import {
  PROGRESS_GRADE_REACH,
  PROGRESS_READ_REACH,
  progressGradable,
  progressGradeScope,
  progressReadScope,
  progressVisible,
} from '../lib/progress';
import { singleLine } from '../lib/text';

const MAX_SECTIONS = 200;
/** Who may send grades at all (which enrollments they grade is lib/progress.ts's rule, in the query). */
const GRADERS: readonly Role[] = [...PROGRESS_GRADE_REACH.all, 'instructor'];
const STUDENT_STATUSES = new Set(['incomplete', 'completed']);
const COMPLETE = new Set(['completed', 'passed']);

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
type ProgressReport = z.infer<typeof ProgressReport>;

interface ProgressRow {
  module_id: string;
  status: string;
  score: number | null;
  progress_pct: number;
  last_scroll_position: number;
  active_time_seconds: string | number;
  sections_viewed: string[];
  last_accessed_at: Date | string | null;
  updated_at: Date | string;
}

const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString());

const toProgress = (row: ProgressRow) => ({
  moduleId: row.module_id,
  status: row.status,
  score: row.score,
  progressPct: row.progress_pct,
  lastScrollPosition: row.last_scroll_position,
  // bigint arrives as a string; a module's active time stays far below 2^53 seconds.
  activeTimeSeconds: Number(row.active_time_seconds),
  sectionsViewed: row.sections_viewed,
  lastAccessedAt: iso(row.last_accessed_at),
  updatedAt: iso(row.updated_at),
});

/** Stored sections followed by new ones, each once, in the order first seen. */
const mergedSections = (sql: AnySql, added: string[]) => sql`
  (select coalesce(jsonb_agg(s.value order by s.first_seen), '[]'::jsonb)
     from (select value, min(ordinality) as first_seen
             from jsonb_array_elements_text(module_progress.sections_viewed || ${sql.json(added)}::jsonb)
                  with ordinality
            group by value) s)`;

/** The student may report activity, not grades. */
function assertStudentMayReport(report: ProgressReport): void {
  if (report.score !== undefined) throw forbidden('Scores are recorded by an instructor');
  if (report.status !== undefined && !STUDENT_STATUSES.has(report.status)) {
    throw forbidden(`A student may report the status ${[...STUDENT_STATUSES].join(' or ')} only`);
  }
}

interface UpsertOutcome {
  acting_as: 'grader' | 'student' | null;
  writable: boolean;
  progress: ProgressRow | null;
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
  handler: async ({ sql, params, body, caller }) => {
    if (!hasAnyRole(caller, GRADERS)) assertStudentMayReport(body);
    // Also refused below for someone who holds a grading role but reports on their own enrollment.
    const grading = body.score !== undefined || (body.status !== undefined && !STUDENT_STATUSES.has(body.status));
    const sections = body.sectionsViewed ?? [];
    const status = body.status ?? null;
    const pct = body.progressPct ?? null;
    const scroll = body.lastScrollPosition ?? null;
    const delta = body.activeSecondsDelta ?? 0;
    // Which rules the update applies: forward-only for the student's own report, corrections for graders.
    const studentReport = sql`(select acting_as = 'student' from allowed)`;
    // One statement: find the enrollment and the module (which must belong to its programme), decide
    // who the caller acts as, and upsert only if allowed. The outcome row says why nothing was written.
    const [outcome] = await sql<UpsertOutcome[]>`
      with target as (
        select e.id as enrollment_id, e.status as enrollment_status, m.id as module_id,
               case
                 when ${progressGradable(sql, progressGradeScope(caller))} then 'grader'
                 when e.user_id = ${caller.userId} then 'student'
               end as acting_as
          from enrollments e
          join modules m on m.program_id = e.program_id and m.id = ${params.moduleId}
         where e.id = ${params.enrollmentId}),
      allowed as (
        select *, case acting_as when 'grader' then enrollment_status not in ('withdrawn', 'cancelled')
                                 when 'student' then enrollment_status = 'active' and not ${grading}
                                 else false end as writable
          from target),
      upserted as (
        insert into module_progress
               (enrollment_id, module_id, status, score, progress_pct, last_scroll_position, active_time_seconds,
                sections_viewed, last_accessed_at)
        select enrollment_id, module_id,
               coalesce(${status}::text, case acting_as when 'student' then 'incomplete' else 'not_started' end),
               ${body.score ?? null}::int, coalesce(${pct}::int, 0), coalesce(${scroll}::int, 0), ${delta}::int,
               ${sql.json(sections)}::jsonb, case acting_as when 'student' then now() end
          from allowed
         where writable
        on conflict (enrollment_id, module_id) do update set
               status = case
                          when not ${studentReport} then coalesce(${status}::text, module_progress.status)
                          when module_progress.status in ('completed', 'passed', 'failed') then module_progress.status
                          else coalesce(${status}::text, 'incomplete')
                        end,
               score = coalesce(${body.score ?? null}::int, module_progress.score),
               progress_pct = case
                                when not ${studentReport}
                                  then coalesce(${pct}::int, module_progress.progress_pct)
                                else greatest(module_progress.progress_pct, coalesce(${pct}::int, 0))
                              end,
               last_scroll_position = coalesce(${scroll}::int, module_progress.last_scroll_position),
               active_time_seconds = module_progress.active_time_seconds + ${delta}::int,
               sections_viewed = ${mergedSections(sql, sections)},
               last_accessed_at = coalesce(excluded.last_accessed_at, module_progress.last_accessed_at)
         where jsonb_array_length(${mergedSections(sql, sections)}) <= ${MAX_SECTIONS}
        returning module_progress.*)
      select a.acting_as, a.writable, to_json(u) as progress
        from allowed a left join upserted u on true`;
    if (!outcome) throw notFound('No such module in this enrollment');
    if (outcome.acting_as === null) throw notFound('No such module in this enrollment');
    if (outcome.acting_as === 'student' && grading) throw forbidden('Scores are recorded by an instructor');
    if (!outcome.writable) throw conflict('The enrollment is not open for progress reports');
    if (!outcome.progress) {
      throw badRequest('Too many sections', [
        { field: 'body.sectionsViewed', message: `A module records at most ${MAX_SECTIONS} distinct sections` },
      ]);
    }
    return json(toProgress(outcome.progress));
  },
});

interface SummaryRow {
  enrollment_id: string;
  user_id: string;
  enrollment_status: string;
  program_id: string;
  program_code: string;
  program_name: string;
  total_clock_hours: number;
  module_id: string | null;
  code: string | null;
  title: string | null;
  position: number | null;
  clock_hours: number | null;
  delivery_type: string | null;
  status: string | null;
  score: number | null;
  progress_pct: number | null;
  last_scroll_position: number | null;
  active_time_seconds: string | null;
  sections_viewed: string[] | null;
  last_accessed_at: Date | null;
  updated_at: Date | null;
}

/** A module counts fully when completed or passed, else by its reported percentage. */
const completionOf = (row: SummaryRow) => (COMPLETE.has(row.status ?? '') ? 1 : (row.progress_pct ?? 0) / 100);

/** Overall percentage weighted by clock hours (plain mean when no module has hours), one decimal. */
function overallPercent(modules: readonly SummaryRow[]): number {
  if (modules.length === 0) return 0;
  const hours = modules.reduce((sum, row) => sum + (row.clock_hours ?? 0), 0);
  const done =
    hours > 0
      ? modules.reduce((sum, row) => sum + (row.clock_hours ?? 0) * completionOf(row), 0) / hours
      : modules.reduce((sum, row) => sum + completionOf(row), 0) / modules.length;
  return Math.round(done * 1000) / 10;
}

endpoint({
  name: 'progress-summary',
  methods: ['GET'],
  route: 'enrollments/{enrollmentId}/progress',
  access: ['student', 'instructor', ...PROGRESS_READ_REACH.all],
  phi: true,
  params: EnrollmentParams,
  handler: async ({ sql, params, caller }) => {
    // One query: every module of the programme in order, with this enrollment's progress if any.
    const rows = await sql<SummaryRow[]>`
      select e.id as enrollment_id, e.user_id, e.status as enrollment_status,
             p.id as program_id, p.code as program_code, p.name as program_name, p.total_clock_hours,
             m.id as module_id, m.code, m.title, m.position, m.clock_hours, m.delivery_type,
             mp.status, mp.score, mp.progress_pct, mp.last_scroll_position, mp.active_time_seconds,
             mp.sections_viewed, mp.last_accessed_at, mp.updated_at
        from enrollments e
        join programs p on p.id = e.program_id
        left join modules m on m.program_id = p.id
        left join module_progress mp on mp.enrollment_id = e.id and mp.module_id = m.id
       where e.id = ${params.enrollmentId}
         and ${progressVisible(sql, progressReadScope(caller))}
       order by m.position`;
    const first = rows[0];
    if (!first) throw notFound('No such enrollment');
    const modules = rows.filter((row) => row.module_id !== null);
    return json({
      enrollmentId: first.enrollment_id,
      studentId: first.user_id,
      enrollmentStatus: first.enrollment_status,
      program: { id: first.program_id, code: first.program_code, name: first.program_name },
      totalModules: modules.length,
      completedModules: modules.filter((row) => COMPLETE.has(row.status ?? '')).length,
      totalClockHours: first.total_clock_hours,
      overallPct: overallPercent(modules),
      modules: modules.map((row) => ({
        moduleId: row.module_id,
        code: row.code,
        title: row.title,
        position: row.position,
        clockHours: row.clock_hours,
        deliveryType: row.delivery_type,
        status: row.status ?? 'not_started',
        score: row.score,
        progressPct: row.progress_pct ?? 0,
        lastScrollPosition: row.last_scroll_position ?? 0,
        activeTimeSeconds: Number(row.active_time_seconds ?? 0),
        sectionsViewed: row.sections_viewed ?? [],
        lastAccessedAt: iso(row.last_accessed_at),
        updatedAt: iso(row.updated_at),
      })),
    });
  },
});
