// Enrollment agreements end to end over HTTP, on PostgreSQL and Azurite: a template published, an
// agreement sent to a student, the emailed link opened, ESIGN consent, the portal's nested form signed,
// counter-signed, sealed; the sealed PDF downloaded by the right people only, verified, and a changed
// byte refused both by our verification and by an independent CMS implementation (pkijs). Also the
// ugly cases: replayed, expired and voided links, counter-signing too early, someone else's ids,
// invalid form data field by field, huge and malformed bodies, and no plaintext in database or blob.
import { createHash, webcrypto } from 'node:crypto';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, test } from 'vitest';
import { config } from '../lib/config';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../lib/files';
import { publishTemplate, SCHOOL_PART, signAs, signaturePng, signerForm, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;
let student: TestUser;
const png = signaturePng().toString('base64');

const post = (path: string, body: unknown, as?: TestUser) => send('POST', path, { body, ...(as ? { as } : {}) });
const problemFields = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];

async function sendTo(recipient: unknown, templateId?: string) {
  const response = await post(
    '/agreements',
    { recipient, prefill: SCHOOL_PART, ...(templateId ? { templateId } : {}) },
    roles.registrar,
  );
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; status: string };
}

/** pkijs (not our code) checks the CMS signature over the byte ranges the PDF names. */
async function cmsSignatureValid(pdf: Buffer): Promise<boolean> {
  const text = pdf.toString('latin1');
  const range = /\/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]/.exec(text.slice(text.lastIndexOf('/ByteRange')));
  const [a, b, c, d] = (range?.slice(1) ?? []).map(Number) as [number, number, number, number];
  const signed = Buffer.concat([pdf.subarray(a, a + b), pdf.subarray(c, c + d)]);
  // All of the gap's hex, zero padding included: the BER parser stops at the signature's own length
  // (stripping trailing "00" pairs would also cut a signature whose last byte is zero, one in 256).
  const der = Buffer.from(pdf.subarray(a + b + 1, c - 1).toString('latin1'), 'hex');
  const info = new pkijs.ContentInfo({ schema: asn1js.fromBER(new Uint8Array(der).buffer).result });
  const signedData = new pkijs.SignedData({ schema: info.content });
  try {
    return await signedData.verify({ signer: 0, data: new Uint8Array(signed).buffer, checkChain: false });
  } catch {
    return false;
  }
}

beforeAll(async () => {
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as never }));
  roles = await createRoleAccounts(app.db.sql);
  student = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Jordan', lastName: 'Examplesson' });
  await publishTemplate(roles.admin);
});

