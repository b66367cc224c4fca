// Externships: a student's placement at a dental practice (site, supervisor, dates), its hours log (one
// entry per day, approved by the supervisor's confirmation or by staff) and its verification. The total
// is the sum of the approved entries, never a typed number. A verified externship takes no more entries
// or approvals. The supervisor's name, email and phone, notes and document references are ciphertext.
// Who reaches what: the office and the registrar every externship, instructors those of the programmes
// they teach, a student their own (a student logs their own hours; approving and verifying is the office's).
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, scopeOf } from './access';
import { decrypt, decryptRows, encrypt } from './crypto';
import type { AnySql } from './db';
import { badRequest, conflict, declareConstraints } from './errors';
import { keyset } from './pagination';
import { enrollmentVisible } from './students';

export const EXTERNSHIP_REACH: RecordReach = { all: ['admin', 'staff', 'registrar'], taught: true };
export const externshipScope = (caller: Caller): RecordScope => scopeOf(caller, EXTERNSHIP_REACH);

const FIELDS = {
  name: 'externships.supervisor_name',
  email: 'externships.supervisor_email',
  phone: 'externships.supervisor_phone',
  document: 'externships.verification_doc_ref',
  note: 'externship_hours.note',
  confirmation: 'externship_hours.supervisor_confirmation_ref',
} as const;

declareConstraints({
  externship_hours_day_key: { status: 409, field: 'body.workDate', message: 'Hours for this day are logged already' },
  externships_dates_check: { status: 400, field: 'body.endDate', message: 'Must be on or after startDate' },
});

export interface NewExternship {
  enrollmentId: string;
  siteName: string;
  siteAddress?: string | undefined;
  supervisor: { name: string; email?: string | undefined; phone?: string | undefined };
  startDate: string;
  endDate?: string | undefined;
}

/** Places the student of an active enrollment; returns the new id. */
export async function createExternship(sql: AnySql, createdBy: string, input: NewExternship): Promise<string> {
  const { supervisor } = input;
  const [row] = await sql<{ id: string }[]>`
    insert into externships (user_id, enrollment_id, site_name, site_address, supervisor_name_ciphertext,
                             supervisor_email_ciphertext, supervisor_phone_ciphertext, start_date, end_date, created_by)
    select e.user_id, e.id, ${input.siteName}, ${input.siteAddress ?? null}, ${encrypt(supervisor.name, FIELDS.name)},
           ${supervisor.email ? encrypt(supervisor.email, FIELDS.email) : null},
           ${supervisor.phone ? encrypt(supervisor.phone, FIELDS.phone) : null}, ${input.startDate}::date,
           ${input.endDate ?? null}::date, ${createdBy}
      from enrollments e where e.id = ${input.enrollmentId} and e.status = 'active'
    returning id`;
  if (!row) {
    const message = 'No active enrollment with this id';
    throw badRequest(message, [{ field: 'body.enrollmentId', message }]);
  }
  return row.id;
}

interface ExternshipRow {
  id: string;
  user_id: string;
  enrollment_id: string;
  site_name: string;
  site_address: string | null;
  supervisor_name_ciphertext: string;
  supervisor_email_ciphertext: string | null;
  supervisor_phone_ciphertext: string | null;
  start_date: string;
  end_date: string | null;
  verified_at: Date | null;
  verified_by: string | null;
  verification_doc_ref_ciphertext: string | null;
  created_at: Date;
  approved_minutes: number;
  pending_minutes: number;
}

const externshipColumns = (sql: AnySql) => sql`
  x.id, x.user_id, x.enrollment_id, x.site_name, x.site_address, x.supervisor_name_ciphertext,
  x.supervisor_email_ciphertext, x.supervisor_phone_ciphertext, x.start_date::text as start_date,
  x.end_date::text as end_date, x.verified_at, x.verified_by, x.verification_doc_ref_ciphertext, x.created_at,
  (select coalesce(sum(h.minutes) filter (where h.approval is not null), 0)::int
     from externship_hours h where h.externship_id = x.id) as approved_minutes,
  (select coalesce(sum(h.minutes) filter (where h.approval is null), 0)::int
     from externship_hours h where h.externship_id = x.id) as pending_minutes`;

