// The ESIGN Act's paper alternatives of an agreement, over HTTP on PostgreSQL: the signer asks for a
// paper copy (recorded once, before or after signing, visible to staff in the agreement and the list);
// the signer withdraws consent to sign electronically before signing (the link is spent, the agreement
// is `paper_required`: no signing, no resend, no counter-signature, no reminder; staff void it once
// paper is done); a consent to an earlier disclosure version must be given again before signing.
// Also the ugly cases: replayed requests, expired links, someone else's link, withdrawal after signing,
// malformed tokens.
import { randomBytes } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { publishTemplate, SCHOOL_PART, signAs, signaturePng, signerForm, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;
const CURRENT = '2026-12-01';

const post = (path: string, body: unknown, as?: TestUser) => send('POST', path, { body, ...(as ? { as } : {}) });
const problemFields = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];

interface StaffView {
  id: string;
  status: string;
  consentVersion: string | null;
  paper: { consentWithdrawnAt: string | null; copyRequestedAt: string | null };
}

/** A student with a name the signing form accepts (letters only) and a unique address. */
const newStudent = () =>
  createTestUser(app.db.sql, {
    roles: ['student'],
    firstName: 'Jordan',
    lastName: `Ex${[...randomBytes(6)].map((byte) => String.fromCharCode(97 + (byte % 26))).join('')}`,
  });

/** A new student with an agreement sent to them; returns both and the emailed token. */
async function agreementForNewStudent() {
  const student = await newStudent();
  const sent = await post(
    '/agreements',
    { recipient: { studentId: student.id }, prefill: SCHOOL_PART },
    roles.registrar,
  );
  expect(sent.status).toBe(201);
  const { id } = (await sent.json()) as { id: string };
  return { id, student, token: await signingTokenFor(app.db.sql, student.email) };
}

const staffView = async (id: string) => {
  const response = await send('GET', `/agreements/${id}`, { as: roles.registrar });
  expect(response.status).toBe(200);
  return (await response.json()) as StaffView;
};

const trailOf = (id: string) =>
  app.db.sql<{ event_type: string; details: Record<string, string> | null }[]>`
    select event_type, details from document_events where document_id = ${id} order by id`;

const consent = (token: string, disclosureVersion = CURRENT) =>
  post('/agreements/signing/consent', { token, disclosureVersion, accept: true });

const signWith = (token: string, student: TestUser) =>
  post('/agreements/signing/sign', {
    token,
    typedName: `${student.firstName} ${student.lastName}`,
    signaturePng: signaturePng().toString('base64'),
    formData: signerForm(student.firstName, student.lastName, student.email),
  });

async function listedIds(query: string): Promise<string[]> {
  const response = await send('GET', `/agreements?${query}&limit=200`, { as: roles.registrar });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: { id: string }[] }).items.map((item) => item.id);
}

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  await publishTemplate(roles.admin);
});

// Each test stays well inside the per-source limit of the signing routes on its own.
beforeEach(async () => {
  await app.db.sql`delete from rate_limit_buckets where key like 'agreement-signing:%'`;
});