describe('the whole flow', () => {
  let id: string;
  let token: string;
  let sealed: Buffer;

  test('sent to a student: the email carries a one-time link, the answer does not', async () => {
    const sent = await sendTo({ studentId: student.id });
    expect(sent.status).toBe('pending');
    expect(JSON.stringify(sent)).not.toMatch(/token/i);
    id = sent.id;
    token = await signingTokenFor(app.db.sql, student.email);
  });

  test('counter-signing before the student signed is a 409', async () => {
    const early = await post(
      `/agreements/${id}/countersign`,
      { typedName: 'Rita Registrar', signaturePng: png },
      roles.registrar,
    );
    expect(early.status).toBe(409);
  });

  test('opening shows the schema, the school part and the ESIGN disclosure; signing needs consent first', async () => {
    const opened = await post('/agreements/signing/open', { token });
    expect(opened.status).toBe(200);
    expect(opened.headers.get('cache-control')).toContain('no-store');
    const body = (await opened.json()) as {
      status: string;
      schema: { sections: unknown[] };
      disclosure: { version: string };
    };
    expect(body.status).toBe('pending');
    expect(body.schema.sections.length).toBeGreaterThan(5);
    expect(body.disclosure.version).toBe('2026-12-01');
    const before = await post('/agreements/signing/sign', {
      token,
      typedName: 'Jordan Examplesson',
      signaturePng: png,
      formData: {},
    });
    expect(before.status).toBe(400);
  });

  test('the portal’s nested form: invalid data refused field by field, the school part unchangeable', async () => {
    expect(
      (await post('/agreements/signing/consent', { token, disclosureVersion: '2026-12-01', accept: true })).status,
    ).toBe(200);
    const form = signerForm('Jordan', 'Examplesson', student.email);
    const bad = await post('/agreements/signing/sign', {
      token,
      typedName: 'Jordan Examplesson',
      signaturePng: png,
      formData: {
        ...form,
        student: { ...form.student, ssnLast4: '12a4', dateOfBirth: '12/04/1999', extra: 'x' },
        acknowledgements: { ...form.acknowledgements, agree: false },
      },
    });
    expect(bad.status).toBe(400);
    expect(await problemFields(bad)).toEqual(
      expect.arrayContaining([
        'body.formData.student.ssnLast4',
        'body.formData.student.dateOfBirth',
        'body.formData.student',
        'body.formData.acknowledgements.agree',
      ]),
    );
    const cheaper = await post('/agreements/signing/sign', {
      token,
      typedName: 'Jordan Examplesson',
      signaturePng: png,
      formData: { ...form, financial: { tuition: '1.00', registrationFee: '0.00' } },
    });
    expect(cheaper.status).toBe(400);
    expect(await problemFields(cheaper)).toEqual(['body.formData.financial']);
    const notPng = await post('/agreements/signing/sign', {
      token,
      typedName: 'J E',
      signaturePng: 'aGVsbG8=',
      formData: form,
    });
    expect(await problemFields(notPng)).toEqual(['body.signaturePng']);
  });

  test('signed: the link cannot sign again, but the status stays readable', async () => {
    const signed = await signAs(token, { firstName: 'Jordan', lastName: 'Examplesson', email: student.email });
    expect(signed.status).toBe(200);
    expect(((await signed.json()) as { status: string }).status).toBe('student_signed');
    const replay = await post('/agreements/signing/sign', {
      token,
      typedName: 'Jordan Examplesson',
      signaturePng: png,
      formData: signerForm('Jordan', 'Examplesson', student.email),
    });
    expect(replay.status).toBe(400);
    expect((await post('/agreements/signing/open', { token })).status).toBe(400);
    const status = await post('/agreements/signing/status', { token });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ status: 'student_signed', copyAvailable: false });
  });

  test('counter-signed by the registrar: completed, sealed, with the document hash', async () => {
    const done = await post(
      `/agreements/${id}/countersign`,
      { typedName: 'Rita Registrar', signaturePng: png },
      roles.registrar,
    );
    expect(done.status).toBe(200);
    const body = (await done.json()) as {
      status: string;
      documentSha256: string;
      pdf: { href: string; sha256: string };
    };
    expect(body.status).toBe('completed');
    expect(body.documentSha256).toMatch(/^[0-9a-f]{64}$/);
    const again = await post(
      `/agreements/${id}/countersign`,
      { typedName: 'Rita Registrar', signaturePng: png },
      roles.registrar,
    );
    expect(again.status).toBe(409);
  });

  test('the sealed PDF: the owner and staff download it; another student, an instructor, nobody cannot', async () => {
    const mine = await send('GET', `/agreements/${id}/pdf`, { as: student });
    expect(mine.status).toBe(200);
    expect(mine.headers.get('content-type')).toBe('application/pdf');
    sealed = Buffer.from(await mine.arrayBuffer());
    expect(sealed.subarray(0, 5).toString()).toBe('%PDF-');
    const digest = mine.headers.get('repr-digest');
    expect(digest).toBe(`sha-256=:${createHash('sha256').update(sealed).digest('base64')}:`);
    expect((await send('GET', `/agreements/${id}/pdf`, { as: roles.admin })).status).toBe(200);
    const other = await createTestUser(app.db.sql, { roles: ['student'] });
    expect((await send('GET', `/agreements/${id}/pdf`, { as: other })).status).toBe(404);
    expect((await send('GET', `/agreements/${id}`, { as: other })).status).toBe(404);
    expect((await send('GET', `/agreements/${id}/pdf`, { as: roles.instructor })).status).toBe(403);
    expect((await send('GET', `/agreements/${id}/pdf`)).status).toBe(401);
    const copy = await post('/agreements/signing/copy', { token });
    expect(copy.status).toBe(200);
    expect(Buffer.from(await copy.arrayBuffer()).equals(sealed)).toBe(true);
  });

  test('verification: the sealed file is ours and unchanged; one changed byte is refused, also by pkijs', async () => {
    const ok = await post('/agreements/verify', { pdf: sealed.toString('base64') });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ verified: true, ours: true, unchanged: true, agreement: { id } });
    expect(await cmsSignatureValid(sealed)).toBe(true);
    const tampered = Buffer.from(sealed);
    // Inside the signed ranges (the signature's own bytes are the only part not covered).
    const firstRange = Number(/\/ByteRange \[0 (\d+)/.exec(sealed.toString('latin1'))?.[1]);
    const at = Math.floor(firstRange / 2);
    tampered[at] = (tampered[at] ?? 0) ^ 0x01;
    const no = await post('/agreements/verify', { pdf: tampered.toString('base64') });
    expect(await no.json()).toMatchObject({ verified: false, unchanged: false, agreement: null });
    expect(await cmsSignatureValid(tampered)).toBe(false);
    const plain = await post('/agreements/verify', { pdf: Buffer.from('%PDF-1.7\n%%EOF').toString('base64') });
    expect(await plain.json()).toMatchObject({ verified: false, sealed: false });
    expect(await problemFields(await post('/agreements/verify', { pdf: 'bm90IGEgcGRm' }))).toEqual(['body.pdf']);
  });

  test('the trail lists every step with who and from where', async () => {
    const trail = await send('GET', `/agreements/${id}/events`, { as: roles.registrar });
    const types = ((await trail.json()) as { items: { type: string }[] }).items.map((event) => event.type);
    expect(types).toEqual([
      'sent',
      'viewed',
      'consented',
      'consented', // consent asked again before the valid submission: each is recorded
      'signed',
      'counter_signed',
      'completed',
      'downloaded',
      'downloaded',
      'downloaded',
    ]);
    expect((await send('GET', `/agreements/${id}/events`, { as: student })).status).toBe(403);
  });

  test('no plaintext personal data in the database or in the blob', async () => {
    const needles = ['Examplesson', '4321', '1999-04-12', 'Peachtree', student.email];
    for (const table of [
      'signed_documents',
      'document_signatures',
      'document_events',
      'leads',
      'stored_files',
      'outbox_messages',
    ]) {
      const rows = await app.db.sql.unsafe(`select * from ${table}`);
      const text = JSON.stringify(rows);
      for (const needle of needles) expect(text.includes(needle), `${needle} in ${table}`).toBe(false);
    }
    const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
    const container = new BlobServiceClient(config().BLOB_ENDPOINT as string, credential).getContainerClient(
      `${config().BLOB_CONTAINER_PREFIX}retained`,
    );
    for await (const item of container.listBlobsFlat()) {
      const raw = await container.getBlobClient(item.name).downloadToBuffer();
      expect(raw.includes('%PDF')).toBe(false);
      expect(raw.includes(sealed.subarray(0, 200))).toBe(false);
    }
  });
});

