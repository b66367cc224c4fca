// The agreement-reminders timer (functions/agreement-reminders.ts), called directly against the test
// file's PostgreSQL, with agreements sent over HTTP. Time passes by moving an agreement's dates (its
// link, its token, its trail) back by whole days, never by waiting. Reminders on days 3 and 7 (the
// defaults), once each; one for all days missed while the timer was down; none while the signer is on
// the page; a reminder's new link replaces the old and keeps its expiry; an unsigned agreement expires
// with its link, which then stops working; signed and voided ones are left alone; resend opens an
// expired agreement again.
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { beforeAll, describe, expect, test } from 'vitest';
import { publishTemplate, SCHOOL_PART, signaturePng, signerForm } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { linkTokenIn, messagesTo } from './helpers/outbox';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let roles: RoleAccounts;

const post = (path: string, body: unknown, as?: TestUser) => send('POST', path, { body, ...(as ? { as } : {}) });

/** Runs the timer as Azure would call it; returns what it logged. */
async function runTimer(): Promise<string> {
  const { agreementReminders } = await import('../functions/agreement-reminders');
  const logged: string[] = [];
  const context = new InvocationContext({
    invocationId: randomUUID(),
    functionName: 'agreement-reminders',
    logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
  });
  await agreementReminders(null, context);
  return logged.join('\n');
}

/** Moves an agreement `days` into its past: its sending, its link, its token and its trail. */
async function daysPass(id: string, days: number, parts: { trail?: boolean } = {}) {
  const sql = app.db.sql;
  const by = `${days} days`;
  await sql`update signed_documents
               set sent_at = sent_at - ${by}::interval, link_sent_at = link_sent_at - ${by}::interval,
                   link_expires_at = link_expires_at - ${by}::interval, created_at = created_at - ${by}::interval
             where id = ${id}`;
  await sql`update one_time_tokens set issued_at = issued_at - ${by}::interval, expires_at = expires_at - ${by}::interval
             where signed_document_id = ${id}`;
  if (parts.trail !== false) {
    await sql`update document_events set occurred_at = occurred_at - ${by}::interval where document_id = ${id}`;
  }
}

async function sendTo(student: TestUser): Promise<string> {
  const response = await post(
    '/agreements',
    { recipient: { studentId: student.id }, prefill: SCHOOL_PART },
    roles.registrar,
  );
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

const emailsTo = (student: TestUser) => messagesTo(app.db.sql, 'agreement_signing', student.email);

async function trailOf(id: string) {
  return app.db.sql<{ event_type: string; details: Record<string, string> | null }[]>`
    select event_type, details from document_events where document_id = ${id} order by id`;
}

async function stateOf(id: string) {
  const [row] = await app.db.sql<{ status: string; reminders_sent: number; expired_at: Date | null }[]>`
    select status, reminders_sent, expired_at from signed_documents where id = ${id}`;
  return row;
}

const opens = async (token: string) => (await post('/agreements/signing/open', { token })).status;

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  await publishTemplate(roles.admin);
});

describe('reminders', () => {
  let student: TestUser;
  let id: string;

  test('none before day 3; on day 3 one, with a new link replacing the old, and not again', async () => {
    student = await createTestUser(app.db.sql, { roles: ['student'] });
    id = await sendTo(student);
    const firstLink = linkTokenIn((await emailsTo(student))[0], 'sign');
    await daysPass(id, 2);
    expect(await runTimer()).toContain('0 reminders queued');
    expect(await emailsTo(student)).toHaveLength(1);

    await daysPass(id, 1);
    expect(await runTimer()).toContain('1 reminders queued');
    const emails = await emailsTo(student);
    expect(emails).toHaveLength(2);
    expect(emails[1]).toContain('not signed yet');
    expect(emails[1]).toContain('replaces the one in our earlier email');
    const reminderLink = linkTokenIn(emails[1], 'sign');
    expect(reminderLink).not.toBe(firstLink);
    expect(await opens(firstLink)).toBe(400);
    expect(await stateOf(id)).toMatchObject({ status: 'pending', reminders_sent: 1 });
    expect((await trailOf(id)).at(-1)).toEqual({ event_type: 'reminded', details: { reminder: '1' } });

    expect(await runTimer()).toContain('0 reminders queued');
    expect(await emailsTo(student)).toHaveLength(2);
    expect(await opens(reminderLink)).toBe(200);
  });

  test('the reminder link expires when the first one would have: a reminder never extends the time', async () => {
    const [row] = await app.db.sql<{ link: Date; token: Date }[]>`
      select d.link_expires_at as link, t.expires_at as token
        from signed_documents d join one_time_tokens t on t.signed_document_id = d.id
       where d.id = ${id}`;
    expect(row?.token.getTime()).toBe(row?.link.getTime());
    const [sent] = await app.db.sql<{ days: number }[]>`
      select extract(epoch from link_expires_at - link_sent_at) / 86400 as days from signed_documents where id = ${id}`;
    expect(Number(sent?.days)).toBeCloseTo(14, 5);
  });

  test('on day 7 the second, once; a viewed agreement is still reminded', async () => {
    await daysPass(id, 4);
    expect(await runTimer()).toContain('1 reminders queued');
    expect(await emailsTo(student)).toHaveLength(3);
    expect(await stateOf(id)).toMatchObject({ status: 'viewed', reminders_sent: 2 });
    await daysPass(id, 3);
    expect(await runTimer()).toContain('0 reminders queued');
    expect(await emailsTo(student)).toHaveLength(3);
  });

  test('a timer that was down sends one reminder for all the days it missed', async () => {
    const late = await createTestUser(app.db.sql, { roles: ['student'] });
    const lateId = await sendTo(late);
    await daysPass(lateId, 8);
    await runTimer();
    expect(await emailsTo(late)).toHaveLength(2);
    expect(await stateOf(lateId)).toMatchObject({ reminders_sent: 2 });
    expect((await trailOf(lateId)).filter((event) => event.event_type === 'reminded')).toEqual([
      { event_type: 'reminded', details: { reminder: '2' } },
    ]);
  });

  test('a signer who opened the agreement within the hour is not sent a new link under their feet', async () => {
    const busy = await createTestUser(app.db.sql, { roles: ['student'] });
    const busyId = await sendTo(busy);
    const link = linkTokenIn((await emailsTo(busy))[0], 'sign');
    // Sent three days ago, opened just now.
    await daysPass(busyId, 3);
    expect(await opens(link)).toBe(200);
    await runTimer();
    expect(await emailsTo(busy)).toHaveLength(1);
    expect(await opens(link)).toBe(200);
    await app.db.sql`update document_events set occurred_at = occurred_at - interval '61 minutes'
                      where document_id = ${busyId} and event_type = 'viewed'`;
    await runTimer();
    expect(await emailsTo(busy)).toHaveLength(2);
  });
});