describe('a paper copy', () => {
  test('asked for before signing: recorded once however often it is asked, seen by staff, signing goes on', async () => {
    const { id, student, token } = await agreementForNewStudent();
    const other = await agreementForNewStudent();
    expect((await post('/agreements/signing/open', { token })).status).toBe(200);

    const asked = await post('/agreements/signing/paper-copy', { token });
    expect(asked.status).toBe(200);
    expect(asked.headers.get('cache-control')).toContain('no-store');
    const first = (await asked.json()) as { paperCopyRequestedAt: string; status: string };
    expect(first.status).toBe('viewed');
    expect(Date.parse(first.paperCopyRequestedAt)).not.toBeNaN();

    // A replayed request changes nothing: the same time, one event.
    const again = await post('/agreements/signing/paper-copy', { token });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { paperCopyRequestedAt: string }).paperCopyRequestedAt).toBe(
      first.paperCopyRequestedAt,
    );
    const events = (await trailOf(id)).filter((event) => event.event_type === 'paper_copy_requested');
    expect(events).toEqual([{ event_type: 'paper_copy_requested', details: { status: 'viewed' } }]);

    expect((await staffView(id)).paper).toEqual({
      consentWithdrawnAt: null,
      copyRequestedAt: first.paperCopyRequestedAt,
    });
    const asking = await listedIds('paperCopyRequested=true');
    expect(asking).toContain(id);
    expect(asking).not.toContain(other.id);
    const notAsking = await listedIds('paperCopyRequested=false');
    expect(notAsking).toContain(other.id);
    expect(notAsking).not.toContain(id);

    // Asking for paper is not withdrawing consent: the signer may still sign electronically.
    expect((await consent(token)).status).toBe(200);
    const signed = await signWith(token, student);
    expect(signed.status).toBe(200);
    // And after signing, by the same (spent) link, it still answers with the first request's time.
    const after = await post('/agreements/signing/paper-copy', { token });
    expect(after.status).toBe(200);
    expect(((await after.json()) as { paperCopyRequestedAt: string }).paperCopyRequestedAt).toBe(
      first.paperCopyRequestedAt,
    );
  });

  test('the list filter takes true or false only', async () => {
    for (const value of ['yes', '1', 'TRUE', "true' or '1'='1", '']) {
      const response = await send('GET', `/agreements?paperCopyRequested=${encodeURIComponent(value)}`, {
        as: roles.registrar,
      });
      expect(response.status).toBe(400);
      expect(await problemFields(response)).toEqual(['query.paperCopyRequested']);
    }
  });

  test('asked for after signing, on an agreement completed without counter-signature', async () => {
    await publishTemplate(roles.admin, { counterSign: false, name: 'Paper Copy Agreement' });
    const student = await newStudent();
    const templates = await send('GET', '/agreements/templates', { as: roles.registrar });
    const template = (
      (await templates.json()) as { items: { id: string; name: string; active: boolean }[] }
    ).items.find((item) => item.name === 'Paper Copy Agreement' && item.active);
    const sent = await post(
      '/agreements',
      { templateId: template?.id, recipient: { studentId: student.id }, prefill: SCHOOL_PART },
      roles.registrar,
    );
    const { id } = (await sent.json()) as { id: string };
    const token = await signingTokenFor(app.db.sql, student.email);
    expect(((await (await signAs(token, student)).json()) as { status: string }).status).toBe('completed');
    const asked = await post('/agreements/signing/paper-copy', { token });
    expect(asked.status).toBe(200);
    expect(((await asked.json()) as { status: string }).status).toBe('completed');
    expect((await staffView(id)).paper.copyRequestedAt).not.toBeNull();
  });

  test('not by an expired link, and a voided agreement is closed (409)', async () => {
    const expiring = await agreementForNewStudent();
    await app.db
      .sql`update one_time_tokens set issued_at = now() - interval '15 days', expires_at = now() - interval '1 minute'
                      where signed_document_id = ${expiring.id}`;
    const late = await post('/agreements/signing/paper-copy', { token: expiring.token });
    expect(late.status).toBe(400);
    expect(await problemFields(late)).toEqual(['body.token']);
    expect((await staffView(expiring.id)).paper.copyRequestedAt).toBeNull();

    const voided = await agreementForNewStudent();
    expect((await post(`/agreements/${voided.id}/void`, { reason: 'Wrong programme' }, roles.registrar)).status).toBe(
      200,
    );
    expect((await post('/agreements/signing/paper-copy', { token: voided.token })).status).toBe(409);
    expect((await staffView(voided.id)).paper.copyRequestedAt).toBeNull();
  });
});

