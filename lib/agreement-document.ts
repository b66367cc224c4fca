// The sealed agreement: the agreement rendered from its template with the filled-in data and the
// signatures (lib/pdf.ts), then a certificate of completion appended — agreement id, template version,
// the SHA-256 of the rendered agreement pages, and for every signer name, email, address, user agent,
// consent, viewed and signed times — and the whole file sealed with the school's certificate. The file
// goes to the files store's `retained` shelf (WORM in Azure) and the agreement points at it.
import { createHash } from 'node:crypto';
import type { FormData } from './agreement-template';
import {
  type AgreementRow,
  type EventRow,
  eventsOf,
  formDataOf,
  type Origin,
  type Person,
  recordCompletion,
  recordEvent,
  type SignatureRow,
  signaturesOf,
  signerOf,
} from './agreements';
import { decrypt } from './crypto';
import type { TransactionSql } from './db';
import { storeFile } from './files';
import { type Block, renderPdf } from './pdf';

const SCHOOL = 'Atlanta Academy of Dental Assisting';
const MAX_SEALED_BYTES = 20 * 1024 * 1024;

/** As a person reads a moment at the school: "1 December 2026, 14:05 EST". */
const moment = (at: Date | null) =>
  at
    ? at.toLocaleString('en-GB', {
        timeZone: 'America/New_York',
        day: 'numeric',
        month: 'long',
        year: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        timeZoneName: 'short',
      })
    : '—';

const SIGNER_TITLES: Record<SignatureRow['signature_type'], string> = {
  applicant: 'Applicant',
  student: 'Student',
  school_official: 'For the school',
};

function agreementBlocks(row: AgreementRow, form: FormData, signatures: readonly SignatureRow[]): Block[] {
  const blocks: Block[] = [
    { kind: 'heading', level: 1, text: row.schema.title },
    {
      kind: 'text',
      text: `${SCHOOL} · Agreement ${row.id} · Template ${row.template_name} ${row.template_version}`,
      size: 8,
    },
    { kind: 'space', points: 6 },
  ];
  for (const section of row.schema.sections) {
    blocks.push({ kind: 'heading', level: 2, text: section.title });
    for (const paragraph of section.paragraphs) blocks.push({ kind: 'text', text: paragraph });
    const values = form[section.id] ?? {};
    const shown = (value: string | boolean | undefined) =>
      value === true ? 'Accepted' : value === undefined || value === '' ? '—' : String(value);
    // Statements to initial or accept are sentences: printed as lines, not squeezed into a label column.
    const statement = (type: string) => type === 'initials' || type === 'accept';
    const rows = section.fields
      .filter((field) => !statement(field.type))
      .map((field): [string, string] => [field.label, shown(values[field.id])]);
    if (rows.length > 0) blocks.push({ kind: 'fields', rows });
    for (const field of section.fields.filter((candidate) => statement(candidate.type))) {
      blocks.push({ kind: 'text', text: `[${shown(values[field.id])}]  ${field.label}` });
    }
  }
  blocks.push({ kind: 'heading', level: 2, text: 'Signatures' });
  for (const signature of signatures) {
    blocks.push({ kind: 'text', bold: true, text: SIGNER_TITLES[signature.signature_type] });
    blocks.push({
      kind: 'image',
      png: Buffer.from(decrypt(signature.signature_ciphertext, 'document_signatures.signature'), 'base64'),
      maxWidth: 220,
      maxHeight: 70,
    });
    const name = decrypt(signature.typed_name_ciphertext, 'document_signatures.typed_name');
    blocks.push({
      kind: 'fields',
      rows: [
        ['Signed by', name],
        ['Signed on', moment(signature.signed_at)],
      ],
    });
    blocks.push({ kind: 'space', points: 6 });
  }
  return blocks;
}

const firstEvent = (events: readonly EventRow[], type: string) => events.find((event) => event.event_type === type);

function certificateBlocks(
  row: AgreementRow,
  contentSha256: Buffer,
  signer: Person,
  signatures: readonly SignatureRow[],
  events: readonly EventRow[],
): Block[] {
  const viewed = firstEvent(events, 'viewed');
  const consented = firstEvent(events, 'consented');
  const blocks: Block[] = [
    { kind: 'page-break' },
    { kind: 'heading', level: 1, text: 'Certificate of completion' },
    {
      kind: 'fields',
      rows: [
        ['Agreement', row.id],
        ['Template', `${row.template_name}, version ${row.template_version}`],
        ['Document SHA-256', contentSha256.toString('hex')],
        ['Completed', moment(new Date())],
        ['Sealed by', `${SCHOOL} (PAdES digital signature; any change to this file invalidates it)`],
      ],
    },
    {
      kind: 'text',
      size: 8,
      text: 'The SHA-256 is of the agreement pages as rendered before this certificate was added.',
    },
  ];
  for (const signature of signatures) {
    const isSigner = signature.signature_type !== 'school_official';
    const name = decrypt(signature.typed_name_ciphertext, 'document_signatures.typed_name');
    blocks.push({ kind: 'heading', level: 2, text: `${SIGNER_TITLES[signature.signature_type]}: ${name}` });
    const rows: [string, string][] = [];
    if (isSigner) {
      rows.push(['Email', signer.email], ['Link first opened', moment(viewed?.occurred_at ?? null)]);
      rows.push([
        'ESIGN consent',
        consented
          ? `${moment(consented.occurred_at)} (disclosure ${consented.details?.disclosureVersion ?? '?'})`
          : '—',
      ]);
    }
    rows.push(
      ['Signed', moment(signature.signed_at)],
      ['IP address', signature.client_ip ?? 'not reported'],
      ['User agent', signature.user_agent ?? 'not reported'],
    );
    blocks.push({ kind: 'fields', rows });
  }
  return blocks;
}

/** Renders, seals and stores the completed agreement, records it and its event; returns the file id. */
export async function sealAgreement(sql: TransactionSql, row: AgreementRow, origin: Origin) {
  const [signatures, events, signer] = [
    await signaturesOf(sql, row.id),
    await eventsOf(sql, row.id),
    await signerOf(sql, row),
  ];
  const form = formDataOf(row);
  const title = `${row.schema.title} ${row.id}`;
  const base = { title, author: SCHOOL, createdAt: new Date(), footer: `${SCHOOL} · ${row.schema.title} ${row.id}` };
  const agreementPages = agreementBlocks(row, form, signatures);
  const content = await renderPdf({ ...base, blocks: agreementPages });
  const contentSha256 = createHash('sha256').update(content).digest();
  const sealed = await renderPdf({
    ...base,
    blocks: [...agreementPages, ...certificateBlocks(row, contentSha256, signer, signatures, events)],
    seal: { reason: `Enrollment agreement ${row.id} completed`, at: new Date() },
  });
  const file = await storeFile(sql, {
    purpose: 'agreement-sealed',
    shelf: 'retained',
    contentType: 'application/pdf',
    maxBytes: MAX_SEALED_BYTES,
    source: sealed,
    createdBy: origin.userId,
  });
  await recordCompletion(sql, row.id, { fileId: file.id, contentSha256 });
  await recordEvent(sql, row.id, 'completed', origin, { fileId: file.id });
  return file;
}