const hours = (minutes: number) => Math.floor((minutes * 100) / 60) / 100;

export function toExternshipViews(rows: readonly ExternshipRow[]) {
  return decryptRows(rows, {
    supervisor_name_ciphertext: FIELDS.name,
    supervisor_email_ciphertext: FIELDS.email,
    supervisor_phone_ciphertext: FIELDS.phone,
    verification_doc_ref_ciphertext: FIELDS.document,
  }).map((row) => ({
    id: row.id,
    studentId: row.user_id,
    enrollmentId: row.enrollment_id,
    site: { name: row.site_name, address: row.site_address },
    supervisor: {
      name: row.supervisor_name_ciphertext,
      email: row.supervisor_email_ciphertext,
      phone: row.supervisor_phone_ciphertext,
    },
    startDate: row.start_date,
    endDate: row.end_date,
    approvedMinutes: row.approved_minutes,
    /** Derived from the approved entries of the log (60 minutes an hour, two decimals, rounded down). */
    totalHours: hours(row.approved_minutes),
    pendingMinutes: row.pending_minutes,
    verification:
      row.verified_at === null
        ? null
        : {
            verifiedAt: row.verified_at.toISOString(),
            verifiedBy: row.verified_by,
            documentRef: row.verification_doc_ref_ciphertext,
          },
  }));
}

interface EntryRow {
  id: string;
  work_date: string;
  minutes: number;
  note_ciphertext: string | null;
  logged_by: string;
  logged_at: Date;
  approval: 'supervisor' | 'staff' | null;
  approved_at: Date | null;
  approved_by: string | null;
  supervisor_confirmation_ref_ciphertext: string | null;
}

const toEntryView = (row: EntryRow) => ({
  id: row.id,
  workDate: row.work_date,
  minutes: row.minutes,
  note: row.note_ciphertext === null ? null : decrypt(row.note_ciphertext, FIELDS.note),
  loggedBy: row.logged_by,
  loggedAt: row.logged_at.toISOString(),
  approval:
    row.approval === null
      ? null
      : {
          by: row.approval,
          approvedAt: row.approved_at?.toISOString() ?? null,
          approvedBy: row.approved_by,
          confirmationRef:
            row.supervisor_confirmation_ref_ciphertext === null
              ? null
              : decrypt(row.supervisor_confirmation_ref_ciphertext, FIELDS.confirmation),
        },
});

/** The externship `x` is one the scope sees (through its enrollment `e`). */
const visible = (sql: AnySql, scope: RecordScope) => enrollmentVisible(sql, scope);

/** One externship the scope sees with its hours log (oldest day first), or null. */
export async function findExternship(sql: AnySql, id: string, scope: RecordScope) {
  const [row] = await sql<ExternshipRow[]>`
    select ${externshipColumns(sql)}
      from externships x join enrollments e on e.id = x.enrollment_id
     where x.id = ${id} and ${visible(sql, scope)}`;
  if (!row) return null;
  // One entry per day: a placement of a year is at most 366 entries.
  const entries = await sql<EntryRow[]>`
    select id, work_date::text as work_date, minutes, note_ciphertext, logged_by, logged_at, approval, approved_at,
           approved_by, supervisor_confirmation_ref_ciphertext
      from externship_hours where externship_id = ${id} order by work_date limit 1000`;
  const [view] = toExternshipViews([row]);
  return { ...view, hours: entries.map(toEntryView) };
}

interface Target {
  start_date: string;
  end_date: string | null;
  verified: boolean;
}

/** The externship the scope sees, for a change; null when it does not. A verified one is a 409. */
async function openTarget(sql: AnySql, id: string, scope: RecordScope): Promise<Target | null> {
  const [target] = await sql<Target[]>`
    select x.start_date::text as start_date, x.end_date::text as end_date, x.verified_at is not null as verified
      from externships x join enrollments e on e.id = x.enrollment_id
     where x.id = ${id} and ${visible(sql, scope)}
       for update of x`;
  if (target?.verified) throw conflict('The externship is verified: its log is closed');
  return target ?? null;
}

