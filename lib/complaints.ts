// Complaints: filed by a student about anything, or by staff for someone (a student, or a person who is
// not a user); handled along `submitted → in_review → resolved → appealed → closed`, every change a row
// of complaint_transitions with who and when. Resolving needs resolution notes; an appeal is possible
// for APPEAL_WINDOW_DAYS after the resolution, and closing a resolved complaint waits until that window
// has passed, so the school cannot close away a student's right of appeal. Details, notes and the names
// of people who are not users are ciphertext. Staff see every complaint, a complainant their own;
// instructors none (a complaint may be about them). Every view carries the commission's appeal text.
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, scopeOf } from './access';
import { decrypt, decryptRows, encrypt } from './crypto';
import type { AnySql } from './db';
import { keyset } from './pagination';

export const COMPLAINT_REACH: RecordReach = { all: ['admin', 'staff'], taught: false };
export const complaintScope = (caller: Caller): RecordScope => scopeOf(caller, COMPLAINT_REACH);

export const COMPLAINT_CATEGORIES = [
  'academic',
  'financial',
  'admissions',
  'conduct',
  'discrimination',
  'facilities',
  'safety',
  'other',
] as const;
export const COMPLAINT_STATUSES = ['submitted', 'in_review', 'resolved', 'appealed', 'closed'] as const;
export type ComplaintStatus = (typeof COMPLAINT_STATUSES)[number];

/** GNPEC's window for a student's appeal after the school's resolution (the old system said 90 days too). */
export const APPEAL_WINDOW_DAYS = 90;

/** What every complaint view carries: where and until when the complainant may appeal. */
export const GNPEC_APPEAL_INFORMATION =
  'A student who is not satisfied with the school’s resolution of a complaint may appeal to the Georgia ' +
  'Nonpublic Postsecondary Education Commission within 90 days of that resolution: 2082 East Exchange Place, ' +
  'Suite 220, Tucker, Georgia 30084, telephone (770) 414-3300, https://gnpec.georgia.gov.';

/** Who may move a complaint where. `complainant`: the complainant (their own) or staff; `staff`: staff only. */
export const COMPLAINT_FLOW: Readonly<Record<ComplaintStatus, readonly ComplaintStatus[]>> = {
  submitted: ['in_review'],
  in_review: ['resolved'],
  resolved: ['appealed', 'closed'],
  appealed: ['closed'],
  closed: [],
};

/** The complaint aliased `c` is one the scope sees. */
export function complaintVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return scope.kind === 'all' ? sql`true` : sql`c.user_id = ${scope.userId}`;
}

const NOTES = {
  details: 'complaints.details',
  resolution: 'complaints.resolution_notes',
  appeal: 'complaints.appeal_notes',
  transition: 'complaint_transitions.notes',
  name: 'complaints.complainant_name',
  contact: 'complaints.complainant_contact',
} as const;

export interface NewComplaint {
  category: (typeof COMPLAINT_CATEGORIES)[number];
  details: string;
  /** A student (a user), or a person who is not one. */
  complainant: { userId: string } | { name: string; contact?: string | undefined };
}

/** Stores a new complaint and its first transition (into `submitted`); returns its id. */
export async function fileComplaint(sql: AnySql, filedBy: string, input: NewComplaint): Promise<string> {
  const person = 'userId' in input.complainant ? null : input.complainant;
  const [row] = await sql<{ id: string }[]>`
    with filed as (
      insert into complaints (user_id, complainant_name_ciphertext, complainant_contact_ciphertext, filed_by,
                              category, details_ciphertext)
      values (${'userId' in input.complainant ? input.complainant.userId : null},
              ${person ? encrypt(person.name, NOTES.name) : null},
              ${person?.contact ? encrypt(person.contact, NOTES.contact) : null}, ${filedBy}, ${input.category},
              ${encrypt(input.details, NOTES.details)})
      returning id),
    recorded as (
      insert into complaint_transitions (complaint_id, from_status, to_status, changed_by)
      select id, null, 'submitted', ${filedBy} from filed)
    select id from filed`;
  return (row as { id: string }).id;
}

