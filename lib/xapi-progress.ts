// Statements into module progress (issue 13 item 6). A module's editors list the activity IRIs of its
// course content (module_xapi_activities). A statement a student sends with their own LMS token, about
// themselves, whose object is one of those activities, is about that module in the student's active
// enrollment of its programme:
// * any such statement marks the module worked on (not_started → incomplete, last accessed = stored);
// * `completed` or `passed` completes it (status completed, 100 %), forward only, like the student's own
//   report (lib/progress.ts): a student never grades, so `passed` from content completes the module and
//   leaves `passed`/`failed` and the score to an instructor; a module already completed, passed or failed
//   stays as it is.
// Each (statement, module) is one xapi_progress_events row, written in the statement's transaction with
// the progress it changed: a replayed statement id stores nothing new and changes nothing. Voiding a
// statement (by the student, or an admin's LMS token) flags its rows; when it had completed a module that
// is still `completed` and no other live statement completes it, the module goes back to what it was.
// Statements sent with an LRS credential, and statements about anyone but the sender, never move progress:
// a credential can assert anything about anyone, and progress is an education record.
import type postgres from 'postgres';
import type { AnySql } from './db';
import { UUID_ARRAY } from './db';
import type { LrsClient } from './xapi-auth';
import type { Prepared } from './xapi-statements';

const ADL_VERBS = 'http://adlnet.gov/expapi/verbs/';
/** ADL verbs the progress view names; any other verb is `other`. */
const KNOWN_VERBS = new Set([
  'answered',
  'attempted',
  'completed',
  'exited',
  'experienced',
  'failed',
  'initialized',
  'interacted',
  'launched',
  'mastered',
  'passed',
  'progressed',
  'resumed',
  'scored',
  'suspended',
  'terminated',
]);
const COMPLETING_VERBS = new Set(['completed', 'passed']);

/** The word the progress view shows for a verb IRI. */
export function verbWord(verbId: string): string {
  const word = verbId.startsWith(ADL_VERBS) ? verbId.slice(ADL_VERBS.length) : '';
  return KNOWN_VERBS.has(word) ? word : 'other';
}

interface Candidate {
  statement_id: string;
  activity_iri: string;
  verb: string;
  completes: boolean;
  stored: string;
}

type Obj = Record<string, unknown>;

/** The statements of a write that may move the sender's progress: newly stored, about an activity, not voiding. */
function candidatesOf(prepared: readonly Prepared[], stored: ReadonlySet<string>): Candidate[] {
  return prepared.flatMap((p) => {
    const object = p.statement.object as Obj;
    if (!stored.has(p.id) || p.voids || (object.objectType ?? 'Activity') !== 'Activity') return [];
    const verb = verbWord(String((p.statement.verb as Obj).id));
    return [
      {
        statement_id: p.id,
        activity_iri: String(object.id),
        verb,
        completes: COMPLETING_VERBS.has(verb),
        stored: p.stored.toISOString(),
      },
    ];
  });
}

/** What a write did to progress, for the request's audit row. */
export interface ProgressEffect {
  enrollmentId: string;
  moduleId: string;
}

/**
 * Applies a statement write to module progress, in the write's transaction and after storeStatements
 * (`stored`: the ids it newly stored, so a replay does nothing): first the voiding of statements that had
 * moved progress, then the sender's own new statements. Returns the modules whose progress changed.
 */
export async function applyStatementsToProgress(
  sql: AnySql,
  prepared: readonly Prepared[],
  stored: ReadonlySet<string>,
  client: LrsClient,
): Promise<ProgressEffect[]> {
  const voided = prepared.flatMap((p) => (stored.has(p.id) && p.voids ? [p.voids] : []));
  const undone = voided.length > 0 ? await undoVoided(sql, voided, client) : [];
  const candidates = client.learnerId ? candidatesOf(prepared, stored) : [];
  const done = candidates.length > 0 ? await creditStatements(sql, candidates, client.learnerId as string) : [];
  return [...undone, ...done];
}

/**
 * Records the student's statements about their modules' activities and moves those modules forward. A
 * statement stored voided (its voiding statement came first) counts for nothing. One statement.
 */
