// What each export holds: its columns, the statuses it filters by, and its query, in a stable order an
// index serves, joining the student's encrypted names (decrypted per batch by lib/reports.ts). The
// compliance records, and the roster (`students`: every student with their enrollments, the whole list
// in one streamed request instead of pages). Dates filter on the school day of the record's main date.
// Complaints export their handling (category, status, dates), never their details or notes: those stay
// with the office (docs/access-policy.md).
//
// The finance exports (ledger entries, payments, withdrawals with their refunds) are FINANCE_EXPORT_RESOURCES,
// served by their own route to finance and admin (the registrar keeps academic records, not money). Amounts
// are whole cents as the API gives them; memos and withdrawal reasons (free text, often medical) stay out.
//
// Why one file over 350 lines: it is a table, one short entry (columns, statuses, query) per export,
// so comparing two exports is reading one page; an entry grows here, not a module per export.
import type postgres from 'postgres';
import { clockHoursOf, isCurrentLine, LINE_STATUSES } from './attendance';
import { COMPLAINT_STATUSES } from './complaints';
import type { AnySql } from './db';
import { ENTRY_KINDS } from './ledger';
import type { Cell, ExportFilter, ExportResource } from './reports';
import { withinDays } from './reports';
import { CHECKOFF_STATUSES } from './skills';
import { ENROLLMENT_STATUSES } from './students';
import { USER_STATUSES } from './users';

const NAMES = { first_name: 'users.first_name', last_name: 'users.last_name' } as const;

interface Named {
  student_id: string;
  first_name: string;
  last_name: string;
  /** null only for a ledger entry posted to no enrollment. */
  program_code: string | null;
}

const byProgram = (sql: AnySql, column: postgres.Fragment, filter: ExportFilter) =>
  filter.programId ? sql`${column} = ${filter.programId}` : sql`true`;
const byStatus = (sql: AnySql, column: postgres.Fragment, filter: ExportFilter) =>
  filter.status ? sql`${column} = ${filter.status}` : sql`true`;

/** A resource whose query and count share one `from … where …` (the count needs no joins of names). */
function resource<R extends Named>(spec: {
  title: string;
  statuses: readonly string[];
  columns: readonly { title: string; width: number }[];
  select: (sql: AnySql) => postgres.Fragment;
  from: (sql: AnySql, filter: ExportFilter) => postgres.Fragment;
  order: (sql: AnySql) => postgres.Fragment;
  encrypted?: Record<string, string>;
  cells: (row: R) => Cell[];
}): ExportResource {
  const typed: ExportResource<R> = {
    title: spec.title,
    statuses: spec.statuses,
    columns: spec.columns,
    query: (sql, filter) => sql<R[]>`select ${spec.select(sql)} ${spec.from(sql, filter)} ${spec.order(sql)}`,
    count: (sql, filter) => sql<{ rows: number }[]>`select count(*)::int as rows ${spec.from(sql, filter)}`,
    encrypted: { ...NAMES, ...spec.encrypted } as ExportResource<R>['encrypted'],
    cells: spec.cells,
  };
  return erased(typed);
}

/** The route picks a resource by name, so every resource is seen through one row type. */
const erased = <R extends object>(resource: ExportResource<R>) => resource as unknown as ExportResource;

const col = (title: string, width = 1) => ({ title, width });
const STUDENT_COLUMNS = [col('student_id', 2.2), col('first_name', 1.2), col('last_name', 1.2), col('programme')];
const student = (row: Named): Cell[] => [row.student_id, row.first_name, row.last_name, row.program_code];
const studentSelect = (sql: AnySql) =>
  sql`u.id as student_id, u.first_name_ciphertext as first_name, u.last_name_ciphertext as last_name, p.code as program_code`;

interface AttendanceRow extends Named {
  started_at: Date;
  ended_at: Date;
  module_code: string;
  session_type: string;
  status: string;
  minutes_attended: number;
  version: number;
  recorded_by: string;
  recorded_at: Date;
}

