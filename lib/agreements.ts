// Enrollment agreements: templates (lib/agreement-template.ts), sending to a student or an applicant
// (a lead), public signing by a one-time link after ESIGN consent, counter-signature by the school,
// and the sealed PDF in the files store (lib/agreement-document.ts). The states:
//   pending → viewed → student_signed → completed, and voided from any open state;
//   pending or viewed → paper_required when the signer withdraws consent to sign electronically
//   (ESIGN Act): it can no longer be e-signed, staff deal with it on paper and then void it;
// a template without counter-signature completes on the signer's signature. Nothing is completed that
// the signer never signed (409, and a CHECK in migration 0019), no route deletes an agreement, and
// every step is an append-only row of document_events with who and from where.
//
// Why one file over 350 lines: each step of the states above is a query on the same row and the same
// event trail, and its guard (requireStatus) must be read against the others. The template, the sealed
// document and the reminders are their own modules (lib/agreement-*.ts).
import type { Caller, Role } from './access';
import { type AgreementSchema, ESIGN_DISCLOSURE, type FormData } from './agreement-template';
import { config } from './config';
import { decrypt, emailBlindIndex, encrypt } from './crypto';
import type { AnySql, TransactionSql } from './db';
import { conflict, declareConstraints, notFound } from './errors';
import { storeFile } from './files';
import { keyset } from './pagination';
import { SCHOOL } from './school';
import { emailIndexMatches } from './users';

declareConstraints({
  document_templates_name_version_key: {
    status: 409,
    field: 'body.version',
    message: 'This template already has a version of this name',
  },
});

/** Staff who send, counter-sign and void agreements and read any of them. */
export const AGREEMENT_STAFF: readonly Role[] = ['admin', 'registrar'];
/** Staff who may also read agreements and send them (admissions). */
export const AGREEMENT_READERS: readonly Role[] = ['admin', 'registrar', 'admissions_manager', 'admissions_counselor'];

export const AGREEMENT_STATUSES = [
  'pending',
  'viewed',
  'student_signed',
  'completed',
  'voided',
  'expired',
  'paper_required',
] as const;
export type AgreementStatus = (typeof AGREEMENT_STATUSES)[number];
const OPEN: readonly AgreementStatus[] = ['pending', 'viewed'];
/** What staff may send again: an open agreement, or one whose link expired unsigned. */
export const RESENDABLE: readonly AgreementStatus[] = [...OPEN, 'expired'];
/** What staff may void: anything not completed nor closed already. */
export const VOIDABLE: readonly AgreementStatus[] = [...OPEN, 'student_signed', 'paper_required'];

export interface Origin {
  userId: string | null;
  clientIp: string | null;
  userAgent: string | null;
}

/** Appends one event of an agreement's trail (details hold ids and versions only, never personal data). */
export async function recordEvent(
  sql: AnySql,
  documentId: string,
  type: string,
  origin: Origin,
  details: Record<string, string> | null = null,
): Promise<void> {
  await sql`
    insert into document_events (document_id, user_id, event_type, details, client_ip, user_agent)
    values (${documentId}, ${origin.userId}, ${type}, ${details ? sql.json(details) : null},
            ${origin.clientIp}, ${origin.userAgent?.slice(0, 500) ?? null})`;
}

// ---------------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------------

export interface TemplateRow {
  id: string;
  name: string;
  version: string;
  schema: AgreementSchema;
  requires_counter_signature: boolean;
  is_active: boolean;
  retired_at: Date | null;
  created_at: Date;
}

const templateColumns = (sql: AnySql) =>
  sql`id, name, version, schema, requires_counter_signature, is_active, retired_at, created_at`;

export async function insertTemplate(
  sql: AnySql,
  template: { name: string; version: string; schema: AgreementSchema; requiresCounterSignature: boolean },
  createdBy: string | null,
  sha256: Buffer,
): Promise<TemplateRow> {
  const [row] = await sql<TemplateRow[]>`
    insert into document_templates (name, version, schema, sha256, requires_counter_signature, is_active, created_by)
    values (${template.name}, ${template.version}, ${sql.json(template.schema as never)}, ${sha256},
            ${template.requiresCounterSignature}, false, ${createdBy})
    returning ${templateColumns(sql)}`;
  return row as TemplateRow;
}

