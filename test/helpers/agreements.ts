// Enrollment agreements for tests: a drawn-signature PNG, the template of the school published and
// activated, an agreement sent and its emailed link read back from the outbox (as the recipient would).
import { deflateSync } from 'node:zlib';
import type postgres from 'postgres';
import { expect } from 'vitest';
import { ENROLLMENT_AGREEMENT_V1 } from '../../lib/agreement-template';
import { decrypt } from '../../lib/crypto';
import { send } from './http';
import type { TestUser } from './users';

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

const chunk = (type: string, data: Buffer) => {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
};

/** A 120 × 40 greyscale PNG with a diagonal stroke: a drawn signature. */
export function signaturePng(width = 120, height = 40): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(width + 1, 255);
    row[0] = 0; // no filter
    for (let x = 0; x < width; x++) if (Math.abs(Math.round((x * height) / width) - y) < 2) row[x + 1] = 20;
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Publishes and activates the school's enrollment agreement; returns the template id. */
export async function publishTemplate(admin: TestUser, options: { counterSign?: boolean; name?: string } = {}) {
  const created = await send('POST', '/agreements/templates', {
    as: admin,
    body: {
      name: options.name ?? 'Enrollment Agreement',
      version: `v${Date.now()}`,
      requiresCounterSignature: options.counterSign ?? true,
      schema: ENROLLMENT_AGREEMENT_V1,
    },
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  expect((await send('POST', `/agreements/templates/${id}/activate`, { as: admin })).status).toBe(200);
  return id;
}

export const SCHOOL_PART = {
  program: { name: 'Dental Assisting (20 weeks)', startDate: '2027-01-11', endDate: '2027-05-28' },
  financial: { tuition: '12500.00', registrationFee: '150.00' },
};

/** The portal's nested form as the signer submits it (the school's part sent back unchanged). */
export const signerForm = (firstName: string, lastName: string, email: string) => ({
  student: {
    firstName,
    lastName,
    dateOfBirth: '1999-04-12',
    ssnLast4: '4321',
    address: '12 Peachtree Street, Atlanta GA 30303',
    phone: '+1 404 555 0100',
    email,
  },
  ...SCHOOL_PART,
  acknowledgements: { catalog: 'JE', refundPolicy: 'JE', gnpec: 'JE', agree: true },
});

/** Opens, consents to and signs an agreement with its link's token, as the signer would; returns the sign answer. */
export async function signAs(token: string, who: { firstName: string; lastName: string; email: string }) {
  const post = (path: string, body: unknown) => send('POST', path, { body });
  expect((await post('/agreements/signing/open', { token })).status).toBe(200);
  const consent = await post('/agreements/signing/consent', { token, disclosureVersion: '2026-12-01', accept: true });
  expect(consent.status).toBe(200);
  return post('/agreements/signing/sign', {
    token,
    typedName: `${who.firstName} ${who.lastName}`,
    signaturePng: signaturePng().toString('base64'),
    formData: signerForm(who.firstName, who.lastName, who.email),
  });
}

/** The signing token of the newest agreement email to `email` (from the encrypted outbox). */
export async function signingTokenFor(sql: postgres.Sql, email: string): Promise<string> {
  const rows = await sql<{ recipient_ciphertext: string; body_ciphertext: string }[]>`
    select recipient_ciphertext, body_ciphertext from outbox_messages where kind = 'agreement_signing'
     order by created_at desc, id desc`;
  const mine = rows.find((row) => decrypt(row.recipient_ciphertext, 'outbox.recipient') === email);
  const token = mine
    ? /[?&]token=([A-Za-z0-9_-]{43})/.exec(decrypt(mine.body_ciphertext, 'outbox.body'))?.[1]
    : undefined;
  if (!token) throw new Error(`no signing email to ${email}`);
  return token;
}

/** A completed agreement of `userId` with a stored (unsealed) PDF, straight in the database (route probes). */
export async function insertCompletedAgreement(sql: postgres.Sql, userId: string): Promise<string> {
  const { storeFile } = await import('../../lib/files');
  const { encrypt } = await import('../../lib/crypto');
  const file = await storeFile(sql, {
    purpose: 'agreement-sealed',
    shelf: 'retained',
    contentType: 'application/pdf',
    maxBytes: 1024,
    source: Buffer.from('%PDF-1.7\n%%EOF\n'),
  });
  const [template] = await sql<{ id: string }[]>`
    insert into document_templates (name, version, schema, sha256, is_active)
    values ('Probe Agreement', ${file.id}, ${sql.json({ title: 'Probe', sections: [] })}, ${file.sha256}, false)
    returning id`;
  const [row] = await sql<{ id: string }[]>`
    insert into signed_documents (template_id, user_id, status, form_data_ciphertext, retention_until, sent_at,
                                  consent_version, consented_at, student_signed_at, completed_at, sealed_file_id)
    values (${template!.id}, ${userId}, 'completed', ${encrypt('{}', 'signed_documents.form_data')},
            now() + interval '5 years', now(), '2026-12-01', now(), now(), now(), ${file.id})
    returning id`;
  return row!.id;
}