describe('links and states', () => {
  test('an applicant by email becomes a lead; without counter-signature signing completes the agreement', async () => {
    const templateId = await publishTemplate(roles.admin, { counterSign: false, name: 'Short Agreement' });
    const sent = await sendTo(
      { email: 'ana.applicant@example.test', firstName: 'Ana', lastName: 'Applicant' },
      templateId,
    );
    const token = await signingTokenFor(app.db.sql, 'ana.applicant@example.test');
    const signed = await signAs(token, {
      firstName: 'Ana',
      lastName: 'Applicant',
      email: 'ana.applicant@example.test',
    });
    expect(((await signed.json()) as { status: string }).status).toBe('completed');
    const [lead] = await app.db.sql`select d.lead_id from signed_documents d where d.id = ${sent.id}`;
    expect(lead?.lead_id).toBeTruthy();
    expect((await post('/agreements/signing/copy', { token })).status).toBe(200);
  });

  test('an expired link, a replaced link and a voided agreement cannot be opened', async () => {
    const first = await sendTo({ studentId: student.id });
    const oldToken = await signingTokenFor(app.db.sql, student.email);
    expect((await post(`/agreements/${first.id}/resend`, {}, roles.registrar)).status).toBe(200);
    const newToken = await signingTokenFor(app.db.sql, student.email);
    expect(newToken).not.toBe(oldToken);
    expect((await post('/agreements/signing/open', { token: oldToken })).status).toBe(400);
    expect((await post('/agreements/signing/open', { token: newToken })).status).toBe(200);
    const voided = await post(
      `/agreements/${first.id}/void`,
      { reason: 'Sent to the wrong programme' },
      roles.registrar,
    );
    expect(voided.status).toBe(200);
    expect((await post('/agreements/signing/open', { token: newToken })).status).toBe(409);
    expect((await post(`/agreements/${first.id}/void`, { reason: 'again' }, roles.registrar)).status).toBe(409);

    await sendTo({ studentId: student.id });
    const expiring = await signingTokenFor(app.db.sql, student.email);
    await app.db
      .sql`update one_time_tokens set issued_at = now() - interval '15 days', expires_at = now() - interval '1 day'
                      where purpose = 'agreement_signing' and used_at is null`;
    expect((await post('/agreements/signing/open', { token: expiring })).status).toBe(400);
    expect((await post('/agreements/signing/open', { token: 'x'.repeat(43) })).status).toBe(400);
  });

  test('bad bodies: unknown recipients, huge and malformed bodies are 4xx problems', async () => {
    expect(
      (await post('/agreements', { recipient: { studentId: roles.admin.id }, prefill: SCHOOL_PART }, roles.registrar))
        .status,
    ).toBe(404);
    const noPrefill = await post('/agreements', { recipient: { studentId: student.id } }, roles.registrar);
    expect(noPrefill.status).toBe(400);
    expect(await problemFields(noPrefill)).toContain('body.prefill.program');
    const huge = await send('POST', '/agreements/signing/sign', {
      body: { token: 'a', formData: { x: 'y'.repeat(600_000) } },
    });
    expect(huge.status).toBe(413);
    const malformed = await send('POST', '/agreements/signing/open', { body: '{"token": ' });
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get('content-type')).toContain('application/problem+json');
    const deep = await post('/agreements/signing/sign', {
      token: 'a'.repeat(43),
      typedName: 'A B',
      signaturePng: png,
      formData: { student: { a: { b: { c: {} } } } },
    });
    expect(deep.status).toBe(400);
  });
});