const attendance = resource<AttendanceRow>({
  title: 'Attendance',
  statuses: LINE_STATUSES,
  columns: [
    col('started_at', 1.6),
    col('ended_at', 1.6),
    ...STUDENT_COLUMNS,
    col('module'),
    col('session_type'),
    col('status'),
    col('minutes_attended'),
    col('clock_hours'),
    col('version'),
    col('recorded_by', 2.2),
    col('recorded_at', 1.6),
  ],
  select: (sql) => sql`r.started_at, r.ended_at, ${studentSelect(sql)}, m.code as module_code, s.session_type,
    r.status, r.minutes_attended, r.version, r.recorded_by, r.recorded_at`,
  from: (sql, filter) => sql`
    from attendance_records r
    join attendance_sessions s on s.id = r.session_id
    join modules m on m.id = r.module_id
    join programs p on p.id = m.program_id
    join users u on u.id = r.user_id
   where ${isCurrentLine(sql)} and ${withinDays(sql, sql`r.started_at`, filter)}
     and ${byProgram(sql, sql`m.program_id`, filter)} and ${byStatus(sql, sql`r.status`, filter)}`,
  order: (sql) => sql`order by r.started_at, r.id`,
  cells: (row) => [
    row.started_at.toISOString(),
    row.ended_at.toISOString(),
    ...student(row),
    row.module_code,
    row.session_type,
    row.status,
    row.minutes_attended,
    clockHoursOf(row.minutes_attended),
    row.version,
    row.recorded_by,
    row.recorded_at.toISOString(),
  ],
});

interface SkillRow extends Named {
  recorded_at: Date;
  module_code: string;
  skill_code: string;
  attempt: number;
  status: string;
  evaluator_name: string | null;
  evaluator_license: string | null;
  signed_at: Date | null;
}

const skills = resource<SkillRow>({
  title: 'Skills check-offs',
  statuses: CHECKOFF_STATUSES,
  columns: [
    col('recorded_at', 1.6),
    ...STUDENT_COLUMNS,
    col('module'),
    col('skill_code', 1.4),
    col('attempt'),
    col('status'),
    col('evaluator', 1.4),
    col('licence'),
    col('signed_at', 1.6),
  ],
  select: (sql) => sql`o.recorded_at, ${studentSelect(sql)}, m.code as module_code, o.skill_code, o.attempt, o.status,
    o.evaluator_name_ciphertext as evaluator_name, o.evaluator_license_ciphertext as evaluator_license, o.signed_at`,
  from: (sql, filter) => sql`
    from skills_checkoffs o
    join modules m on m.id = o.module_id
    join programs p on p.id = m.program_id
    join users u on u.id = o.user_id
   where ${withinDays(sql, sql`o.recorded_at`, filter)}
     and ${byProgram(sql, sql`m.program_id`, filter)} and ${byStatus(sql, sql`o.status`, filter)}`,
  order: (sql) => sql`order by o.recorded_at, o.id`,
  encrypted: {
    evaluator_name: 'skills_checkoffs.evaluator_name',
    evaluator_license: 'skills_checkoffs.evaluator_license',
  },
  cells: (row) => [
    row.recorded_at.toISOString(),
    ...student(row),
    row.module_code,
    row.skill_code,
    row.attempt,
    row.status,
    row.evaluator_name,
    row.evaluator_license,
    row.signed_at?.toISOString() ?? null,
  ],
});

interface ExternshipRow extends Named {
  site_name: string;
  supervisor_name: string;
  start_date: string;
  end_date: string | null;
  approved_minutes: number;
  verified_at: Date | null;
}

