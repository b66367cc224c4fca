// Leads over HTTP on PostgreSQL: applicants an agreement went to by address are listed by admissions
// (newest first, paged by the one cursor mechanism, filtered by status; by exact address in a search
// body), read one by one, and converted into a student once one of their agreements is completed: a
// pending account with an invitation made from the lead's own encrypted data, or the student account
// the address (or a named id) already is, never a second account. The converted student then reads the
// agreement they signed as an applicant; nobody else does. The conversion's audit row names the lead.
// Ugly cases: roles that may not, unknown and someone else's ids, tampered cursors, strict filters,
// conversion before completion and twice.
import { randomBytes, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { decrypt, emailBlindIndex } from '../lib/crypto';
import { publishTemplate, SCHOOL_PART, signAs, signingTokenFor } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { messagesTo } from './helpers/outbox';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;

const post = (path: string, body: unknown, as?: TestUser) => send('POST', path, { body, ...(as ? { as } : {}) });
const problemFields = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];
const letters = (n: number) => [...randomBytes(n)].map((byte) => String.fromCharCode(97 + (byte % 26))).join('');

interface LeadView {
  id: string;
  firstName: string;
  lastName: string;
  email: string;
  phone: string | null;
  status: string;
  agreements: { total: number; completed: number };
  studentId: string | null;
  convertedAt: string | null;
  accountCreated?: boolean;
}

interface Applicant {
  firstName: string;
  lastName: string;
  email: string;
}

const newApplicant = (email = `applicant.${letters(10)}@example.test`): Applicant => ({
  firstName: 'Ana',
  lastName: `Ap${letters(8)}`,
  email,
});

/** Sends an agreement to an address (which makes the lead); returns the agreement and lead ids. */
async function sendToAddress(applicant: Applicant) {
  const sent = await post(
    '/agreements',
    { recipient: { ...applicant, phone: '+1 404 555 0199' }, prefill: SCHOOL_PART },
    roles.admissions_counselor,
  );
  expect(sent.status).toBe(201);
  const body = (await sent.json()) as { id: string; recipient: { leadId: string } };
  return { agreementId: body.id, leadId: body.recipient.leadId };
}

/** A lead whose agreement the applicant signed (and so completed: this file's template needs no counter-signature). */
async function leadWithCompletedAgreement(applicant = newApplicant()) {
  const sent = await sendToAddress(applicant);
  const signed = await signAs(await signingTokenFor(app.db.sql, applicant.email), applicant);
  expect(((await signed.json()) as { status: string }).status).toBe('completed');
  return { ...sent, applicant };
}

const convert = (leadId: string, body: unknown = {}, as: TestUser = roles.registrar) =>
  post(`/leads/${leadId}/conversion`, body, as);

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  await publishTemplate(roles.admin, { counterSign: false });
});

