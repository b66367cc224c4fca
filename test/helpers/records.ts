// Factories for the records tests arrange, inserted straight into the database (as an administrator
// would find them, without going through the routes under test): programmes with their modules,
// instructor assignments, enrollments, module progress, transcripts, credentials, and students in
// bulk. People one by one come from ./users.ts (createTestUser) and ./roles.ts (one per role).
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { emailBlindIndex, encrypt, nameSearchTokens } from '../../lib/crypto';

export interface TestProgram {
  programId: string;
  /** Module ids in position order. */
  moduleIds: string[];
}

const unique = () => randomBytes(3).toString('hex').toUpperCase();
const idOf = (rows: { id: string }[]) => (rows[0] as { id: string }).id;

/**
 * A programme whose modules have the given clock hours (none unless told), at positions 1..n, coded
 * `<modulePrefix>1`..`<modulePrefix>n` and titled `Module 1`..; its total clock hours are their sum.
 * Its name is `Programme <code>` unless told.
 */
export async function createProgram(
  sql: postgres.Sql,
  options: { code?: string; name?: string; hours?: readonly number[]; modulePrefix?: string; status?: string } = {},
): Promise<TestProgram> {
  const code = options.code ?? `P-${unique()}`;
  const hours = options.hours ?? [];
  const total = hours.reduce((sum, clockHours) => sum + clockHours, 0);
  const programId = idOf(
    await sql<{ id: string }[]>`
      insert into programs (code, name, credential_level, total_clock_hours, status)
      values (${code}, ${options.name ?? `Programme ${code}`}, 'certificate', ${total}, ${options.status ?? 'active'})
      returning id`,
  );
  const moduleIds: string[] = [];
  for (const [i, clockHours] of hours.entries()) {
    moduleIds.push(
      idOf(
        await sql<{ id: string }[]>`
          insert into modules (program_id, code, title, delivery_type, clock_hours, position)
          values (${programId}, ${`${options.modulePrefix ?? 'M'}${i + 1}`}, ${`Module ${i + 1}`}, 'online',
                  ${clockHours}, ${i + 1})
          returning id`,
      ),
    );
  }
  return { programId, moduleIds };
}

/** The instructor teaches the programme (sees its students and their progress). */
export async function assignInstructor(sql: postgres.Sql, instructorId: string, programId: string): Promise<void> {
  await sql`insert into instructor_assignments (instructor_id, program_id) values (${instructorId}, ${programId})`;
}

/** An enrollment of `userId` in `programId` (active, starting today, unless told otherwise). */
export async function createEnrollment(
  sql: postgres.Sql,
  userId: string,
  programId: string,
  options: { status?: string; startDate?: string } = {},
): Promise<string> {
  return idOf(
    await sql<{ id: string }[]>`
      insert into enrollments (user_id, program_id, start_date, status)
      values (${userId}, ${programId}, coalesce(${options.startDate ?? null}::date, current_date),
              ${options.status ?? 'active'})
      returning id`,
  );
}

/** The progress of one module of an enrollment (100 % done unless told); a second call replaces it. */
export async function recordProgress(
  sql: postgres.Sql,
  enrollmentId: string,
  moduleId: string,
  progress: { status: string; score?: number | null; progressPct?: number },
): Promise<void> {
  await sql`
    insert into module_progress (enrollment_id, module_id, status, score, progress_pct)
    values (${enrollmentId}, ${moduleId}, ${progress.status}, ${progress.score ?? null}, ${progress.progressPct ?? 100})
    on conflict (enrollment_id, module_id)
    do update set status = excluded.status, score = excluded.score, progress_pct = excluded.progress_pct`;
}

/** A bare transcript row of the student for the programme (no lines, no PDF; a GPA if told). */
export async function createTranscript(
  sql: postgres.Sql,
  userId: string,
  programId: string,
  options: { gpa?: number } = {},
): Promise<string> {
  return idOf(
    await sql<{ id: string }[]>`
      insert into transcripts (user_id, program_id, gpa) values (${userId}, ${programId}, ${options.gpa ?? null})
      returning id`,
  );
}

/** A certificate of the student for the programme, issued by `issuedBy` (now unless told). */
export async function createCredential(
  sql: postgres.Sql,
  options: { userId: string; programId: string; serial: string; issuedBy: string; issuedAt?: string },
): Promise<string> {
  return idOf(
    await sql<{ id: string }[]>`
      insert into credentials (user_id, program_id, credential_type, cert_serial, issued_at, issued_by)
      values (${options.userId}, ${options.programId}, 'certificate', ${options.serial},
              coalesce(${options.issuedAt ?? null}::timestamptz, now()), ${options.issuedBy})
      returning id`,
  );
}

export interface Person {
  firstName: string;
  lastName: string;
  email: string;
}

/** `n` people named `<prefix> Row0000`.. with unique email addresses. */
export const people = (prefix: string, n: number): Person[] =>
  Array.from({ length: n }, (_, i) => ({
    firstName: prefix,
    lastName: `Row${String(i).padStart(4, '0')}`,
    email: `${prefix.toLowerCase()}.${i}.${Math.random().toString(36).slice(2)}@example.test`,
  }));