/** A student account that may be named as complainant: true when `userId` holds the student role. */
export async function isStudent(sql: AnySql, userId: string): Promise<boolean> {
  const rows = await sql`select 1 from user_roles where user_id = ${userId} and role_name = 'student'`;
  return rows.length > 0;
}

export interface ComplaintRow {
  id: string;
  user_id: string | null;
  complainant_name_ciphertext: string | null;
  complainant_contact_ciphertext: string | null;
  filed_by: string;
  submitted_at: Date;
  category: string;
  details_ciphertext: string;
  status: ComplaintStatus;
  status_changed_at: Date;
  resolution_notes_ciphertext: string | null;
  resolved_at: Date | null;
  resolved_by: string | null;
  appealed_at: Date | null;
  appeal_notes_ciphertext: string | null;
  appeal_deadline: Date | null;
  page_key?: string[];
}

const complaintColumns = (sql: AnySql) => sql`
  c.id, c.user_id, c.complainant_name_ciphertext, c.complainant_contact_ciphertext, c.filed_by, c.submitted_at,
  c.category, c.details_ciphertext, c.status, c.status_changed_at, c.resolution_notes_ciphertext, c.resolved_at,
  c.resolved_by, c.appealed_at, c.appeal_notes_ciphertext,
  c.resolved_at + ${APPEAL_WINDOW_DAYS} * interval '1 day' as appeal_deadline`;

const iso = (value: Date | null) => (value === null ? null : value.toISOString());

export function toComplaintViews(rows: readonly ComplaintRow[]) {
  return decryptRows(rows, {
    details_ciphertext: NOTES.details,
    complainant_name_ciphertext: NOTES.name,
    complainant_contact_ciphertext: NOTES.contact,
    resolution_notes_ciphertext: NOTES.resolution,
    appeal_notes_ciphertext: NOTES.appeal,
  }).map((row) => ({
    id: row.id,
    complainant:
      row.user_id === null
        ? { userId: null, name: row.complainant_name_ciphertext, contact: row.complainant_contact_ciphertext }
        : { userId: row.user_id, name: null, contact: null },
    filedBy: row.filed_by,
    submittedAt: row.submitted_at.toISOString(),
    category: row.category,
    details: row.details_ciphertext,
    status: row.status,
    statusChangedAt: row.status_changed_at.toISOString(),
    resolution:
      row.resolved_at === null
        ? null
        : { notes: row.resolution_notes_ciphertext, resolvedAt: iso(row.resolved_at), resolvedBy: row.resolved_by },
    appeal: {
      windowDays: APPEAL_WINDOW_DAYS,
      deadline: iso(row.appeal_deadline),
      appealedAt: iso(row.appealed_at),
      notes: row.appeal_notes_ciphertext,
      information: GNPEC_APPEAL_INFORMATION,
    },
  }));
}

/** One complaint the scope sees, with its transitions (oldest first), or null. */
export async function findComplaint(sql: AnySql, id: string, scope: RecordScope) {
  const [row] = await sql<ComplaintRow[]>`
    select ${complaintColumns(sql)} from complaints c where c.id = ${id} and ${complaintVisible(sql, scope)}`;
  if (!row) return null;
  // Bounded by the workflow: at most five changes.
  const transitions = await sql<
    {
      from_status: string | null;
      to_status: string;
      notes_ciphertext: string | null;
      changed_by: string;
      changed_at: Date;
    }[]
  >`
    select from_status, to_status, notes_ciphertext, changed_by, changed_at
      from complaint_transitions where complaint_id = ${id} order by changed_at, id`;
  const [view] = toComplaintViews([row]);
  return {
    ...view,
    transitions: transitions.map((t) => ({
      from: t.from_status,
      to: t.to_status,
      notes: t.notes_ciphertext === null ? null : decrypt(t.notes_ciphertext, NOTES.transition),
      changedBy: t.changed_by,
      changedAt: t.changed_at.toISOString(),
    })),
  };
}