describe('expiry', () => {
  test('an unsigned agreement expires with its link: the link stops working, the list says expired', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const id = await sendTo(student);
    const link = linkTokenIn((await emailsTo(student))[0], 'sign');
    await daysPass(id, 13);
    await runTimer();
    expect(await stateOf(id)).toMatchObject({ status: 'pending' });
    await daysPass(id, 1);
    expect(await runTimer()).toMatch(/\b1 agreements expired/);
    expect((await stateOf(id))?.status).toBe('expired');
    expect((await stateOf(id))?.expired_at).toBeInstanceOf(Date);
    expect((await trailOf(id)).at(-1)).toEqual({ event_type: 'expired', details: null });
    expect(await opens(link)).toBe(400);
    expect((await post('/agreements/signing/status', { token: link })).status).toBe(400);
    const listed = await send('GET', `/agreements?status=expired&studentId=${student.id}`, { as: roles.registrar });
    expect(((await listed.json()) as { items: { id: string }[] }).items.map((item) => item.id)).toEqual([id]);
    // Expired once: the next run finds nothing to expire or remind.
    expect(await runTimer()).toMatch(/\b0 agreements expired, 0 reminders/);
  });

  test('the timer closes a link that outlived its agreement’s expiry (configuration shortened meanwhile)', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const id = await sendTo(student);
    const link = linkTokenIn((await emailsTo(student))[0], 'sign');
    await app.db.sql`update signed_documents set link_expires_at = now() - interval '1 minute' where id = ${id}`;
    expect(await opens(link)).toBe(200);
    await runTimer();
    expect((await stateOf(id))?.status).toBe('expired');
    expect(await opens(link)).toBe(400);
  });

  test('signed and voided agreements are neither reminded nor expired', async () => {
    const signer = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Sig', lastName: 'Ner' });
    const signedId = await sendTo(signer);
    const token = linkTokenIn((await emailsTo(signer))[0], 'sign');
    expect(await opens(token)).toBe(200);
    expect(
      (await post('/agreements/signing/consent', { token, disclosureVersion: '2026-12-01', accept: true })).status,
    ).toBe(200);
    const signed = await post('/agreements/signing/sign', {
      token,
      typedName: 'Sig Ner',
      signaturePng: signaturePng().toString('base64'),
      formData: signerForm('Sig', 'Ner', signer.email),
    });
    expect(signed.status).toBe(200);
    const voidedStudent = await createTestUser(app.db.sql, { roles: ['student'] });
    const voidedId = await sendTo(voidedStudent);
    expect((await post(`/agreements/${voidedId}/void`, { reason: 'Wrong programme' }, roles.registrar)).status).toBe(
      200,
    );
    await daysPass(signedId, 20);
    await daysPass(voidedId, 20);
    await runTimer();
    expect((await stateOf(signedId))?.status).toBe('student_signed');
    expect((await stateOf(voidedId))?.status).toBe('voided');
    expect(await emailsTo(signer)).toHaveLength(1);
    expect(await emailsTo(voidedStudent)).toHaveLength(1);
  });

  test('resend opens an expired agreement again with a new link and a new reminder schedule', async () => {
    const student = await createTestUser(app.db.sql, { roles: ['student'] });
    const id = await sendTo(student);
    await daysPass(id, 15);
    await runTimer();
    expect((await stateOf(id))?.status).toBe('expired');
    const resent = await post(`/agreements/${id}/resend`, {}, roles.registrar);
    expect(resent.status).toBe(200);
    expect(await stateOf(id)).toMatchObject({ status: 'pending', reminders_sent: 0, expired_at: null });
    const link = linkTokenIn((await emailsTo(student)).at(-1), 'sign');
    expect(await opens(link)).toBe(200);
    const types = (await trailOf(id)).map((event) => event.event_type);
    expect(types.slice(-3)).toEqual(['expired', 'resent', 'viewed']);
    // Another student's agreement id, or none: a 404, whatever its state.
    expect((await post(`/agreements/${randomUUID()}/resend`, {}, roles.registrar)).status).toBe(404);
    expect((await post(`/agreements/${id}/resend`, {}, student)).status).toBe(403);
  });
});
