// Who reaches a learner's SCORM resume data (their saved answers), as a condition on the record
// (aliased `s`) and its module (aliased `m`) that functions/scorm.ts puts inside the query. The
// learner reaches their own; an instructor those of the programmes they teach; nobody reaches every
// learner's (docs/access-policy.md, decision 4: an admin corrects progress, never needs the answers).
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, recordVisibleSql, scopeOf } from './access';
import type { AnySql } from './db';

export const SCORM_REACH: RecordReach = { all: [], taught: true };

export const scormScope = (caller: Caller): RecordScope => scopeOf(caller, SCORM_REACH);

/** May the scope read SCORM record `s` of module `m`? */
export function scormVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return recordVisibleSql(sql, scope, { owner: sql`s.user_id`, program: sql`m.program_id` });
}