describe('withdrawing consent to sign electronically', () => {
  test('before signing: the agreement needs paper and can no longer be e-signed, resent or counter-signed', async () => {
    const { id, student, token } = await agreementForNewStudent();
    expect((await post('/agreements/signing/open', { token })).status).toBe(200);
    expect((await consent(token)).status).toBe(200);

    const withdrawn = await post('/agreements/signing/withdraw-consent', { token });
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.headers.get('cache-control')).toContain('no-store');
    const body = (await withdrawn.json()) as { status: string; consentWithdrawnAt: string | null };
    expect(body.status).toBe('paper_required');
    expect(body.consentWithdrawnAt).not.toBeNull();

    // The link is spent for signing: every e-signing step refuses it.
    expect((await post('/agreements/signing/open', { token })).status).toBe(400);
    expect((await consent(token)).status).toBe(400);
    expect((await signWith(token, student)).status).toBe(400);
    // A replayed withdrawal is refused and records nothing more.
    expect((await post('/agreements/signing/withdraw-consent', { token })).status).toBe(409);
    const trail = await trailOf(id);
    expect(trail.filter((event) => event.event_type === 'consent_withdrawn')).toEqual([
      { event_type: 'consent_withdrawn', details: { consentedVersion: CURRENT } },
    ]);
    expect(trail.map((event) => event.event_type)).not.toContain('signed');

    // The signer still reads the status and may ask for the paper copy with it.
    const status = await post('/agreements/signing/status', { token });
    expect(((await status.json()) as { status: string }).status).toBe('paper_required');
    expect((await post('/agreements/signing/paper-copy', { token })).status).toBe(200);

    // Staff see it needs paper, in the agreement and in the list.
    const view = await staffView(id);
    expect(view.status).toBe('paper_required');
    expect(view.paper.consentWithdrawnAt).toBe(body.consentWithdrawnAt);
    expect(await listedIds('status=paper_required')).toContain(id);
    expect((await post(`/agreements/${id}/resend`, {}, roles.registrar)).status).toBe(409);
    const png = signaturePng().toString('base64');
    expect(
      (await post(`/agreements/${id}/countersign`, { typedName: 'Rita Registrar', signaturePng: png }, roles.registrar))
        .status,
    ).toBe(409);
    // Once the paper agreement is dealt with, staff close this one.
    const voided = await post(`/agreements/${id}/void`, { reason: 'Signed on paper' }, roles.registrar);
    expect(voided.status).toBe(200);
    expect(((await voided.json()) as { status: string }).status).toBe('voided');
  });

  test('also without having consented; the trail then names no consented version', async () => {
    const { id, token } = await agreementForNewStudent();
    const withdrawn = await post('/agreements/signing/withdraw-consent', { token });
    expect(withdrawn.status).toBe(200);
    expect((await trailOf(id)).at(-1)).toEqual({ event_type: 'consent_withdrawn', details: {} });
  });

  test('after signing it is refused (409): a withdrawal does not affect a signed document', async () => {
    const { id, student, token } = await agreementForNewStudent();
    expect((await signAs(token, student)).status).toBe(200);
    const late = await post('/agreements/signing/withdraw-consent', { token });
    expect(late.status).toBe(409);
    const view = await staffView(id);
    expect(view.status).toBe('student_signed');
    expect(view.paper.consentWithdrawnAt).toBeNull();
  });

  test('an expired link withdraws nothing', async () => {
    const { id, token } = await agreementForNewStudent();
    await app.db
      .sql`update one_time_tokens set issued_at = now() - interval '15 days', expires_at = now() - interval '1 minute' where signed_document_id = ${id}`;
    const late = await post('/agreements/signing/withdraw-consent', { token });
    expect(late.status).toBe(400);
    expect(await problemFields(late)).toEqual(['body.token']);
    expect((await staffView(id)).status).toBe('pending');
  });

  test('a link acts on its own agreement only: someone else’s link withdraws theirs, not mine', async () => {
    const mine = await agreementForNewStudent();
    const theirs = await agreementForNewStudent();
    expect((await post('/agreements/signing/withdraw-consent', { token: theirs.token })).status).toBe(200);
    expect((await staffView(theirs.id)).status).toBe('paper_required');
    expect((await staffView(mine.id)).status).toBe('pending');
    expect((await post('/agreements/signing/open', { token: mine.token })).status).toBe(200);
    // An earlier link of mine, replaced by a resend, is dead for withdrawal too.
    expect((await post(`/agreements/${mine.id}/resend`, {}, roles.registrar)).status).toBe(200);
    expect((await post('/agreements/signing/withdraw-consent', { token: mine.token })).status).toBe(400);
    expect((await staffView(mine.id)).status).toBe('viewed');
  });

  test('malformed bodies are 400 problems naming the field', async () => {
    for (const body of [
      { token: 42 },
      { token: "' or 1=1 --" },
      { token: `${'a'.repeat(42)}\u0000` },
      { token: 'x'.repeat(101) },
      {},
      { token: 'a'.repeat(43), extra: true },
    ]) {
      const response = await post('/agreements/signing/withdraw-consent', body);
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect((await problemFields(response)).length).toBeGreaterThan(0);
    }
  });

  test('a withdrawn agreement is neither reminded nor expired by the timer (an open one beside it is)', async () => {
    const withdrawn = await agreementForNewStudent();
    const open = await agreementForNewStudent();
    expect((await post('/agreements/signing/withdraw-consent', { token: withdrawn.token })).status).toBe(200);
    const { remindAndExpireAgreements } = await import('../lib/agreement-reminders');
    const both = [withdrawn.id, open.id];
    // Eight days after sending, the link still valid: reminder days 3 and 7 have passed.
    await app.db
      .sql`update signed_documents set link_sent_at = link_sent_at - interval '8 days' where id in ${app.db.sql(both)}`;
    await remindAndExpireAgreements(app.db.sql);
    expect((await trailOf(open.id)).map((event) => event.event_type)).toContain('reminded');
    expect((await trailOf(withdrawn.id)).map((event) => event.event_type)).not.toContain('reminded');
    // Then the link's time is up.
    await app.db
      .sql`update signed_documents set link_expires_at = now() - interval '1 minute' where id in ${app.db.sql(both)}`;
    await remindAndExpireAgreements(app.db.sql);
    expect((await staffView(open.id)).status).toBe('expired');
    expect((await staffView(withdrawn.id)).status).toBe('paper_required');
  });
});