export async function listTemplates(sql: AnySql): Promise<TemplateRow[]> {
  return sql<TemplateRow[]>`
    select ${templateColumns(sql)} from document_templates where schema is not null
     order by name, created_at desc limit 200`;
}

/** Activates or retires a version; activating one retires the other active versions of its name. */
export async function setTemplateActive(sql: TransactionSql, id: string, active: boolean): Promise<TemplateRow | null> {
  if (active) {
    await sql`update document_templates set is_active = false, retired_at = now()
               where name = (select name from document_templates where id = ${id}) and id <> ${id} and is_active`;
  }
  const [row] = await sql<TemplateRow[]>`
    update document_templates
       set is_active = ${active}, retired_at = ${active ? null : sql`now()`}
     where id = ${id} and schema is not null
    returning ${templateColumns(sql)}`;
  return row ?? null;
}

/** The given template if active, else the active version of the enrollment agreement. */
export async function templateToSend(sql: AnySql, id: string | undefined): Promise<TemplateRow> {
  const [row] = await sql<TemplateRow[]>`
    select ${templateColumns(sql)} from document_templates
     where is_active and schema is not null and ${id ? sql`id = ${id}` : sql`name = 'Enrollment Agreement'`}
     order by created_at desc limit 1`;
  if (!row) throw notFound(id ? 'No active template with this id' : 'No active enrollment agreement template');
  return row;
}

export const toTemplateView = (row: TemplateRow) => ({
  id: row.id,
  name: row.name,
  version: row.version,
  requiresCounterSignature: row.requires_counter_signature,
  active: row.is_active,
  retiredAt: row.retired_at?.toISOString() ?? null,
  createdAt: row.created_at.toISOString(),
  schema: row.schema,
});

/**
 * A PDF template (the file already rewritten by sanitisePdf): the file goes to the files store first,
 * then the row that points to it (an object without a row is swept, never a row without its object).
 * Stored inactive, as every new version is.
 */
export async function insertPdfTemplate(
  sql: AnySql,
  template: { name: string; version: string },
  pdf: Uint8Array,
  createdBy: string,
): Promise<PdfTemplateRow> {
  const file = await storeFile(sql, {
    purpose: 'agreement-template',
    shelf: 'files',
    contentType: 'application/pdf',
    maxBytes: 20 * 1024 * 1024,
    source: pdf,
    createdBy,
  });
  const [row] = await sql<PdfTemplateRow[]>`
    insert into document_templates (name, version, storage_ref, sha256, content_type, is_active, created_by)
    values (${template.name}, ${template.version}, ${file.id}, ${file.sha256}, 'application/pdf', false, ${createdBy})
    returning id, name, version, storage_ref, sha256, is_active, created_at`;
  return { ...(row as PdfTemplateRow), byte_size: file.byteSize };
}

export interface PdfTemplateRow {
  id: string;
  name: string;
  version: string;
  storage_ref: string;
  sha256: Buffer;
  is_active: boolean;
  created_at: Date;
  byte_size: number;
}

export const pdfTemplateView = (row: PdfTemplateRow) => ({
  id: row.id,
  name: row.name,
  version: row.version,
  kind: 'pdf' as const,
  active: row.is_active,
  createdAt: row.created_at.toISOString(),
  file: { sha256: row.sha256.toString('hex'), byteSize: row.byte_size },
});

// ---------------------------------------------------------------------------------------------------
// Recipients
// ---------------------------------------------------------------------------------------------------

export type Recipient =
  | { studentId: string }
  | { leadId: string }
  | { email: string; firstName: string; lastName: string; phone?: string | undefined };

export interface Person {
  userId: string | null;
  leadId: string | null;
  email: string;
  firstName: string;
  lastName: string;
}