const externships = resource<ExternshipRow>({
  title: 'Externships',
  statuses: ['verified', 'unverified'],
  columns: [
    ...STUDENT_COLUMNS,
    col('site', 1.6),
    col('supervisor', 1.4),
    col('start_date'),
    col('end_date'),
    col('approved_hours'),
    col('verified_at', 1.6),
  ],
  select: (sql) => sql`${studentSelect(sql)}, x.site_name, x.supervisor_name_ciphertext as supervisor_name,
    x.start_date::text as start_date, x.end_date::text as end_date,
    (select coalesce(sum(h.minutes), 0)::int from externship_hours h
      where h.externship_id = x.id and h.approval is not null) as approved_minutes, x.verified_at`,
  from: (sql, filter) => sql`
    from externships x
    join enrollments e on e.id = x.enrollment_id
    join programs p on p.id = e.program_id
    join users u on u.id = x.user_id
   where ${filter.from ? sql`x.start_date >= ${filter.from}::date` : sql`true`}
     and ${filter.to ? sql`x.start_date <= ${filter.to}::date` : sql`true`}
     and ${byProgram(sql, sql`e.program_id`, filter)}
     and ${filter.status ? sql`(x.verified_at is not null) = ${filter.status === 'verified'}` : sql`true`}`,
  order: (sql) => sql`order by x.created_at, x.id`,
  encrypted: { supervisor_name: 'externships.supervisor_name' },
  cells: (row) => [
    ...student(row),
    row.site_name,
    row.supervisor_name,
    row.start_date,
    row.end_date,
    Math.floor((row.approved_minutes * 100) / 60) / 100,
    row.verified_at?.toISOString() ?? null,
  ],
});

interface ComplaintRow {
  submitted_at: Date;
  complaint_id: string;
  student_id: string | null;
  first_name: string | null;
  last_name: string | null;
  complainant_name: string | null;
  category: string;
  status: string;
  resolved_at: Date | null;
  appealed_at: Date | null;
}

/** Complaints name no programme: the export by programme is not offered for them (see the route). */
const complaints: ExportResource = (() => {
  const from = (sql: AnySql, filter: ExportFilter) => sql`
    from complaints c left join users u on u.id = c.user_id
   where ${withinDays(sql, sql`c.submitted_at`, filter)} and ${byStatus(sql, sql`c.status`, filter)}`;
  return erased<ComplaintRow>({
    title: 'Complaints',
    statuses: COMPLAINT_STATUSES,
    columns: [
      col('submitted_at', 1.6),
      col('complaint_id', 2.2),
      col('student_id', 2.2),
      col('first_name', 1.2),
      col('last_name', 1.2),
      col('complainant (not a student)', 1.4),
      col('category'),
      col('status'),
      col('resolved_at', 1.6),
      col('appealed_at', 1.6),
    ],
    query: (sql, filter) => sql<ComplaintRow[]>`
      select c.submitted_at, c.id as complaint_id, c.user_id as student_id, u.first_name_ciphertext as first_name,
             u.last_name_ciphertext as last_name, c.complainant_name_ciphertext as complainant_name, c.category,
             c.status, c.resolved_at, c.appealed_at
      ${from(sql, filter)} order by c.submitted_at, c.id`,
    count: (sql, filter) => sql<{ rows: number }[]>`select count(*)::int as rows ${from(sql, filter)}`,
    encrypted: { ...NAMES, complainant_name: 'complaints.complainant_name' },
    noProgramme: 'Complaints belong to no programme',
    cells: (row) => [
      row.submitted_at.toISOString(),
      row.complaint_id,
      row.student_id,
      row.first_name,
      row.last_name,
      row.complainant_name,
      row.category,
      row.status,
      row.resolved_at?.toISOString() ?? null,
      row.appealed_at?.toISOString() ?? null,
    ],
  });
})();

interface CredentialRow extends Named {
  issued_at: Date;
  credential_type: string;
  cert_serial: string;
  revoked_at: Date | null;
}

const credentials = resource<CredentialRow>({
  title: 'Credentials',
  statuses: ['live', 'revoked'],
  columns: [col('issued_at', 1.6), ...STUDENT_COLUMNS, col('type'), col('serial', 1.6), col('revoked_at', 1.6)],
  select: (sql) => sql`k.issued_at, ${studentSelect(sql)}, k.credential_type, k.cert_serial, k.revoked_at`,
  from: (sql, filter) => sql`
    from credentials k join programs p on p.id = k.program_id join users u on u.id = k.user_id
   where ${withinDays(sql, sql`k.issued_at`, filter)} and ${byProgram(sql, sql`k.program_id`, filter)}
     and ${filter.status ? sql`(k.revoked_at is not null) = ${filter.status === 'revoked'}` : sql`true`}`,
  order: (sql) => sql`order by k.issued_at, k.id`,
  cells: (row) => [
    row.issued_at.toISOString(),
    ...student(row),
    row.credential_type,
    row.cert_serial,
    row.revoked_at?.toISOString() ?? null,
  ],
});

