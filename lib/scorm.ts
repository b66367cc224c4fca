// SCORM resume data of functions/scorm.ts: the statements, the view, and who reaches a learner's
// records (their saved answers), as a condition on the record (aliased `s`) and its module (aliased
// `m`) inside the query. The learner reaches their own; an instructor those of the programmes they
// teach; nobody reaches every learner's (docs/access-policy.md, decision 4: an admin corrects
// progress, never needs the answers).
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, recordVisibleSql, scopeOf } from './access';
import { decrypt, encrypt } from './crypto';
import type { AnySql } from './db';

export const SCORM_REACH: RecordReach = { all: [], taught: true };

export const scormScope = (caller: Caller): RecordScope => scopeOf(caller, SCORM_REACH);

/** May the scope read SCORM record `s` of module `m`? */
export function scormVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return recordVisibleSql(sql, scope, { owner: sql`s.user_id`, program: sql`m.program_id` });
}

export interface ScormRow {
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

/** The record as the routes show it: the answers decrypted, from the ciphertext or the legacy plaintext. */
export const toScormView = (row: ScormRow) => ({
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

/** The fields a save may send; only those sent overwrite. */
export interface ScormChanges {
  lessonStatus?: string | undefined;
  scoreScaled?: number | undefined;
  scoreRaw?: number | undefined;
  sessionTime?: string | undefined;
  suspendData?: string | undefined;
  interactions?: unknown[] | undefined;
}

/**
 * The learner's upsert on (user_id, module_id), for a module of a programme they are actively
 * enrolled in (nothing is written otherwise, and undefined comes back). Writing an answer field
 * clears its legacy plaintext.
 */
export async function saveOwnScormRecord(
  sql: AnySql,
  userId: string,
  moduleId: string,
  body: ScormChanges,
): Promise<ScormRow | undefined> {
  const suspendData = body.suspendData === undefined ? null : encrypt(body.suspendData, 'scorm_records.suspend_data');
  const interactions =
    body.interactions === undefined ? null : encrypt(JSON.stringify(body.interactions), 'scorm_records.interactions');
  const [row] = await sql<ScormRow[]>`
    insert into scorm_records (user_id, module_id, lesson_status, score_scaled, score_raw, session_time,
                               suspend_data_ciphertext, interactions_ciphertext)
    select ${userId}, m.id, coalesce(${body.lessonStatus ?? null}::text, 'not attempted'),
           ${body.scoreScaled ?? null}::numeric, ${body.scoreRaw ?? null}::numeric, ${body.sessionTime ?? null}::text,
           ${suspendData}::text, ${interactions}::text
      from modules m
     where m.id = ${moduleId}
       and exists (select 1 from enrollments e
                    where e.user_id = ${userId} and e.program_id = m.program_id and e.status = 'active')
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
  return row;
}

/** The caller's own record of a module. */
export async function findOwnScormRecord(sql: AnySql, userId: string, moduleId: string) {
  const [row] = await sql<ScormRow[]>`
    select * from scorm_records where user_id = ${userId} and module_id = ${moduleId}`;
  return row;
}

/** A learner's record of a module, if the scope reaches it. */
export async function findLearnerScormRecord(sql: AnySql, scope: RecordScope, userId: string, moduleId: string) {
  const [row] = await sql<ScormRow[]>`
    select s.*
      from scorm_records s
      join modules m on m.id = s.module_id
     where s.user_id = ${userId} and s.module_id = ${moduleId}
       and ${scormVisible(sql, scope)}`;
  return row;
}