/** The person an agreement goes to; an ad-hoc address becomes a lead (or finds the lead it is). */
export async function resolveRecipient(sql: TransactionSql, recipient: Recipient, by: string): Promise<Person> {
  if ('studentId' in recipient) {
    const [user] = await sql<{ id: string; e: string; f: string; l: string }[]>`
      select u.id, u.email_ciphertext as e, u.first_name_ciphertext as f, u.last_name_ciphertext as l
        from users u join user_roles r on r.user_id = u.id and r.role_name = 'student'
       where u.id = ${recipient.studentId}`;
    if (!user) throw notFound('No such student');
    return { userId: user.id, leadId: null, ...names(user, 'users') };
  }
  const index = 'email' in recipient ? emailBlindIndex(recipient.email) : null;
  const [lead] = await sql<{ id: string; e: string; f: string; l: string }[]>`
    select id, email_ciphertext as e, first_name_ciphertext as f, last_name_ciphertext as l from leads
     where ${'leadId' in recipient ? sql`id = ${recipient.leadId}` : emailIndexMatches(sql, sql`email_blind_index`, recipient.email)}
     order by created_at limit 1`;
  if (lead) return { userId: null, leadId: lead.id, ...names(lead, 'leads') };
  if ('leadId' in recipient) throw notFound('No such lead');
  const [created] = await sql<{ id: string }[]>`
    insert into leads (first_name_ciphertext, last_name_ciphertext, email_ciphertext, email_blind_index,
                       phone_ciphertext, created_by)
    values (${encrypt(recipient.firstName, 'leads.first_name')}, ${encrypt(recipient.lastName, 'leads.last_name')},
            ${encrypt(recipient.email, 'leads.email')}, ${index},
            ${recipient.phone ? encrypt(recipient.phone, 'leads.phone') : null}, ${by})
    returning id`;
  const { email, firstName, lastName } = recipient;
  return { userId: null, leadId: (created as { id: string }).id, email, firstName, lastName };
}

function names(row: { e: string; f: string; l: string }, table: 'users' | 'leads') {
  return {
    email: decrypt(row.e, `${table}.email`),
    firstName: decrypt(row.f, `${table}.first_name`),
    lastName: decrypt(row.l, `${table}.last_name`),
  };
}

// ---------------------------------------------------------------------------------------------------
// Agreements
// ---------------------------------------------------------------------------------------------------

export interface AgreementRow {
  id: string;
  template_id: string;
  template_name: string;
  template_version: string;
  schema: AgreementSchema;
  requires_counter_signature: boolean;
  user_id: string | null;
  lead_id: string | null;
  status: AgreementStatus;
  course_type: string | null;
  form_data_ciphertext: string | null;
  retention_until: Date;
  created_at: Date;
  sent_at: Date | null;
  viewed_at: Date | null;
  consent_version: string | null;
  consented_at: Date | null;
  consent_withdrawn_at: Date | null;
  paper_copy_requested_at: Date | null;
  student_signed_at: Date | null;
  counter_signed_at: Date | null;
  completed_at: Date | null;
  voided_at: Date | null;
  content_sha256: Buffer | null;
  sealed_file_id: string | null;
  sealed_sha256: Buffer | null;
}

const agreementColumns = (sql: AnySql) => sql`
  d.id, d.template_id, t.name as template_name, t.version as template_version, t.schema,
  t.requires_counter_signature, d.user_id, d.lead_id, d.status, d.course_type, d.form_data_ciphertext,
  d.retention_until, d.created_at, d.sent_at, d.viewed_at, d.consent_version, d.consented_at,
  d.consent_withdrawn_at, d.paper_copy_requested_at, d.student_signed_at, d.counter_signed_at, d.completed_at, d.voided_at, d.content_sha256, d.sealed_file_id,
  (select f.sha256 from stored_files f where f.id = d.sealed_file_id) as sealed_sha256`;

/**
 * The agreements of a student: sent to their account, or to the lead they were before (converted into
 * this account, lib/leads.ts); on idx_signed_documents_user_id and leads_converted_user_idx.
 */
function agreementsOfStudent(sql: AnySql, userId: string) {
  return sql`(d.user_id = ${userId}
              or d.lead_id in (select l.id from leads l where l.converted_user_id = ${userId}))`;
}

/** Who reaches an agreement: agreement staff every one, a student their own; anyone else none (404). */
function agreementVisible(sql: AnySql, caller: Caller) {
  if (caller.roles.some((role) => AGREEMENT_READERS.includes(role))) return sql`true`;
  return agreementsOfStudent(sql, caller.userId);
}

export async function findAgreement(sql: AnySql, id: string, caller: Caller | null, lock = false) {
  const [row] = await sql<AgreementRow[]>`
    select ${agreementColumns(sql)} from signed_documents d join document_templates t on t.id = d.template_id
     where d.id = ${id} and ${caller ? agreementVisible(sql, caller) : sql`true`}
     ${lock ? sql`for update of d` : sql``}`;
  return row ?? null;
}