interface TranscriptRow extends Named {
  generated_at: Date;
  kind: string | null;
  gpa: string | null;
}

const transcripts = resource<TranscriptRow>({
  title: 'Transcripts',
  statuses: ['official', 'unofficial'],
  columns: [col('generated_at', 1.6), ...STUDENT_COLUMNS, col('kind'), col('gpa')],
  select: (sql) => sql`t.generated_at, ${studentSelect(sql)}, t.kind, t.gpa::text as gpa`,
  from: (sql, filter) => sql`
    from transcripts t join programs p on p.id = t.program_id join users u on u.id = t.user_id
   where ${withinDays(sql, sql`t.generated_at`, filter)} and ${byProgram(sql, sql`t.program_id`, filter)}
     and ${byStatus(sql, sql`t.kind`, filter)}`,
  order: (sql) => sql`order by t.generated_at, t.id`,
  cells: (row) => [row.generated_at.toISOString(), ...student(row), row.kind, row.gpa],
});

interface EnrollmentRow extends Named {
  status: string;
  start_date: string;
  expected_end_date: string | null;
  status_changed_at: Date;
}

const enrollments = resource<EnrollmentRow>({
  title: 'Enrollments',
  statuses: ENROLLMENT_STATUSES,
  columns: [
    ...STUDENT_COLUMNS,
    col('status'),
    col('start_date'),
    col('expected_end_date'),
    col('status_changed_at', 1.6),
  ],
  select: (sql) => sql`${studentSelect(sql)}, e.status, e.start_date::text as start_date,
    e.expected_end_date::text as expected_end_date, e.status_changed_at`,
  from: (sql, filter) => sql`
    from enrollments e join programs p on p.id = e.program_id join users u on u.id = e.user_id
   where ${filter.from ? sql`e.start_date >= ${filter.from}::date` : sql`true`}
     and ${filter.to ? sql`e.start_date <= ${filter.to}::date` : sql`true`}
     and ${byProgram(sql, sql`e.program_id`, filter)} and ${byStatus(sql, sql`e.status`, filter)}`,
  order: (sql) => sql`order by e.created_at, e.id`,
  cells: (row) => [
    ...student(row),
    row.status,
    row.start_date,
    row.expected_end_date,
    row.status_changed_at.toISOString(),
  ],
});

interface RosterRow {
  student_id: string;
  first_name: string;
  last_name: string;
  email: string;
  status: string;
  created_at: Date;
  enrollments: string | null;
}

/**
 * The roster: every account holding the student role, oldest first (index idx_users_created), with its
 * enrollments as `CODE status` in start order. Dates filter on when the account was created, the programme
 * on having an enrollment in it, the status on the account's.
 */
const students: ExportResource = (() => {
  const from = (sql: AnySql, filter: ExportFilter) => sql`
    from users u
   where exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student')
     and ${withinDays(sql, sql`u.created_at`, filter)} and ${byStatus(sql, sql`u.status`, filter)}
     and ${
       filter.programId
         ? sql`exists (select 1 from enrollments e where e.user_id = u.id and e.program_id = ${filter.programId})`
         : sql`true`
     }`;
  return erased<RosterRow>({
    title: 'Students',
    statuses: USER_STATUSES,
    columns: [
      col('student_id', 2.2),
      col('first_name', 1.2),
      col('last_name', 1.2),
      col('email', 2),
      col('status'),
      col('created_at', 1.6),
      col('enrollments', 2),
    ],
    query: (sql, filter) => sql<RosterRow[]>`
      select u.id as student_id, u.first_name_ciphertext as first_name, u.last_name_ciphertext as last_name,
             u.email_ciphertext as email, u.status, u.created_at,
             (select string_agg(p.code || ' ' || e.status, '; ' order by e.start_date, e.id)
                from enrollments e join programs p on p.id = e.program_id
               where e.user_id = u.id) as enrollments
      ${from(sql, filter)} order by u.created_at, u.id`,
    count: (sql, filter) => sql<{ rows: number }[]>`select count(*)::int as rows ${from(sql, filter)}`,
    encrypted: { ...NAMES, email: 'users.email' },
    cells: (row) => [
      row.student_id,
      row.first_name,
      row.last_name,
      row.email,
      row.status,
      row.created_at.toISOString(),
      row.enrollments,
    ],
  });
})();