/**
 * Many students in one statement, stored as the API stores them (encrypted names and email, blind
 * index, name search tokens), without passwords. One transaction: they share a created_at, so
 * paging must break ties by id.
 */
export async function insertStudents(sql: postgres.Sql, students: Person[], status = 'active'): Promise<string[]> {
  const hex = (buffer: Buffer) => buffer.toString('hex');
  const rows = await sql<{ id: string }[]>`
    with created as (
      insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext,
                         name_search_tokens, status)
      select x.email, decode(x.blind, 'hex'), x.first, x.last,
             (select coalesce(array_agg(decode(t, 'hex')), '{}') from unnest(string_to_array(x.tokens, ',')) t),
             ${status}
        from unnest(${students.map((p) => encrypt(p.email, 'users.email'))}::text[],
                    ${students.map((p) => hex(emailBlindIndex(p.email)))}::text[],
                    ${students.map((p) => encrypt(p.firstName, 'users.first_name'))}::text[],
                    ${students.map((p) => encrypt(p.lastName, 'users.last_name'))}::text[],
                    ${students.map((p) => nameSearchTokens(p.firstName, p.lastName).map(hex).join(','))}::text[])
             as x(email, blind, first, last, tokens)
      returning id),
    granted as (insert into user_roles (user_id, role_name) select id, 'student' from created)
    select id from created`;
  return rows.map((row) => row.id);
}

/**
 * One attendance session of `moduleId` (an hour, a week ago unless told) with a line per student, as
 * the API stores them: lines repeat the session's module and times. Returns the session id.
 */
export async function recordAttendance(
  sql: postgres.Sql,
  options: {
    moduleId: string;
    recordedBy: string;
    startsAt?: string;
    minutes?: number;
    lines: { userId: string; enrollmentId: string; status: string; minutesAttended?: number }[];
  },
): Promise<string> {
  const startsAt = options.startsAt ?? new Date(Date.now() - 7 * 86_400_000).toISOString();
  const minutes = options.minutes ?? 60;
  const [session] = await sql<{ id: string; starts_at: Date; ends_at: Date }[]>`
    insert into attendance_sessions (module_id, session_type, starts_at, ends_at, recorded_by)
    values (${options.moduleId}, 'live', ${startsAt}, ${startsAt}::timestamptz + ${minutes} * interval '1 minute',
            ${options.recordedBy})
    returning id, starts_at, ends_at`;
  const { id, starts_at, ends_at } = session as { id: string; starts_at: Date; ends_at: Date };
  for (const line of options.lines) {
    const attended = line.minutesAttended ?? (line.status === 'absent' ? 0 : minutes);
    await sql`
      insert into attendance_records (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                      minutes_attended, recorded_by)
      values (${id}, ${options.moduleId}, ${starts_at}, ${ends_at}, ${line.userId}, ${line.enrollmentId},
              ${line.status}, ${attended}, ${options.recordedBy})`;
  }
  return id;
}

/**
 * A daily 50-minute live session of `moduleId` for `sessions` days from 2025-01-06, every student present
 * at each: `sessions × students` attendance rows written by two statements, for the export tests.
 */
export async function recordDailyAttendance(
  sql: postgres.Sql,
  options: { moduleId: string; recordedBy: string; sessions: number; userIds: string[]; enrollmentIds: string[] },
): Promise<void> {
  const { moduleId, recordedBy, sessions, userIds, enrollmentIds } = options;
  await sql`
    insert into attendance_sessions (module_id, session_type, starts_at, ends_at, recorded_by)
    select ${moduleId}, 'live', t, t + interval '50 minutes', ${recordedBy}
      from generate_series(timestamptz '2025-01-06 14:00Z', timestamptz '2025-01-06 14:00Z' + (${sessions} - 1) * interval '1 day',
                           interval '1 day') t`;
  await sql`
    insert into attendance_records (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                    minutes_attended, recorded_by)
    select s.id, s.module_id, s.starts_at, s.ends_at, x.user_id, x.enrollment_id, 'present', 50, ${recordedBy}
      from attendance_sessions s
      cross join unnest(${userIds}::uuid[], ${enrollmentIds}::uuid[]) as x(user_id, enrollment_id)
     where s.module_id = ${moduleId}`;
}

/** A pending skill check-off, an externship and a complaint of the student, stored as the API stores them. */
export async function createComplianceRecords(
  sql: postgres.Sql,
  options: { userId: string; enrollmentId: string; moduleId: string; by: string },
): Promise<void> {
  const { userId, enrollmentId, moduleId, by } = options;
  await sql`
    insert into skills_checkoffs (user_id, module_id, enrollment_id, skill_code, attempt, status, recorded_by)
    values (${userId}, ${moduleId}, ${enrollmentId}, 'PPE_DON_DOFF', 1, 'pending', ${by})`;
  await sql`
    insert into externships (user_id, enrollment_id, site_name, supervisor_name_ciphertext, start_date, created_by)
    values (${userId}, ${enrollmentId}, 'Test Dental', ${encrypt('Dr. Test', 'externships.supervisor_name')},
            '2026-01-05', ${by})`;
  await sql`
    insert into complaints (user_id, filed_by, category, details_ciphertext)
    values (${userId}, ${userId}, 'other', ${encrypt('A test complaint', 'complaints.details')})`;
}