// ---------------------------------------------------------------------------------------------------
// The staff list (GET agreements)
// ---------------------------------------------------------------------------------------------------

/** Newest first, on signed_documents_created_idx (migration 0019). */
export const AGREEMENT_ORDER = keyset(
  [
    ['d.created_at', 'time'],
    ['d.id', 'uuid'],
  ],
  'desc',
);

export interface AgreementFilter {
  status?: AgreementStatus | undefined;
  studentId?: string | undefined;
  leadId?: string | undefined;
  /** Only agreements whose signer asked for a paper copy (true) or did not (false). */
  paperCopyRequested?: boolean | undefined;
  /** Inclusive school days (YYYY-MM-DD, Atlanta time) on sent_at and student_signed_at. */
  sentFrom?: string | undefined;
  sentTo?: string | undefined;
  signedFrom?: string | undefined;
  signedTo?: string | undefined;
}

export interface AgreementListRow extends AgreementRow {
  page_key: string[];
  user_first: string | null;
  user_last: string | null;
  lead_first: string | null;
  lead_last: string | null;
}

/** `column` falls on the school days from..to (either bound optional): the day starts at midnight in Atlanta. */
function onSchoolDays(sql: AnySql, column: string, from: string | undefined, to: string | undefined) {
  const dayStart = (day: string) => sql`(${day}::date::timestamp at time zone ${SCHOOL.timeZone})`;
  const nextDayStart = (day: string) => sql`((${day}::date + 1)::timestamp at time zone ${SCHOOL.timeZone})`;
  return sql`${from ? sql`and ${sql(column)} >= ${dayStart(from)}` : sql``}
             ${to ? sql`and ${sql(column)} < ${nextDayStart(to)}` : sql``}`;
}

function paperCopyCondition(sql: AnySql, requested: boolean | undefined) {
  if (requested === undefined) return sql``;
  return requested ? sql`and d.paper_copy_requested_at is not null` : sql`and d.paper_copy_requested_at is null`;
}