export const COMPLAINT_ORDER = keyset(
  [
    ['c.submitted_at', 'time'],
    ['c.id', 'uuid'],
  ],
  'desc',
);

export function complaintPageQuery(
  sql: AnySql,
  filter: { status?: ComplaintStatus | undefined; studentId?: string | undefined },
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<(ComplaintRow & { page_key: string[] })[]>`
    select ${complaintColumns(sql)}, ${COMPLAINT_ORDER.key(sql)}
      from complaints c
     where ${complaintVisible(sql, scope)}
       ${filter.status ? sql`and c.status = ${filter.status}` : sql``}
       ${filter.studentId ? sql`and c.user_id = ${filter.studentId}` : sql``}
       and ${COMPLAINT_ORDER.after(sql, after)}
     ${COMPLAINT_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export type TransitionOutcome =
  | { kind: 'moved' }
  | { kind: 'not-found' }
  | { kind: 'illegal'; from: ComplaintStatus }
  | { kind: 'window-closed'; deadline: Date }
  | { kind: 'window-open'; deadline: Date };

/**
 * Moves a complaint the scope sees from its current status to `to`, if COMPLAINT_FLOW allows and the
 * appeal window says so, recording the transition; the status test sits on the UPDATE itself, so of
 * two concurrent changes only one applies. `notes`: the resolution notes (resolved), the appeal's
 * (appealed), else a note on the transition.
 */
export async function moveComplaint(
  sql: AnySql,
  scope: RecordScope,
  changedBy: string,
  id: string,
  to: ComplaintStatus,
  notes: string | undefined,
): Promise<TransitionOutcome> {
  const [current] = await sql<{ status: ComplaintStatus; deadline: Date | null; open: boolean | null }[]>`
    select c.status, c.resolved_at + ${APPEAL_WINDOW_DAYS} * interval '1 day' as deadline,
           now() <= c.resolved_at + ${APPEAL_WINDOW_DAYS} * interval '1 day' as open
      from complaints c where c.id = ${id} and ${complaintVisible(sql, scope)}`;
  if (!current) return { kind: 'not-found' };
  if (!COMPLAINT_FLOW[current.status].includes(to)) return { kind: 'illegal', from: current.status };
  if (to === 'appealed' && current.open === false) return { kind: 'window-closed', deadline: current.deadline as Date };
  if (to === 'closed' && current.status === 'resolved' && current.open === true) {
    return { kind: 'window-open', deadline: current.deadline as Date };
  }
  const resolution = to === 'resolved' && notes ? encrypt(notes, NOTES.resolution) : null;
  const appeal = to === 'appealed' && notes ? encrypt(notes, NOTES.appeal) : null;
  const note = to !== 'resolved' && to !== 'appealed' && notes ? encrypt(notes, NOTES.transition) : null;
  const moved = await sql`
    with moved as (
      update complaints c
         set status = ${to}, status_changed_at = now(),
             resolution_notes_ciphertext = coalesce(${resolution}, c.resolution_notes_ciphertext),
             resolved_at = case when ${to} = 'resolved' then now() else c.resolved_at end,
             resolved_by = case when ${to} = 'resolved' then ${changedBy}::uuid else c.resolved_by end,
             appealed_at = case when ${to} = 'appealed' then now() else c.appealed_at end,
             appeal_notes_ciphertext = coalesce(${appeal}, c.appeal_notes_ciphertext)
       where c.id = ${id} and c.status = ${current.status}
      returning c.id)
    insert into complaint_transitions (complaint_id, from_status, to_status, notes_ciphertext, changed_by)
    select id, ${current.status}, ${to}, ${note}, ${changedBy} from moved
    returning id`;
  // Lost a race: whatever the other request did decides; report it as the status it found.
  return moved.length === 1 ? { kind: 'moved' } : { kind: 'illegal', from: current.status };
}
