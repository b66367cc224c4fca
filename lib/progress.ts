// Module progress of an enrollment: who reaches it (conditions on the enrollment, aliased `e`, inside
// the very statement that reads or writes the progress), the race-free upsert of a report, and the
// summary with its completion rule. Progress is an education record: the student reads and reports
// their own; an instructor reads and grades the enrollments of the programmes they teach; an admin
// grades any; the registrar reads any, because transcripts and credentials are issued from it
// (docs/access-policy.md, decision 3).
//
// A student's report never moves a module backwards (status only goes not_started → incomplete →
// completed, the percentage only grows) and cannot grade: `score` and the statuses passed, failed and
// not_started are the instructor's (a credential depends on them). A grader corrects in any direction,
// on any enrollment that is not withdrawn or cancelled. Active time accumulates (`active_time_seconds +
// delta`); sections viewed are merged with the stored ones. Each write is one upsert on
// (enrollment_id, module_id).
import type postgres from 'postgres';
import {
  type Caller,
  hasAnyRole,
  programReachedSql,
  type RecordReach,
  type RecordScope,
  type Role,
  recordVisibleSql,
  scopeOf,
} from './access';
import type { AnySql } from './db';
import { type EnrollmentModuleRow, enrollmentHeading, enrollmentModuleColumns } from './enrollments';
import { badRequest, conflict, forbidden, notFound } from './errors';

/** Who reads an enrollment's progress beyond its student. */
export const PROGRESS_READ_REACH: RecordReach = { all: ['admin', 'registrar'], taught: true };
/** Who grades and corrects it (any direction, scores, failed/passed). */
export const PROGRESS_GRADE_REACH: RecordReach = { all: ['admin'], taught: true };

export const progressReadScope = (caller: Caller): RecordScope => scopeOf(caller, PROGRESS_READ_REACH);
export const progressGradeScope = (caller: Caller): RecordScope => scopeOf(caller, PROGRESS_GRADE_REACH);

/** May the scope read the progress of enrollment `e`? */
export function progressVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return recordVisibleSql(sql, scope, { owner: sql`e.user_id`, program: sql`e.program_id` });
}

/**
 * May the scope grade enrollment `e`? Not merely because it is the caller's own: a student who also
 * holds a grading role reports on their own enrollment as a student.
 */
export function progressGradable(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return programReachedSql(sql, scope, sql`e.program_id`);
}

// ---------------------------------------------------------------------------------------------------
// Reporting progress
// ---------------------------------------------------------------------------------------------------

export const MAX_SECTIONS = 200;
/** The statuses a student may report. */
const STUDENT_STATUSES = new Set(['incomplete', 'completed']);
const COMPLETE = new Set(['completed', 'passed']);
/** Who may send grades at all (which enrollments they grade is progressGradable, in the query). */
const GRADERS: readonly Role[] = [...PROGRESS_GRADE_REACH.all, 'instructor'];

/** What a report may hold (every field optional). */
export interface ProgressReport {
  status?: 'not_started' | 'incomplete' | 'completed' | 'passed' | 'failed' | undefined;
  score?: number | undefined;
  progressPct?: number | undefined;
  lastScrollPosition?: number | undefined;
  sectionsViewed?: string[] | undefined;
  activeSecondsDelta?: number | undefined;
}

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

/**
 * Records a report on one module of an enrollment, as a grader or as the enrolled student, in one
 * statement: find the enrollment and the module (which must belong to its programme), decide who the
 * caller acts as, and upsert only if allowed. The outcome row says why nothing was written: 404 (no
 * such module in an enrollment the caller reaches), 403 (a student grading), 409 (the enrollment is
 * closed), 400 (too many sections).
 */