/** One page of agreements the caller reaches, with the recipient's encrypted names (decrypted by the view). */
export function agreementPageQuery(
  sql: AnySql,
  filter: AgreementFilter,
  caller: Caller,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<AgreementListRow[]>`
    select ${agreementColumns(sql)}, ${AGREEMENT_ORDER.key(sql)},
           u.first_name_ciphertext as user_first, u.last_name_ciphertext as user_last,
           l.first_name_ciphertext as lead_first, l.last_name_ciphertext as lead_last
      from signed_documents d join document_templates t on t.id = d.template_id
      left join users u on u.id = d.user_id
      left join leads l on l.id = d.lead_id
     where ${agreementVisible(sql, caller)}
       ${filter.status ? sql`and d.status = ${filter.status}` : sql``}
       ${filter.studentId ? sql`and ${agreementsOfStudent(sql, filter.studentId)}` : sql``}
       ${filter.leadId ? sql`and d.lead_id = ${filter.leadId}` : sql``}
       ${paperCopyCondition(sql, filter.paperCopyRequested)}
       ${onSchoolDays(sql, 'd.sent_at', filter.sentFrom, filter.sentTo)}
       ${onSchoolDays(sql, 'd.student_signed_at', filter.signedFrom, filter.signedTo)}
       and ${AGREEMENT_ORDER.after(sql, after)}
     ${AGREEMENT_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

/** The recipient's name on a list row (the student's account or the lead). */
export function recipientNameOf(row: AgreementListRow): { firstName: string; lastName: string } {
  if (row.user_first && row.user_last) {
    return {
      firstName: decrypt(row.user_first, 'users.first_name'),
      lastName: decrypt(row.user_last, 'users.last_name'),
    };
  }
  return {
    firstName: decrypt(row.lead_first as string, 'leads.first_name'),
    lastName: decrypt(row.lead_last as string, 'leads.last_name'),
  };
}

export const formDataOf = (row: AgreementRow): FormData =>
  row.form_data_ciphertext
    ? (JSON.parse(decrypt(row.form_data_ciphertext, 'signed_documents.form_data')) as FormData)
    : {};

export async function insertAgreement(
  sql: TransactionSql,
  input: { template: TemplateRow; person: Person; courseType: string | null; prefill: FormData; by: string },
): Promise<string> {
  const years = config().AGREEMENT_RETENTION_YEARS;
  const [row] = await sql<{ id: string }[]>`
    insert into signed_documents (template_id, user_id, lead_id, status, course_type, form_data_ciphertext,
                                  retention_until, created_by, sent_at)
    values (${input.template.id}, ${input.person.userId}, ${input.person.leadId}, 'pending', ${input.courseType},
            ${encrypt(JSON.stringify(input.prefill), 'signed_documents.form_data')},
            (now() + make_interval(years => ${years}))::date, ${input.by}, now())
    returning id`;
  return (row as { id: string }).id;
}

/**
 * Records the link just issued: when, until when, and no reminder yet for it. A resend of an expired
 * agreement opens it again (its trail keeps the expiry, then the resend).
 */
export async function recordLinkSent(sql: AnySql, id: string, expiresAt: Date): Promise<void> {
  await sql`update signed_documents
               set link_sent_at = now(), link_expires_at = ${expiresAt}, reminders_sent = 0, expired_at = null,
                   status = case when status <> 'expired' then status
                                 when viewed_at is null then 'pending' else 'viewed' end
             where id = ${id}`;
}

/** The agreement's signer: its student account or its lead, decrypted. */
export async function signerOf(sql: AnySql, row: AgreementRow): Promise<Person> {
  if (row.user_id) return resolveRecipient(sql as TransactionSql, { studentId: row.user_id }, '');
  return resolveRecipient(sql as TransactionSql, { leadId: row.lead_id as string }, '');
}

/** Refuses a step the agreement's state does not allow (409 with the state). */
export function requireStatus(row: AgreementRow, allowed: readonly AgreementStatus[], step: string): void {
  if (!allowed.includes(row.status)) throw conflict(`This agreement is ${row.status.replace('_', ' ')}: ${step}`);
}

export const requireOpen = (row: AgreementRow, step: string) => requireStatus(row, OPEN, step);

export async function markViewed(sql: AnySql, row: AgreementRow, origin: Origin): Promise<void> {
  if (row.viewed_at) return;
  await sql`update signed_documents set viewed_at = now(), status = 'viewed' where id = ${row.id} and viewed_at is null`;
  await recordEvent(sql, row.id, 'viewed', origin);
}

/** Whether the signer accepted the disclosure in force: a consent to an earlier text must be given again. */
export const consentIsCurrent = (row: AgreementRow) => row.consent_version === ESIGN_DISCLOSURE.version;

/**
 * Records consent to the disclosure in force. A consent given again after the disclosure changed
 * names the version it replaces in the trail (the earlier consent's event stays).
 */
export async function recordConsent(sql: AnySql, row: AgreementRow, origin: Origin): Promise<void> {
  await sql`update signed_documents set consent_version = ${ESIGN_DISCLOSURE.version}, consented_at = now()
             where id = ${row.id}`;
  const replaced: Record<string, string> =
    row.consent_version && !consentIsCurrent(row) ? { previousVersion: row.consent_version } : {};
  await recordEvent(sql, row.id, 'consented', origin, { disclosureVersion: ESIGN_DISCLOSURE.version, ...replaced });
}

/**
 * The signer withdrew consent to sign electronically (before signing): the agreement needs paper.
 * The trail says which disclosure version, if any, they had consented to.
 */
export async function recordConsentWithdrawal(sql: AnySql, row: AgreementRow, origin: Origin): Promise<void> {
  await sql`update signed_documents set status = 'paper_required', consent_withdrawn_at = now()
             where id = ${row.id}`;
  const consented: Record<string, string> = row.consent_version ? { consentedVersion: row.consent_version } : {};
  await recordEvent(sql, row.id, 'consent_withdrawn', origin, consented);
}

/**
 * The signer asked for a paper copy. The first request's time is kept and recorded once: asking again
 * (a replayed request, a second click) changes nothing. Returns when it was first asked.
 */
export async function recordPaperCopyRequest(sql: AnySql, row: AgreementRow, origin: Origin): Promise<Date> {
  if (row.paper_copy_requested_at) return row.paper_copy_requested_at;
  const [updated] = await sql<{ at: Date }[]>`
    update signed_documents set paper_copy_requested_at = now() where id = ${row.id}
    returning paper_copy_requested_at as at`;
  await recordEvent(sql, row.id, 'paper_copy_requested', origin, { status: row.status });
  return (updated as { at: Date }).at;
}

export interface Signature {
  kind: 'applicant' | 'student' | 'school_official';
  signerUserId: string | null;
  typedName: string;
  png: Buffer;
}

export async function insertSignature(sql: AnySql, documentId: string, signature: Signature, origin: Origin) {
  await sql`
    insert into document_signatures (document_id, signer_user_id, signature_type, signature_ciphertext,
                                     typed_name_ciphertext, client_ip, user_agent)
    values (${documentId}, ${signature.signerUserId}, ${signature.kind},
            ${encrypt(signature.png.toString('base64'), 'document_signatures.signature')},
            ${encrypt(signature.typedName, 'document_signatures.typed_name')},
            ${origin.clientIp}, ${origin.userAgent?.slice(0, 500) ?? null})`;
}

export async function recordSignerSignature(sql: AnySql, row: AgreementRow, form: FormData): Promise<void> {
  await sql`update signed_documents
               set status = 'student_signed', student_signed_at = now(),
                   form_data_ciphertext = ${encrypt(JSON.stringify(form), 'signed_documents.form_data')}
             where id = ${row.id}`;
}

export async function voidAgreement(sql: AnySql, id: string, by: string, reason: string): Promise<void> {
  await sql`update signed_documents set status = 'voided', voided_at = now(), voided_by = ${by},
                   void_reason_ciphertext = ${encrypt(reason, 'signed_documents.void_reason')}
             where id = ${id}`;
}

/** The school's counter-signature is on the document (the signature row itself is insertSignature). */
export async function markCounterSigned(sql: AnySql, id: string): Promise<void> {
  await sql`update signed_documents set counter_signed_at = now() where id = ${id}`;
}

export interface SignatureRow {
  signature_type: Signature['kind'];
  signature_ciphertext: string;
  typed_name_ciphertext: string;
  signed_at: Date;
  client_ip: string | null;
  user_agent: string | null;
}

export const signaturesOf = (sql: AnySql, id: string) =>
  sql<SignatureRow[]>`
    select signature_type, signature_ciphertext, typed_name_ciphertext, signed_at, host(client_ip) as client_ip,
           user_agent
      from document_signatures where document_id = ${id} order by signed_at, id`;

export interface EventRow {
  id: string;
  event_type: string;
  user_id: string | null;
  details: Record<string, string> | null;
  occurred_at: Date;
  client_ip: string | null;
  user_agent: string | null;
}

export const eventsOf = (sql: AnySql, id: string) =>
  sql<EventRow[]>`
    select id, event_type, user_id, details, occurred_at, host(client_ip) as client_ip, user_agent
      from document_events where document_id = ${id} order by id limit 1000`;

/** The agreement a sealed file is, by the file's SHA-256 (verification). */
export async function agreementBySealedDigest(sql: AnySql, sha256: Buffer) {
  const [row] = await sql<{ id: string; completed_at: Date; template_version: string }[]>`
    select d.id, d.completed_at, t.version as template_version
      from stored_files f join signed_documents d on d.sealed_file_id = f.id
      join document_templates t on t.id = d.template_id
     where f.sha256 = ${sha256} and f.purpose = 'agreement-sealed'`;
  return row ?? null;
}

/** Tells the trail of each of a lead's agreements that the lead became this student (lib/leads.ts). */
export async function recordLeadConversion(sql: AnySql, leadId: string, studentId: string, origin: Origin) {
  await sql`
    insert into document_events (document_id, user_id, event_type, details, client_ip, user_agent)
    select d.id, ${origin.userId}, 'lead_converted', ${sql.json({ studentId })}, ${origin.clientIp},
           ${origin.userAgent?.slice(0, 500) ?? null}
      from signed_documents d where d.lead_id = ${leadId}`;
}

export async function recordCompletion(sql: AnySql, id: string, sealed: { fileId: string; contentSha256: Buffer }) {
  const years = config().AGREEMENT_RETENTION_YEARS;
  await sql`update signed_documents
               set status = 'completed', completed_at = now(), sealed_file_id = ${sealed.fileId},
                   content_sha256 = ${sealed.contentSha256},
                   retention_until = (now() + make_interval(years => ${years}))::date
             where id = ${id}`;
}
