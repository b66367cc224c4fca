// Leads: the minimal applicant record an agreement goes to before its person has an account (made by
// POST agreements with an address, lib/agreements.ts resolveRecipient). Admissions list them and read
// one; once one of a lead's agreements is completed, the registrar turns the lead into a student: a
// pending account with an invitation, made from the lead's own encrypted name and email (never from
// re-typed data), or a link to the student account the person already has (named, or found by the
// lead's email: an address never gets a second account). The lead keeps its encrypted data as the
// admissions record; its agreements are not copied or moved: the student reaches them through the
// lead's converted_user_id (lib/agreements.ts agreementVisible).
import type { Role } from './access';
import { createAccount } from './account-admin';
import { type Origin, recordLeadConversion } from './agreements';
import { decrypt } from './crypto';
import type { AnySql, TransactionSql } from './db';
import { conflict, notFound } from './errors';
import { keyset } from './pagination';
import { emailIndexMatches } from './users';

/** Who follows applicants up: the roles that send agreements. */
export const LEAD_READERS: readonly Role[] = ['admin', 'registrar', 'admissions_manager', 'admissions_counselor'];
/** Who turns an applicant into a student account: who creates student accounts, of those who read leads. */
export const LEAD_CONVERTERS: readonly Role[] = ['admin', 'registrar'];

export const LEAD_STATUSES = ['new', 'contacted', 'qualified', 'converted', 'lost'] as const;
export type LeadStatus = (typeof LEAD_STATUSES)[number];

/** Newest first, on leads_created_idx (migration 0041). */
export const LEAD_ORDER = keyset(
  [
    ['l.created_at', 'time'],
    ['l.id', 'uuid'],
  ],
  'desc',
);

export interface LeadRow {
  id: string;
  first_name_ciphertext: string;
  last_name_ciphertext: string;
  email_ciphertext: string;
  phone_ciphertext: string | null;
  status: LeadStatus;
  converted_user_id: string | null;
  converted_at: Date | null;
  created_at: Date;
  agreements: number;
  completed_agreements: number;
}

// The agreement counts read idx_signed_documents_lead_id (migration 0002).
const leadColumns = (sql: AnySql) => sql`
  l.id, l.first_name_ciphertext, l.last_name_ciphertext, l.email_ciphertext, l.phone_ciphertext, l.status,
  l.converted_user_id, l.converted_at, l.created_at,
  (select count(*)::int from signed_documents d where d.lead_id = l.id) as agreements,
  (select count(*)::int from signed_documents d where d.lead_id = l.id and d.status = 'completed')
    as completed_agreements`;

export interface LeadFilter {
  status?: LeadStatus | undefined;
  /** Exact address, as the blind index compares it. */
  email?: string | undefined;
}

/** One page of leads (`limit + 1` rows, see pageOf), one statement. */
export function leadPageQuery(
  sql: AnySql,
  filter: LeadFilter,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<(LeadRow & { page_key: string[] })[]>`
    select ${leadColumns(sql)}, ${LEAD_ORDER.key(sql)}
      from leads l
     where ${LEAD_ORDER.after(sql, after)}
       ${filter.status ? sql`and l.status = ${filter.status}` : sql``}
       ${filter.email ? sql`and ${emailIndexMatches(sql, sql`l.email_blind_index`, filter.email)}` : sql``}
     ${LEAD_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

export async function findLead(sql: AnySql, id: string, lock = false): Promise<LeadRow | null> {
  const [row] = await sql<LeadRow[]>`
    select ${leadColumns(sql)} from leads l where l.id = ${id} ${lock ? sql`for update of l` : sql``}`;
  return row ?? null;
}

const nameOf = (row: LeadRow) => ({
  firstName: decrypt(row.first_name_ciphertext, 'leads.first_name'),
  lastName: decrypt(row.last_name_ciphertext, 'leads.last_name'),
  email: decrypt(row.email_ciphertext, 'leads.email'),
});

export const toLeadViews = (rows: readonly LeadRow[]) =>
  rows.map((row) => ({
    id: row.id,
    ...nameOf(row),
    phone: row.phone_ciphertext ? decrypt(row.phone_ciphertext, 'leads.phone') : null,
    status: row.status,
    agreements: { total: row.agreements, completed: row.completed_agreements },
    studentId: row.converted_user_id,
    convertedAt: row.converted_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  }));

export interface Conversion {
  studentId: string;
  /** A new pending account with an invitation (else an existing student was linked). */
  accountCreated: boolean;
}

/**
 * Turns a lead with a completed agreement into a student, under the lead's row lock (of two
 * conversions at once, the second sees the first): `studentId` links that student account; without
 * it, the student account holding the lead's address is linked, or a pending one is created with an
 * invitation. An address held by an account that is not a student's is refused (409): staff decide.
 */
export async function convertLead(
  tx: TransactionSql,
  id: string,
  target: { studentId?: string | undefined },
  origin: Origin & { userId: string },
): Promise<Conversion | null> {
  const by = origin.userId;
  const lead = await findLead(tx, id, true);
  if (!lead) return null;
  if (lead.status === 'converted') throw conflict('This lead was converted already');
  if (lead.completed_agreements === 0) {
    throw conflict('A lead becomes a student once one of its agreements is completed');
  }
  const conversion = target.studentId
    ? await linkNamedStudent(tx, target.studentId)
    : await studentOfAddress(tx, lead, by);
  await tx`update leads set status = 'converted', converted_user_id = ${conversion.studentId}, converted_at = now(),
                            converted_by = ${by}
             where id = ${id}`;
  await recordLeadConversion(tx, id, conversion.studentId, origin);
  return conversion;
}

async function linkNamedStudent(tx: TransactionSql, studentId: string): Promise<Conversion> {
  const [student] = await tx<{ id: string }[]>`
    select u.id from users u join user_roles r on r.user_id = u.id and r.role_name = 'student'
     where u.id = ${studentId}`;
  if (!student) throw notFound('No such student');
  return { studentId: student.id, accountCreated: false };
}

async function studentOfAddress(tx: TransactionSql, lead: LeadRow, by: string): Promise<Conversion> {
  const person = nameOf(lead);
  const [existing] = await tx<{ id: string; student: boolean }[]>`
    select u.id, exists (select 1 from user_roles r where r.user_id = u.id and r.role_name = 'student') as student
      from users u where ${emailIndexMatches(tx, tx`u.email_blind_index`, person.email)}`;
  if (existing?.student) return { studentId: existing.id, accountCreated: false };
  if (existing) {
    throw conflict('An account that is not a student’s holds this address: link a student account by studentId');
  }
  const { id } = await createAccount(tx, { ...person, roles: ['student'] }, by);
  return { studentId: id, accountCreated: true };
}