/** Logs a day's minutes (pending approval); false when the scope does not see the externship. */
export async function logHours(
  sql: AnySql,
  scope: RecordScope,
  loggedBy: string,
  id: string,
  entry: { workDate: string; minutes: number; note?: string | undefined },
): Promise<boolean> {
  const target = await openTarget(sql, id, scope);
  if (!target) return false;
  const today = new Date().toISOString().slice(0, 10);
  const outside = entry.workDate < target.start_date || (target.end_date !== null && entry.workDate > target.end_date);
  if (outside || entry.workDate > today) {
    const message = `Must be a day of the placement (${target.start_date} to ${target.end_date ?? 'today'}), not in the future`;
    throw badRequest(message, [{ field: 'body.workDate', message }]);
  }
  await sql`
    insert into externship_hours (externship_id, work_date, minutes, note_ciphertext, logged_by)
    values (${id}, ${entry.workDate}::date, ${entry.minutes}, ${entry.note ? encrypt(entry.note, FIELDS.note) : null},
            ${loggedBy})`;
  return true;
}

export type Approval = { by: 'staff' } | { by: 'supervisor'; confirmationRef: string };

/** Approves a pending entry once; false when the scope does not see it. */
export async function approveHours(
  sql: AnySql,
  scope: RecordScope,
  approvedBy: string,
  id: string,
  entryId: string,
  approval: Approval,
): Promise<boolean> {
  if (!(await openTarget(sql, id, scope))) return false;
  const confirmation = approval.by === 'supervisor' ? encrypt(approval.confirmationRef, FIELDS.confirmation) : null;
  const [entry] = await sql<{ approved: boolean }[]>`
    with target as (select id, approval from externship_hours where id = ${entryId} and externship_id = ${id}),
    approved as (
      update externship_hours h
         set approval = ${approval.by}, approved_at = now(), approved_by = ${approvedBy},
             supervisor_confirmation_ref_ciphertext = ${confirmation}
        from target t where h.id = t.id and t.approval is null
      returning h.id)
    select exists (select 1 from approved) as approved from target`;
  if (!entry) return false;
  if (!entry.approved) throw conflict('This entry is approved already');
  return true;
}

/** Verifies the externship with a document; false when the scope does not see it. */
export async function verifyExternship(
  sql: AnySql,
  scope: RecordScope,
  verifiedBy: string,
  id: string,
  documentRef: string,
): Promise<boolean> {
  if (!(await openTarget(sql, id, scope))) return false;
  const [log] = await sql<{ approved: number; pending: number }[]>`
    select count(*) filter (where approval is not null)::int as approved, count(*) filter (where approval is null)::int as pending
      from externship_hours where externship_id = ${id}`;
  if (log && log.pending > 0) throw conflict(`${log.pending} logged days await approval: approve them first`);
  if (!log || log.approved === 0) throw conflict('No approved hours to verify');
  await sql`
    update externships set verified_at = now(), verified_by = ${verifiedBy},
                           verification_doc_ref_ciphertext = ${encrypt(documentRef, FIELDS.document)}
     where id = ${id}`;
  return true;
}

export const EXTERNSHIP_ORDER = keyset(
  [
    ['x.created_at', 'time'],
    ['x.id', 'uuid'],
  ],
  'asc',
);

export function externshipPageQuery(
  sql: AnySql,
  filter: { studentId?: string | undefined; enrollmentId?: string | undefined; verified?: boolean | undefined },
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  const conditions: postgres.Fragment[] = [
    filter.studentId ? sql`x.user_id = ${filter.studentId}` : sql`true`,
    filter.enrollmentId ? sql`x.enrollment_id = ${filter.enrollmentId}` : sql`true`,
    filter.verified === undefined ? sql`true` : sql`(x.verified_at is not null) = ${filter.verified}`,
  ];
  return sql<(ExternshipRow & { page_key: string[] })[]>`
    select ${externshipColumns(sql)}, ${EXTERNSHIP_ORDER.key(sql)}
      from externships x join enrollments e on e.id = x.enrollment_id
     where ${visible(sql, scope)} and ${conditions.reduce((all, one) => sql`${all} and ${one}`)}
       and ${EXTERNSHIP_ORDER.after(sql, after)}
     ${EXTERNSHIP_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}
