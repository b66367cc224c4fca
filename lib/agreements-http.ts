// What agreement routes send and accept beyond the SQL of lib/agreements.ts: the JSON views, the
// emailed signing link (a one-time token, queued in the outbox in the request's transaction), and the
// drawn signature's format check.
import { z } from 'zod';
import {
  type AgreementListRow,
  type AgreementRow,
  type EventRow,
  formDataOf,
  type Person,
  recipientNameOf,
  recordLinkSent,
} from './agreements';
import { config } from './config';
import type { AnySql } from './db';
import { issueToken, newToken, portalLink } from './one-time-links';
import { enqueueMessage } from './outbox';
import { schoolDateTime } from './school';

const iso = (at: Date | null) => at?.toISOString() ?? null;

export function agreementView(row: AgreementRow, options: { withForm?: boolean } = {}) {
  return {
    id: row.id,
    status: row.status,
    template: { id: row.template_id, name: row.template_name, version: row.template_version },
    recipient: row.user_id ? { studentId: row.user_id } : { leadId: row.lead_id },
    courseType: row.course_type,
    requiresCounterSignature: row.requires_counter_signature,
    sentAt: iso(row.sent_at),
    viewedAt: iso(row.viewed_at),
    consentedAt: iso(row.consented_at),
    consentVersion: row.consent_version,
    /** The ESIGN paper alternatives: consent withdrawn (status paper_required), a paper copy asked for. */
    paper: {
      consentWithdrawnAt: iso(row.consent_withdrawn_at),
      copyRequestedAt: iso(row.paper_copy_requested_at),
    },
    signedAt: iso(row.student_signed_at),
    counterSignedAt: iso(row.counter_signed_at),
    completedAt: iso(row.completed_at),
    voidedAt: iso(row.voided_at),
    retainUntil: row.retention_until.toISOString().slice(0, 10),
    documentSha256: row.content_sha256?.toString('hex') ?? null,
    pdf: row.sealed_file_id
      ? { href: `/api/agreements/${row.id}/pdf`, sha256: row.sealed_sha256?.toString('hex') ?? null }
      : null,
    ...(options.withForm ? { formData: formDataOf(row) } : {}),
  };
}

/** A row of the staff list: the agreement without its form data, and whom it went to by name. */
export function agreementListItem(row: AgreementListRow) {
  const view = agreementView(row);
  return { ...view, recipient: { ...view.recipient, ...recipientNameOf(row) } };
}

export const eventView = (event: EventRow) => ({
  id: String(event.id),
  type: event.event_type,
  userId: event.user_id,
  details: event.details ?? {},
  at: event.occurred_at.toISOString(),
  clientIp: event.client_ip,
  userAgent: event.user_agent,
});

/** Issues the agreement's signing link (replacing any earlier one) and queues the email with it. */
export async function sendSigningLink(sql: AnySql, agreementId: string, person: Person): Promise<void> {
  const days = config().AGREEMENT_LINK_DAYS;
  const { token, expiresAt } = await issueSigningToken(sql, agreementId, days * 24 * 3600);
  await recordLinkSent(sql, agreementId, expiresAt);
  await enqueueMessage(sql, {
    kind: 'agreement_signing',
    recipient: person.email,
    subject: 'Your enrollment agreement is ready to sign',
    body:
      `Hello ${person.firstName},\n\nAtlanta Academy of Dental Assisting has sent you your enrollment agreement. ` +
      `Review and sign it here:\n\n${portalLink('sign', token)}\n\nThe link works for ${days} days. ` +
      'You may ask the registrar for a paper copy at any time.\n',
  });
}

/**
 * A reminder of an unsigned agreement: a new link replacing the earlier one (the token is kept only as
 * a hash, so the earlier link cannot be sent again), expiring when that one would have: a reminder
 * never extends the time to sign.
 */
export async function sendSigningReminder(
  sql: AnySql,
  agreementId: string,
  person: Person,
  secondsLeft: number,
): Promise<void> {
  const { token, expiresAt } = await issueSigningToken(sql, agreementId, secondsLeft);
  await enqueueMessage(sql, {
    kind: 'agreement_signing',
    recipient: person.email,
    subject: 'Reminder: your enrollment agreement is waiting for your signature',
    body:
      `Hello ${person.firstName},\n\nyour enrollment agreement with Atlanta Academy of Dental Assisting is not ` +
      `signed yet. Review and sign it here:\n\n${portalLink('sign', token)}\n\nThis link replaces the one in ` +
      `our earlier email and works until ${schoolDateTime(expiresAt)} (Atlanta time). ` +
      'You may ask the registrar for a paper copy at any time.\n',
  });
}

async function issueSigningToken(sql: AnySql, agreementId: string, ttlSeconds: number) {
  const { token, hash } = newToken();
  const [issued] = await issueToken(sql, {
    purpose: 'agreement_signing',
    owner: { signedDocumentId: agreementId },
    hash,
    ttlSeconds,
  });
  return { token, expiresAt: (issued as { expires_at: Date }).expires_at };
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX_SIGNATURE_BYTES = 200 * 1024;

/**
 * A drawn signature: base64 of a PNG (a `data:image/png;base64,` prefix allowed), at most 200 KB,
 * with the PNG signature, an IHDR of at most 2000 × 1000 pixels and an IEND. Decoded to bytes.
 */
export const SignaturePng = z
  .string()
  .max(Math.ceil((MAX_SIGNATURE_BYTES * 4) / 3) + 40)
  .transform((text, ctx) => {
    const base64 = text.replace(/^data:image\/png;base64,/, '');
    const png = /^[A-Za-z0-9+/]+={0,2}$/.test(base64) ? Buffer.from(base64, 'base64') : Buffer.alloc(0);
    const width = png.length > 24 ? png.readUInt32BE(16) : 0;
    const height = png.length > 24 ? png.readUInt32BE(20) : 0;
    const valid =
      png.length <= MAX_SIGNATURE_BYTES &&
      png.subarray(0, 8).equals(PNG_MAGIC) &&
      png.subarray(12, 16).toString('latin1') === 'IHDR' &&
      png.subarray(-8, -4).toString('latin1') === 'IEND' &&
      width >= 10 &&
      width <= 2000 &&
      height >= 10 &&
      height <= 1000;
    if (!valid) {
      ctx.addIssue({ code: 'custom', message: 'a PNG image of at most 200 KB and 2000 × 1000 pixels, base64 encoded' });
      return z.NEVER;
    }
    return png;
  });