interface LedgerRow extends Named {
  posted_at: Date;
  entry_number: string;
  kind: string;
  category: string;
  direction: string;
  amount_cents: number;
  reference: string | null;
  receipt_number: string | null;
  reverses_entry_number: string | null;
  posted_by: string;
}

/** Every ledger entry in posting order (its unique entry_number), reversals pointing at what they reverse. */
const ledger = resource<LedgerRow>({
  title: 'Ledger entries',
  statuses: ENTRY_KINDS,
  columns: [
    col('posted_at', 1.6),
    col('entry_number'),
    ...STUDENT_COLUMNS,
    col('kind'),
    col('category'),
    col('direction'),
    col('amount_cents'),
    col('reference', 1.2),
    col('receipt_number'),
    col('reverses_entry_number'),
    col('posted_by', 2.2),
  ],
  select: (sql) => sql`le.posted_at, le.entry_number::text as entry_number, ${studentSelect(sql)}, le.kind,
    le.category, le.direction, le.amount_cents::int as amount_cents, le.reference,
    le.receipt_number::text as receipt_number, original.entry_number::text as reverses_entry_number, le.posted_by`,
  from: (sql, filter) => sql`
    from ledger_entries le
    join users u on u.id = le.user_id
    left join programs p on p.id = le.program_id
    left join ledger_entries original on original.id = le.reverses_entry_id
   where ${withinDays(sql, sql`le.posted_at`, filter)}
     and ${byProgram(sql, sql`le.program_id`, filter)} and ${byStatus(sql, sql`le.kind`, filter)}`,
  order: (sql) => sql`order by le.entry_number`,
  cells: (row) => [
    row.posted_at.toISOString(),
    row.entry_number,
    ...student(row),
    row.kind,
    row.category,
    row.direction,
    row.amount_cents,
    row.reference,
    row.receipt_number,
    row.reverses_entry_number,
    row.posted_by,
  ],
});

interface PaymentRow extends Named {
  posted_at: Date;
  receipt_number: string;
  method: string;
  amount_cents: number;
  reference: string | null;
  reversed_at: Date | null;
  posted_by: string;
}

/** Payments received, by receipt number; `reversed`: a reversal entry undid the payment. */
const payments = resource<PaymentRow>({
  title: 'Payments',
  statuses: ['live', 'reversed'],
  columns: [
    col('posted_at', 1.6),
    col('receipt_number'),
    ...STUDENT_COLUMNS,
    col('method'),
    col('amount_cents'),
    col('reference', 1.2),
    col('reversed_at', 1.6),
    col('posted_by', 2.2),
  ],
  select: (sql) => sql`le.posted_at, le.receipt_number::text as receipt_number, ${studentSelect(sql)},
    le.category as method, le.amount_cents::int as amount_cents, le.reference, reversal.posted_at as reversed_at,
    le.posted_by`,
  from: (sql, filter) => sql`
    from ledger_entries le
    join users u on u.id = le.user_id
    left join programs p on p.id = le.program_id
    left join ledger_entries reversal on reversal.reverses_entry_id = le.id
   where le.kind = 'payment' and ${withinDays(sql, sql`le.posted_at`, filter)}
     and ${byProgram(sql, sql`le.program_id`, filter)}
     and ${filter.status ? sql`(reversal.id is not null) = ${filter.status === 'reversed'}` : sql`true`}`,
  order: (sql) => sql`order by le.entry_number`,
  cells: (row) => [
    row.posted_at.toISOString(),
    row.receipt_number,
    ...student(row),
    row.method,
    row.amount_cents,
    row.reference,
    row.reversed_at?.toISOString() ?? null,
    row.posted_by,
  ],
});

