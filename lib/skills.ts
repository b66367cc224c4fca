// Skills check-offs: per student, module and skill code, attempts that are never edited. An attempt is
// opened pending (to be evaluated) or decided on the spot; a pending attempt is decided by a second row
// naming it. A decision (approved, rejected) carries the evaluator's name and licence number and the
// server's signed_at; the evaluator is an active user holding an evaluating role, or someone external
// recorded by name and licence. A rejected attempt may be followed by the next; an approved skill is
// checked off for good. Names, licences and evidence references are ciphertext. Who reaches what:
// the office and the registrar every check-off, instructors those of the programmes they teach (they
// record them there), a student their own.
import type postgres from 'postgres';
import { type Caller, programReachedSql, type RecordReach, type RecordScope, type Role, scopeOf } from './access';
import { decryptRows, encrypt } from './crypto';
import type { AnySql } from './db';
import { badRequest, conflict, declareConstraints } from './errors';
import { keyset } from './pagination';
import { enrollmentVisible } from './students';

export const SKILLS_READ_REACH: RecordReach = { all: ['admin', 'staff', 'registrar'], taught: true };
export const SKILLS_WRITE_REACH: RecordReach = { all: ['admin', 'staff'], taught: true };
export const skillsReadScope = (caller: Caller): RecordScope => scopeOf(caller, SKILLS_READ_REACH);
export const skillsWriteScope = (caller: Caller): RecordScope => scopeOf(caller, SKILLS_WRITE_REACH);

/** Accounts that may be named as a skill's evaluator: the school's instructors (licensed assistants). */
export const EVALUATOR_ROLES: readonly Role[] = ['instructor'];

export const CHECKOFF_STATUSES = ['pending', 'approved', 'rejected'] as const;
export type CheckoffStatus = (typeof CHECKOFF_STATUSES)[number];

const FIELDS = {
  name: 'skills_checkoffs.evaluator_name',
  license: 'skills_checkoffs.evaluator_license',
  evidence: 'skills_checkoffs.evidence_ref',
} as const;

const ALREADY_DECIDED = 'This attempt has been decided already';

declareConstraints({
  skills_checkoffs_attempt_key: {
    status: 409,
    field: 'body.skillCode',
    message: 'Another attempt at this skill was recorded at the same time; read the attempts and try again',
  },
  skills_checkoffs_decides_key: { status: 409, field: 'params.checkoffId', message: ALREADY_DECIDED },
});

/** An evaluator as a request names one: a user of the school, or someone external. */
export type EvaluatorInput = { userId: string; licenseNumber: string } | { name: string; licenseNumber: string };

/** The evaluator's name and licence as stored, checking that a named user may evaluate. */
async function evaluatorOf(sql: AnySql, evaluator: EvaluatorInput) {
  if (!('userId' in evaluator)) return { userId: null, name: evaluator.name, license: evaluator.licenseNumber };
  const [user] = await sql<{ first_name_ciphertext: string; last_name_ciphertext: string }[]>`
    select u.first_name_ciphertext, u.last_name_ciphertext from users u
     where u.id = ${evaluator.userId} and u.status = 'active'
       and exists (select 1 from user_roles r where r.user_id = u.id and r.role_name in ${sql([...EVALUATOR_ROLES])})`;
  if (!user) {
    const message = 'Not an active user who may evaluate skills (an instructor)';
    throw badRequest(message, [{ field: 'body.evaluator.userId', message }]);
  }
  const [named] = decryptRows([user], {
    first_name_ciphertext: 'users.first_name',
    last_name_ciphertext: 'users.last_name',
  });
  const name = `${named?.first_name_ciphertext} ${named?.last_name_ciphertext}`;
  return { userId: evaluator.userId, name, license: evaluator.licenseNumber };
}

export interface CheckoffRow {
  id: string;
  user_id: string;
  module_id: string;
  enrollment_id: string;
  skill_code: string;
  attempt: number;
  status: CheckoffStatus;
  decides_id: string | null;
  evaluator_user_id: string | null;
  evaluator_name_ciphertext: string | null;
  evaluator_license_ciphertext: string | null;
  evidence_ref_ciphertext: string | null;
  signed_at: Date | null;
  recorded_by: string;
  recorded_at: Date;
}

export function toCheckoffViews(rows: readonly CheckoffRow[]) {
  return decryptRows(rows, {
    evaluator_name_ciphertext: FIELDS.name,
    evaluator_license_ciphertext: FIELDS.license,
    evidence_ref_ciphertext: FIELDS.evidence,
  }).map((row) => ({
    id: row.id,
    studentId: row.user_id,
    moduleId: row.module_id,
    enrollmentId: row.enrollment_id,
    skillCode: row.skill_code,
    attempt: row.attempt,
    status: row.status,
    decides: row.decides_id,
    evaluator:
      row.evaluator_name_ciphertext === null
        ? null
        : {
            userId: row.evaluator_user_id,
            name: row.evaluator_name_ciphertext,
            licenseNumber: row.evaluator_license_ciphertext,
          },
    evidenceRef: row.evidence_ref_ciphertext,
    signedAt: row.signed_at?.toISOString() ?? null,
    recordedBy: row.recorded_by,
    recordedAt: row.recorded_at.toISOString(),
  }));
}

export interface NewAttempt {
  studentId: string;
  moduleId: string;
  skillCode: string;
  status: CheckoffStatus;
  evaluator?: EvaluatorInput | undefined;
  evidenceRef?: string | undefined;
}