describe('the list and one lead', () => {
  test('newest first with decrypted names, paged by cursor with a Link header, no-store', async () => {
    const applicants = [newApplicant(), newApplicant(), newApplicant()];
    const ids: string[] = [];
    for (const applicant of applicants) ids.push((await sendToAddress(applicant)).leadId);

    const first = await send('GET', '/leads?limit=2', { as: roles.admissions_counselor });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toContain('no-store');
    const page1 = (await first.json()) as { items: LeadView[]; next: string | null };
    expect(page1.items.map((lead) => lead.id)).toEqual([ids[2], ids[1]]);
    expect(page1.items[0]).toMatchObject({
      firstName: applicants[2]?.firstName,
      lastName: applicants[2]?.lastName,
      email: applicants[2]?.email,
      phone: '+1 404 555 0199',
      status: 'new',
      agreements: { total: 1, completed: 0 },
      studentId: null,
    });
    expect(page1.next).toEqual(expect.any(String));
    expect(first.headers.get('link')).toContain('rel="next"');
    const second = await send('GET', `/leads?limit=2&cursor=${page1.next}`, { as: roles.admissions_manager });
    const page2 = (await second.json()) as { items: LeadView[] };
    expect(page2.items[0]?.id).toBe(ids[0]);
  });

  test('tampered cursors, unknown filters and bad values are 400s naming the field', async () => {
    const forged = Buffer.from(JSON.stringify(["2026-01-01T00:00:00.000000Z' or 1=1 --", randomUUID()])).toString(
      'base64url',
    );
    for (const [query, field] of [
      [`cursor=${forged}`, 'query.cursor'],
      ['cursor=not-a-cursor', 'query.cursor'],
      ['status=prospect', 'query.status'],
      ['limit=0x10', 'query.limit'],
      ['email=someone%40example.test', 'query'],
    ] as const) {
      const response = await send('GET', `/leads?${query}`, { as: roles.registrar });
      expect(response.status, query).toBe(400);
      expect(
        (await problemFields(response)).some((name) => name.startsWith(field)),
        query,
      ).toBe(true);
    }
  });

  test('the search takes the exact address in its body; the status filter narrows', async () => {
    const applicant = newApplicant(`Mixed.Case.${letters(8)}@Example.test`);
    const { leadId } = await sendToAddress(applicant);
    const found = await post('/leads/search', { email: applicant.email.toLowerCase() }, roles.admissions_counselor);
    expect(found.status).toBe(200);
    expect(((await found.json()) as { items: LeadView[] }).items.map((lead) => lead.id)).toEqual([leadId]);
    const none = await post('/leads/search', { email: `nobody.${letters(8)}@example.test` }, roles.registrar);
    expect(((await none.json()) as { items: LeadView[] }).items).toEqual([]);
    // An SQL fragment is just an address nobody has; a wrong type names the field.
    const fragment = await post('/leads/search', { email: "x' or '1'='1", status: 'new' }, roles.registrar);
    expect(fragment.status).toBe(200);
    expect(((await fragment.json()) as { items: LeadView[] }).items).toEqual([]);
    const wrongType = await post('/leads/search', { email: 42 }, roles.registrar);
    expect(wrongType.status).toBe(400);
    expect(await problemFields(wrongType)).toEqual(['body.email']);
    const converted = await send('GET', '/leads?status=converted', { as: roles.registrar });
    const items = ((await converted.json()) as { items: LeadView[] }).items;
    expect(items.every((lead) => lead.status === 'converted')).toBe(true);
    expect(items.map((lead) => lead.id)).not.toContain(leadId);
  });

  test('one lead by id; an unknown id is a 404, a malformed one a 400', async () => {
    const { leadId } = await sendToAddress(newApplicant());
    const one = await send('GET', `/leads/${leadId}`, { as: roles.admissions_manager });
    expect(one.status).toBe(200);
    expect(((await one.json()) as LeadView).id).toBe(leadId);
    expect((await send('GET', `/leads/${randomUUID()}`, { as: roles.registrar })).status).toBe(404);
    expect((await send('GET', '/leads/1%20or%201=1', { as: roles.registrar })).status).toBe(400);
  });

  test('only the admissions roles, the registrar and admin read leads', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    for (const who of [roles.staff, roles.instructor, roles.finance, student]) {
      expect((await send('GET', '/leads', { as: who })).status).toBe(403);
      expect((await post('/leads/search', {}, who)).status).toBe(403);
    }
    expect((await send('GET', '/leads')).status).toBe(401);
  });
});

