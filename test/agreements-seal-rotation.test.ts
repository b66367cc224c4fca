// Rotating the seal certificate: agreements sealed with the previous certificate still verify once it
// is listed in PDF_SEAL_PREVIOUS_CERTIFICATES (certificate only, no key), and only then; new agreements
// are sealed with the new one; a listed stranger's certificate makes nothing ours; a tampered old file
// is still refused; a malformed entry is refused by name. Over HTTP, on PostgreSQL and Azurite.
import { beforeAll, describe, expect, test } from 'vitest';
import { resetConfigForTests } from '../lib/config';
import { certificateOfP12, developmentSealCertificate, resetSealIdentityForTests } from '../lib/pdf-seal';
import { publishTemplate, SCHOOL_PART, signAs, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';

const oldP12 = developmentSealCertificate();
const newP12 = developmentSealCertificate();
const strangerP12 = developmentSealCertificate();
const app = useTestApp({
  env: { PDF_SEAL_CERTIFICATE: oldP12.toString('base64'), PDF_SEAL_PREVIOUS_CERTIFICATES: '' },
});
let roles: RoleAccounts;
let templateId: string;

const post = (path: string, body: unknown) => send('POST', path, { body });

function rotate(env: { current: Buffer; previous: string[] }) {
  process.env.PDF_SEAL_CERTIFICATE = env.current.toString('base64');
  process.env.PDF_SEAL_PREVIOUS_CERTIFICATES = env.previous.join(',');
  resetConfigForTests();
  resetSealIdentityForTests();
}

/** An applicant's agreement (no counter-signature), signed and sealed; its sealed copy. */
async function sealedAgreement(email: string): Promise<{ id: string; pdf: Buffer }> {
  const sent = await send('POST', '/agreements', {
    as: roles.registrar,
    body: { templateId, recipient: { email, firstName: 'Rota', lastName: 'Tion' }, prefill: SCHOOL_PART },
  });
  expect(sent.status).toBe(201);
  const { id } = (await sent.json()) as { id: string };
  const token = await signingTokenFor(app.db.sql, email);
  const signed = await signAs(token, { firstName: 'Rota', lastName: 'Tion', email });
  expect(signed.status).toBe(200);
  const copy = await post('/agreements/signing/copy', { token });
  expect(copy.status).toBe(200);
  return { id, pdf: Buffer.from(await copy.arrayBuffer()) };
}

async function verify(pdf: Buffer) {
  const response = await post('/agreements/verify', { pdf: pdf.toString('base64') });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    verified: boolean;
    ours: boolean;
    unchanged: boolean;
    agreement: { id: string } | null;
  };
}

beforeAll(async () => {
  resetSealIdentityForTests();
  roles = await createRoleAccounts(app.db.sql);
  templateId = await publishTemplate(roles.admin, { counterSign: false, name: 'Rotation Agreement' });
});

describe('seal certificate rotation', () => {
  let old: { id: string; pdf: Buffer };

  test('sealed with the first certificate: verified', async () => {
    old = await sealedAgreement('first.seal@example.test');
    expect(await verify(old.pdf)).toMatchObject({ verified: true, ours: true, agreement: { id: old.id } });
  });

  test('after rotating without listing the old certificate, the old file is not ours', async () => {
    rotate({ current: newP12, previous: [] });
    expect(await verify(old.pdf)).toMatchObject({ verified: false, ours: false, agreement: null });
  });

  test('a stranger’s certificate in the list makes nothing ours', async () => {
    rotate({ current: newP12, previous: [certificateOfP12(strangerP12)] });
    expect(await verify(old.pdf)).toMatchObject({ verified: false, ours: false });
  });

  test('with the old certificate listed, old and new sealed files verify; a tampered old one does not', async () => {
    rotate({ current: newP12, previous: [certificateOfP12(strangerP12), certificateOfP12(oldP12)] });
    expect(await verify(old.pdf)).toMatchObject({ verified: true, ours: true, agreement: { id: old.id } });
    const fresh = await sealedAgreement('second.seal@example.test');
    expect(await verify(fresh.pdf)).toMatchObject({ verified: true, ours: true, agreement: { id: fresh.id } });
    // The new file is sealed with the new certificate: without it trusted (only the old listed as current), it is not ours.
    rotate({ current: oldP12, previous: [] });
    expect(await verify(fresh.pdf)).toMatchObject({ verified: false, ours: false });
    rotate({ current: newP12, previous: [certificateOfP12(oldP12)] });
    const tampered = Buffer.from(old.pdf);
    const at = Math.floor(Number(/\/ByteRange \[0 (\d+)/.exec(old.pdf.toString('latin1'))?.[1]) / 2);
    tampered[at] = (tampered[at] ?? 0) ^ 0x01;
    expect(await verify(tampered)).toMatchObject({ verified: false, unchanged: false, agreement: null });
  });

  test('a malformed list is refused by name', async () => {
    const { parseConfig } = await import('../lib/config');
    const base = { APP_ENV: 'development', DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };
    expect(() => parseConfig({ ...base, PDF_SEAL_PREVIOUS_CERTIFICATES: 'not base64!' })).toThrow(
      /PDF_SEAL_PREVIOUS_CERTIFICATES/,
    );
    // Base64 that is no certificate: refused at start, not taken as trusting nothing.
    const notACertificate = Buffer.from('no certificate').toString('base64');
    expect(() =>
      parseConfig({ ...base, PDF_SEAL_PREVIOUS_CERTIFICATES: `${certificateOfP12(oldP12)},${notACertificate}` }),
    ).toThrow(/PDF_SEAL_PREVIOUS_CERTIFICATES/);
    expect(
      parseConfig({ ...base, PDF_SEAL_PREVIOUS_CERTIFICATES: certificateOfP12(oldP12) }).PDF_SEAL_PREVIOUS_CERTIFICATES,
    ).toHaveLength(1);
  });
});