/** Inserts one row; `signed_at` is the server's, for decisions only. */
async function insertCheckoff(
  sql: AnySql,
  row: { userId: string; moduleId: string; enrollmentId: string; skillCode: string; attempt: number },
  entry: {
    status: CheckoffStatus;
    decides: string | null;
    evaluator?: EvaluatorInput | undefined;
    evidenceRef?: string | undefined;
  },
  recordedBy: string,
) {
  const evaluator = entry.evaluator ? await evaluatorOf(sql, entry.evaluator) : null;
  const [created] = await sql<CheckoffRow[]>`
    insert into skills_checkoffs (user_id, module_id, enrollment_id, skill_code, attempt, status, decides_id,
                                  evaluator_user_id, evaluator_name_ciphertext, evaluator_license_ciphertext,
                                  evidence_ref_ciphertext, signed_at, recorded_by)
    values (${row.userId}, ${row.moduleId}, ${row.enrollmentId}, ${row.skillCode}, ${row.attempt}, ${entry.status},
            ${entry.decides}, ${evaluator?.userId ?? null}, ${evaluator ? encrypt(evaluator.name, FIELDS.name) : null},
            ${evaluator ? encrypt(evaluator.license, FIELDS.license) : null},
            ${entry.evidenceRef ? encrypt(entry.evidenceRef, FIELDS.evidence) : null},
            ${entry.status === 'pending' ? null : sql`now()`}, ${recordedBy})
    returning *`;
  return toCheckoffViews([created as CheckoffRow])[0];
}

const NO_MODULE = 'No such module in a programme you may record check-offs for';

/** Opens the next attempt at a skill (pending, or decided on the spot). */
export async function recordAttempt(sql: AnySql, scope: RecordScope, recordedBy: string, input: NewAttempt) {
  const [module] = await sql<{ program_id: string; reached: boolean }[]>`
    select m.program_id, ${programReachedSql(sql, scope, sql`m.program_id`)} as reached
      from modules m where m.id = ${input.moduleId}`;
  if (!module?.reached) throw badRequest(NO_MODULE, [{ field: 'body.moduleId', message: NO_MODULE }]);
  const [enrollment] = await sql<{ id: string }[]>`
    select id from enrollments
     where user_id = ${input.studentId} and program_id = ${module.program_id} and status = 'active'`;
  if (!enrollment) {
    const message = 'No active enrollment of this student in the module’s programme';
    throw badRequest(message, [{ field: 'body.studentId', message }]);
  }
  const [state] = await sql<{ last: number; approved: boolean; pending: number | null }[]>`
    select coalesce(max(o.attempt), 0)::int as last, coalesce(bool_or(o.status = 'approved' or d.status = 'approved'), false) as approved,
           max(o.attempt) filter (where o.status = 'pending' and d.id is null) as pending
      from skills_checkoffs o left join skills_checkoffs d on d.decides_id = o.id
     where o.user_id = ${input.studentId} and o.module_id = ${input.moduleId} and o.skill_code = ${input.skillCode}
       and o.decides_id is null`;
  if (state?.approved) throw conflict('This skill is checked off already');
  if (state?.pending) throw conflict(`Attempt ${state.pending} awaits its decision: decide it first`);
  const row = {
    userId: input.studentId,
    moduleId: input.moduleId,
    enrollmentId: enrollment.id,
    skillCode: input.skillCode,
  };
  return insertCheckoff(sql, { ...row, attempt: (state?.last ?? 0) + 1 }, { ...input, decides: null }, recordedBy);
}

/** Decides the pending attempt `checkoffId`; null when the scope cannot reach it. */
export async function decideAttempt(
  sql: AnySql,
  scope: RecordScope,
  recordedBy: string,
  checkoffId: string,
  decision: { status: 'approved' | 'rejected'; evaluator: EvaluatorInput; evidenceRef?: string | undefined },
) {
  const [target] = await sql<(CheckoffRow & { decided: boolean })[]>`
    select o.*, exists (select 1 from skills_checkoffs d where d.decides_id = o.id) as decided
      from skills_checkoffs o join enrollments e on e.id = o.enrollment_id
     where o.id = ${checkoffId} and ${enrollmentVisible(sql, scope)}`;
  if (!target) return null;
  if (target.status !== 'pending' || target.decides_id !== null || target.decided) throw conflict(ALREADY_DECIDED);
  const row = {
    userId: target.user_id,
    moduleId: target.module_id,
    enrollmentId: target.enrollment_id,
    skillCode: target.skill_code,
    attempt: target.attempt,
  };
  return insertCheckoff(sql, row, { ...decision, decides: target.id }, recordedBy);
}

export const CHECKOFF_ORDER = keyset(
  [
    ['o.recorded_at', 'time'],
    ['o.id', 'uuid'],
  ],
  'asc',
);

export interface CheckoffFilter {
  studentId?: string | undefined;
  moduleId?: string | undefined;
  skillCode?: string | undefined;
}

/** Every row (openings and decisions) the scope sees, in the order they were recorded. */
export function checkoffPageQuery(
  sql: AnySql,
  filter: CheckoffFilter,
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  const conditions: postgres.Fragment[] = [
    filter.studentId ? sql`o.user_id = ${filter.studentId}` : sql`true`,
    filter.moduleId ? sql`o.module_id = ${filter.moduleId}` : sql`true`,
    filter.skillCode ? sql`o.skill_code = ${filter.skillCode}` : sql`true`,
  ];
  return sql<(CheckoffRow & { page_key: string[] })[]>`
    select o.*, ${CHECKOFF_ORDER.key(sql)}
      from skills_checkoffs o join enrollments e on e.id = o.enrollment_id
     where ${enrollmentVisible(sql, scope)} and ${conditions.reduce((all, one) => sql`${all} and ${one}`)}
       and ${CHECKOFF_ORDER.after(sql, after)}
     ${CHECKOFF_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}