interface WithdrawalRow extends Named {
  recorded_at: Date;
  determined_on: string;
  withdrawal_id: string;
  kind: string;
  initiated_by: string;
  last_date_of_attendance: string | null;
  clock_hours_attended: string;
  basis: string;
  retained_cents: number;
  refund_cents: number;
  approved_refund_cents: number | null;
  due_date: string;
  status: string;
  approved_at: Date | null;
  remitted_at: Date | null;
  remittance_reference: string | null;
}

/**
 * Withdrawals with the refund each one calculated (one refund a withdrawal, written in the same statement),
 * by date of determination; the status is the refund's. The reason a student gave is not exported.
 */
const withdrawals = resource<WithdrawalRow>({
  title: 'Withdrawals and refunds',
  statuses: ['calculated', 'approved', 'remitted'],
  columns: [
    col('determined_on'),
    col('withdrawal_id', 2.2),
    ...STUDENT_COLUMNS,
    col('kind'),
    col('initiated_by'),
    col('last_date_of_attendance'),
    col('clock_hours_attended'),
    col('basis'),
    col('retained_cents'),
    col('refund_cents'),
    col('approved_refund_cents'),
    col('due_date'),
    col('status'),
    col('approved_at', 1.6),
    col('remitted_at', 1.6),
    col('remittance_reference', 1.2),
  ],
  select: (sql) => sql`w.recorded_at, w.determined_on::text as determined_on, w.id as withdrawal_id,
    ${studentSelect(sql)}, w.kind, w.initiated_by, w.last_date_of_attendance::text as last_date_of_attendance,
    w.clock_hours_attended::text as clock_hours_attended, r.basis, r.retained_cents::int as retained_cents,
    r.refund_cents::int as refund_cents, r.approved_refund_cents::int as approved_refund_cents,
    r.due_date::text as due_date, r.status, r.approved_at, r.remitted_at, r.remittance_reference`,
  from: (sql, filter) => sql`
    from withdrawals w
    join refunds r on r.withdrawal_id = w.id
    join enrollments e on e.id = w.enrollment_id
    join programs p on p.id = e.program_id
    join users u on u.id = w.user_id
   where ${filter.from ? sql`w.determined_on >= ${filter.from}::date` : sql`true`}
     and ${filter.to ? sql`w.determined_on <= ${filter.to}::date` : sql`true`}
     and ${byProgram(sql, sql`e.program_id`, filter)} and ${byStatus(sql, sql`r.status`, filter)}`,
  order: (sql) => sql`order by w.recorded_at, w.id`,
  cells: (row) => [
    row.determined_on,
    row.withdrawal_id,
    ...student(row),
    row.kind,
    row.initiated_by,
    row.last_date_of_attendance,
    Number(row.clock_hours_attended),
    row.basis,
    row.retained_cents,
    row.refund_cents,
    row.approved_refund_cents,
    row.due_date,
    row.status,
    row.approved_at?.toISOString() ?? null,
    row.remitted_at?.toISOString() ?? null,
    row.remittance_reference,
  ],
});

/** The finance exports by their name in the route (`reports/finance/{resource}`). */
export const FINANCE_EXPORT_RESOURCES = {
  ledger,
  payments,
  withdrawals,
} as const satisfies Record<string, ExportResource>;
export type FinanceExportResourceName = keyof typeof FINANCE_EXPORT_RESOURCES;

/** Every exportable resource by its name in the route (`reports/compliance/{resource}`). */
export const EXPORT_RESOURCES = {
  attendance,
  skills,
  externships,
  complaints,
  credentials,
  transcripts,
  enrollments,
  students,
} as const satisfies Record<string, ExportResource>;
export type ExportResourceName = keyof typeof EXPORT_RESOURCES;