describe('conversion into a student', () => {
  test('before an agreement is completed it is a 409; admissions may not convert (403)', async () => {
    const { leadId } = await sendToAddress(newApplicant());
    const early = await convert(leadId);
    expect(early.status).toBe(409);
    expect((await convert(leadId, {}, roles.admissions_manager)).status).toBe(403);
    expect((await convert(leadId, {}, roles.admissions_counselor)).status).toBe(403);
    const lead = (await (await send('GET', `/leads/${leadId}`, { as: roles.registrar })).json()) as LeadView;
    expect(lead.status).toBe('new');
  });

  test('a new address: a pending student account from the lead’s data, an invitation, the trail told, audited', async () => {
    const { leadId, agreementId, applicant } = await leadWithCompletedAgreement();
    const converted = await convert(leadId);
    expect(converted.status).toBe(200);
    const lead = (await converted.json()) as LeadView;
    expect(lead).toMatchObject({ status: 'converted', accountCreated: true, email: applicant.email });
    expect(lead.studentId).toEqual(expect.any(String));
    expect(lead.convertedAt).not.toBeNull();

    const [account] = await app.db.sql<{ email_ciphertext: string; last_name_ciphertext: string; status: string }[]>`
      select email_ciphertext, last_name_ciphertext, status from users where id = ${lead.studentId}`;
    expect(account?.status).toBe('pending');
    expect(decrypt(account?.email_ciphertext as string, 'users.email')).toBe(applicant.email);
    expect(decrypt(account?.last_name_ciphertext as string, 'users.last_name')).toBe(applicant.lastName);
    const [roleRow] = await app.db.sql`select role_name from user_roles where user_id = ${lead.studentId}`;
    expect(roleRow?.role_name).toBe('student');
    expect(await messagesTo(app.db.sql, 'account_invitation', applicant.email)).toHaveLength(1);

    const events = await app.db.sql<{ event_type: string; details: Record<string, string> }[]>`
      select event_type, details from document_events where document_id = ${agreementId} order by id`;
    expect(events.at(-1)).toEqual({ event_type: 'lead_converted', details: { studentId: lead.studentId } });
    const audit = await app.db.sql<{ status: number; phi: boolean; resource_ids: Record<string, string> }[]>`
      select status, phi, resource_ids from audit_log where route = 'leads/{id}/conversion' and method = 'POST'
       and resource_ids ->> 'leadId' = ${leadId}`;
    expect(audit).toEqual([
      expect.objectContaining({
        status: 200,
        phi: true,
        resource_ids: expect.objectContaining({ studentId: lead.studentId }),
      }),
    ]);

    // Twice is a 409, and nothing more is created.
    expect((await convert(leadId)).status).toBe(409);
    const accounts = await app.db
      .sql`select id from users where email_blind_index = ${emailBlindIndex(applicant.email)}`;
    expect(accounts).toHaveLength(1);
    expect(await messagesTo(app.db.sql, 'account_invitation', applicant.email)).toHaveLength(1);
  });

  test('an address that is already a student’s is linked, not duplicated; that student then reads the agreement', async () => {
    const student = await createTestUser(app.db.sql, {
      roles: ['student'],
      firstName: 'Ana',
      lastName: `St${letters(8)}`,
    });
    const { leadId, agreementId } = await leadWithCompletedAgreement({
      firstName: student.firstName,
      lastName: student.lastName,
      email: student.email,
    });
    const other = await createTestUser(app.db.sql, { roles: ['student'] });
    // Before the conversion the agreement is the lead's: the student does not reach it.
    expect((await send('GET', `/agreements/${agreementId}`, { as: student })).status).toBe(404);

    const converted = await convert(leadId, {}, roles.admin);
    expect(converted.status).toBe(200);
    expect(await converted.json()).toMatchObject({ studentId: student.id, accountCreated: false });
    const accounts = await app.db.sql`select id from users where email_blind_index = ${emailBlindIndex(student.email)}`;
    expect(accounts).toHaveLength(1);
    expect(await messagesTo(app.db.sql, 'account_invitation', student.email)).toHaveLength(0);

    expect((await send('GET', `/agreements/${agreementId}`, { as: student })).status).toBe(200);
    expect((await send('GET', `/agreements/${agreementId}/pdf`, { as: student })).status).toBe(200);
    expect((await send('GET', `/agreements/${agreementId}`, { as: other })).status).toBe(404);
    const listed = await send('GET', `/agreements?studentId=${student.id}`, { as: roles.registrar });
    expect(((await listed.json()) as { items: { id: string }[] }).items.map((item) => item.id)).toContain(agreementId);
  });

  test('linking a named student; unknown, non-student and malformed ids refused; an address held by staff is a 409', async () => {
    const { leadId } = await leadWithCompletedAgreement();
    expect((await convert(leadId, { studentId: randomUUID() })).status).toBe(404);
    expect((await convert(leadId, { studentId: roles.admin.id })).status).toBe(404);
    const malformed = await convert(leadId, { studentId: "1' or '1'='1" });
    expect(malformed.status).toBe(400);
    expect(await problemFields(malformed)).toEqual(['body.studentId']);
    const extra = await convert(leadId, { studentId: randomUUID(), email: 'x@example.test' });
    expect(extra.status).toBe(400);
    expect((await convert(randomUUID())).status).toBe(404);

    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const linked = await convert(leadId, { studentId: student.id });
    expect(linked.status).toBe(200);
    expect(await linked.json()).toMatchObject({ studentId: student.id, accountCreated: false, status: 'converted' });

    const staffAddress = await leadWithCompletedAgreement({
      firstName: 'Ana',
      lastName: `Sf${letters(8)}`,
      email: roles.instructor.email,
    });
    const refused = await convert(staffAddress.leadId);
    expect(refused.status).toBe(409);
    const lead = (await (
      await send('GET', `/leads/${staffAddress.leadId}`, { as: roles.registrar })
    ).json()) as LeadView;
    expect(lead).toMatchObject({ status: 'new', studentId: null });
  });
});