async function creditStatements(sql: AnySql, candidates: Candidate[], learnerId: string): Promise<ProgressEffect[]> {
  const rows = await sql<{ enrollment_id: string; module_id: string }[]>`
    with input as (
      select r.* from jsonb_to_recordset(${sql.json(candidates as unknown as postgres.JSONValue)})
        as r(statement_id uuid, activity_iri text, verb text, completes boolean, stored timestamptz)),
    matched as (
      select distinct i.statement_id, i.activity_iri, i.verb, i.completes, i.stored, x.module_id, e.id as enrollment_id
        from input i
        join xapi_statements s on s.id = i.statement_id and not s.voided
        join module_xapi_activities x on x.activity_iri = i.activity_iri
        join modules m on m.id = x.module_id
        join enrollments e on e.program_id = m.program_id and e.user_id = ${learnerId} and e.status = 'active'),
    events as (
      insert into xapi_progress_events (statement_id, enrollment_id, module_id, activity_iri, verb, stored, completes,
                                        status_before, progress_pct_before)
      select t.statement_id, t.enrollment_id, t.module_id, t.activity_iri, t.verb, t.stored, t.completes,
             mp.status, coalesce(mp.progress_pct, 0)
        from matched t
        left join module_progress mp on mp.enrollment_id = t.enrollment_id and mp.module_id = t.module_id
      on conflict do nothing
      returning enrollment_id, module_id, completes, stored),
    per_module as (
      select enrollment_id, module_id, bool_or(completes) as completes, max(stored) as last_stored
        from events group by enrollment_id, module_id)
    insert into module_progress as mp (enrollment_id, module_id, status, progress_pct, last_accessed_at)
    select enrollment_id, module_id, case when completes then 'completed' else 'incomplete' end,
           case when completes then 100 else 0 end, last_stored
      from per_module
     order by enrollment_id, module_id
    on conflict (enrollment_id, module_id) do update set
      status = case
                 when mp.status in ('completed', 'passed', 'failed') then mp.status
                 when excluded.status = 'completed' then 'completed'
                 else 'incomplete'
               end,
      progress_pct = case when excluded.status = 'completed' and mp.status not in ('passed', 'failed') then 100
                          else mp.progress_pct end,
      last_accessed_at = greatest(mp.last_accessed_at, excluded.last_accessed_at)
    returning enrollment_id, module_id`;
  return rows.map((row) => ({ enrollmentId: row.enrollment_id, moduleId: row.module_id }));
}

/**
 * Flags the progress events of voided statements, and puts back a module that a voided statement had
 * completed, if it is still `completed` (no instructor graded it since) and no other live statement
 * completes it: to `incomplete` if the module had been started or other statements about it remain,
 * else to `not_started`, with the percentage it had. Only the student's own voiding or an admin's counts.
 */
async function undoVoided(sql: AnySql, voidedIds: string[], client: LrsClient): Promise<ProgressEffect[]> {
  if (!client.learnerId && !client.lmsAdmin) return [];
  const rows = await sql<{ enrollment_id: string; module_id: string }[]>`
    with flagged as (
      update xapi_progress_events v set voided = true
        from enrollments e
       where v.statement_id = any(${sql.array(voidedIds, UUID_ARRAY)}) and not v.voided
         and e.id = v.enrollment_id and (${client.lmsAdmin} or e.user_id = ${client.learnerId})
      returning v.*),
    undone as (
      select f.enrollment_id, f.module_id,
             bool_or(f.status_before = 'incomplete') as was_started,
             max(f.progress_pct_before) filter (where f.status_before is distinct from 'completed') as pct_before
        from flagged f
       where f.completes and f.status_before is distinct from 'completed'
       group by f.enrollment_id, f.module_id)
    update module_progress mp
       set status = case
                      when u.was_started or exists (
                        select 1 from xapi_progress_events o
                         where o.enrollment_id = u.enrollment_id and o.module_id = u.module_id and not o.voided
                           and not (o.statement_id = any(${sql.array(voidedIds, UUID_ARRAY)})))
                        then 'incomplete'
                      else 'not_started'
                    end,
           progress_pct = coalesce(u.pct_before, 0)
      from undone u
     where mp.enrollment_id = u.enrollment_id and mp.module_id = u.module_id and mp.status = 'completed'
       and not exists (
         select 1 from xapi_progress_events o
          where o.enrollment_id = u.enrollment_id and o.module_id = u.module_id and o.completes and not o.voided
            and not (o.statement_id = any(${sql.array(voidedIds, UUID_ARRAY)})))
    returning mp.enrollment_id, mp.module_id`;
  return rows.map((row) => ({ enrollmentId: row.enrollment_id, moduleId: row.module_id }));
}

// ---------------------------------------------------------------------------------------------------------
// Which activities belong to a module (its editors say; lib/lessons.ts reachableModule decides who they are)
// ---------------------------------------------------------------------------------------------------------

/** At most this many activity IRIs a module (a course package's lessons, quizzes, the course itself). */
export const MAX_MODULE_ACTIVITIES = 200;

/** The module's activity IRIs, in IRI order. */
export async function moduleActivities(sql: AnySql, moduleId: string): Promise<string[]> {
  const rows = await sql<{ activity_iri: string }[]>`
    select activity_iri from module_xapi_activities where module_id = ${moduleId} order by activity_iri`;
  return rows.map((row) => row.activity_iri);
}

/**
 * Replaces the module's activity IRIs with `iris` (distinct). Statements stored earlier keep what they did;
 * from now on only statements about these activities count for the module.
 */
export async function replaceModuleActivities(
  sql: AnySql,
  moduleId: string,
  iris: readonly string[],
  userId: string,
): Promise<string[]> {
  await sql`
    delete from module_xapi_activities
     where module_id = ${moduleId} and not (activity_iri = any(${sql.array([...iris])}::text[]))`;
  if (iris.length > 0) {
    await sql`
      insert into module_xapi_activities (module_id, activity_iri, created_by)
      select ${moduleId}, iri, ${userId} from unnest(${sql.array([...iris])}::text[]) as iri
      on conflict do nothing`;
  }
  return moduleActivities(sql, moduleId);
}