describe('consent again when the disclosure changed', () => {
  test('a consent to an earlier version must be given again before signing; the trail keeps both', async () => {
    const { id, student, token } = await agreementForNewStudent();
    expect((await post('/agreements/signing/open', { token })).status).toBe(200);
    expect((await consent(token)).status).toBe(200);
    // As if the signer had consented under the disclosure in force before this one.
    await app.db.sql`update signed_documents set consent_version = '2025-06-01' where id = ${id}`;

    const opened = await post('/agreements/signing/open', { token });
    const view = (await opened.json()) as {
      consented: boolean;
      reconsentRequired: boolean;
      disclosure: { version: string };
    };
    expect(view).toMatchObject({ consented: false, reconsentRequired: true, disclosure: { version: CURRENT } });

    const early = await signWith(token, student);
    expect(early.status).toBe(400);
    expect(await problemFields(early)).toEqual(['body.token']);
    const stale = await consent(token, '2025-06-01');
    expect(stale.status).toBe(400);
    expect(await problemFields(stale)).toEqual(['body.disclosureVersion']);

    expect((await consent(token)).status).toBe(200);
    const reopened = (await (await post('/agreements/signing/open', { token })).json()) as {
      consented: boolean;
      reconsentRequired: boolean;
    };
    expect(reopened).toMatchObject({ consented: true, reconsentRequired: false });
    const consents = (await trailOf(id)).filter((event) => event.event_type === 'consented');
    expect(consents.map((event) => event.details)).toEqual([
      { disclosureVersion: CURRENT },
      { disclosureVersion: CURRENT, previousVersion: '2025-06-01' },
    ]);
    expect((await signWith(token, student)).status).toBe(200);
    expect((await staffView(id)).consentVersion).toBe(CURRENT);
  });

  test('a first consent is no re-consent', async () => {
    const { token } = await agreementForNewStudent();
    const opened = (await (await post('/agreements/signing/open', { token })).json()) as { reconsentRequired: boolean };
    expect(opened.reconsentRequired).toBe(false);
  });
});