export async function recordProgress(
  sql: AnySql,
  ids: { enrollmentId: string; moduleId: string },
  report: ProgressReport,
  caller: Caller,
) {
  if (!hasAnyRole(caller, GRADERS)) assertStudentMayReport(report);
  // Also refused inside the statement for someone who holds a grading role but reports on their own
  // enrollment.
  const grading = report.score !== undefined || (report.status !== undefined && !STUDENT_STATUSES.has(report.status));
  const sections = report.sectionsViewed ?? [];
  const status = report.status ?? null;
  const pct = report.progressPct ?? null;
  const scroll = report.lastScrollPosition ?? null;
  const delta = report.activeSecondsDelta ?? 0;
  // Which rules the update applies: forward-only for the student's own report, corrections for graders.
  const studentReport = sql`(select acting_as = 'student' from allowed)`;
  const [outcome] = await sql<UpsertOutcome[]>`
    with target as (
      select e.id as enrollment_id, e.status as enrollment_status, m.id as module_id,
             case
               when ${progressGradable(sql, progressGradeScope(caller))} then 'grader'
               when e.user_id = ${caller.userId} then 'student'
             end as acting_as
        from enrollments e
        join modules m on m.program_id = e.program_id and m.id = ${ids.moduleId}
       where e.id = ${ids.enrollmentId}),
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
             ${report.score ?? null}::int, coalesce(${pct}::int, 0), coalesce(${scroll}::int, 0), ${delta}::int,
             ${sql.json(sections)}::jsonb, case acting_as when 'student' then now() end
        from allowed
       where writable
      on conflict (enrollment_id, module_id) do update set
             status = case
                        when not ${studentReport} then coalesce(${status}::text, module_progress.status)
                        when module_progress.status in ('completed', 'passed', 'failed') then module_progress.status
                        else coalesce(${status}::text, 'incomplete')
                      end,
             score = coalesce(${report.score ?? null}::int, module_progress.score),
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
  return toProgress(outcome.progress);
}

// ---------------------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------------------

/** A module of the programme with this enrollment's progress in it (null columns: not started). */
interface SummaryRow extends EnrollmentModuleRow {
  position: number | null;
  delivery_type: string | null;
  status: string | null;
  score: number | null;
  progress_pct: number | null;
  last_scroll_position: number | null;
  active_time_seconds: string | null;
  sections_viewed: string[] | null;
  last_accessed_at: Date | null;
  updated_at: Date | null;
  last_xapi: { statement_id: string; activity_iri: string; verb: string; stored: string } | null;
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

/**
 * Every module of the enrollment's programme in order, with this enrollment's progress if any, and the
 * overall completion; null when the caller does not reach the enrollment. One query.
 */
export async function progressSummary(sql: AnySql, enrollmentId: string, caller: Caller) {
  // One query: every module of the programme in order, with this enrollment's progress if any.
  const rows = await sql<SummaryRow[]>`
    select ${enrollmentModuleColumns(sql)}, m.position, m.delivery_type,
           mp.status, mp.score, mp.progress_pct, mp.last_scroll_position, mp.active_time_seconds,
           mp.sections_viewed, mp.last_accessed_at, mp.updated_at, x.last_xapi
      from enrollments e
      join programs p on p.id = e.program_id
      left join modules m on m.program_id = p.id
      left join module_progress mp on mp.enrollment_id = e.id and mp.module_id = m.id
      -- The latest statement of the student's that counted for the module (lib/xapi-progress.ts).
      left join lateral (
        select json_build_object('statement_id', v.statement_id, 'activity_iri', v.activity_iri, 'verb', v.verb,
                                 'stored', v.stored) as last_xapi
          from xapi_progress_events v
         where v.enrollment_id = e.id and v.module_id = m.id and not v.voided
         order by v.stored desc
         limit 1) x on true
     where e.id = ${enrollmentId}
       and ${progressVisible(sql, progressReadScope(caller))}
     order by m.position`;
  const first = rows[0];
  if (!first) return null;
  const modules = rows.filter((row) => row.module_id !== null);
  return {
    ...enrollmentHeading(first),
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
      lastXapiActivity: row.last_xapi && {
        statementId: row.last_xapi.statement_id,
        activityId: row.last_xapi.activity_iri,
        verb: row.last_xapi.verb,
        stored: iso(row.last_xapi.stored),
      },
    })),
  };
}
