// The outbox timer's two jobs are independent: when delivery cannot run (production without Azure
// Communication Services configured), the pruning of old messages and expired registration requests
// still happens, the queued messages stay queued, and the run fails with the reason so the Functions
// logs and alerts show it.
import { randomBytes } from 'node:crypto';
import type { Timer } from '@azure/functions';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { resetConfigForTests } from '../lib/config';
import { closePool } from '../lib/db';
import { createMigratedDatabase, type TestDatabase } from './helpers/database';
import { productionSettings } from './helpers/production';

let database: TestDatabase & { appUrl: string };

beforeAll(async () => {
  database = await createMigratedDatabase();
  Object.assign(process.env, {
    ...productionSettings(),
    DATABASE_URL: database.appUrl, // a loopback server: exempt from verify-full
    DB_HOST: '127.0.0.1',
    DB_NAME: database.name,
    DB_USER: 'unused',
    TIMER_INSTANCES: '3',
    ACS_EMAIL_ENDPOINT: '',
    ACS_EMAIL_SENDER: '',
  });
  resetConfigForTests();
});

afterAll(async () => {
  await closePool(1);
  await database.drop();
});

function timerContext(logged: string[]): InvocationContext {
  return new InvocationContext({
    invocationId: randomBytes(8).toString('hex'),
    functionName: 'outbox-sender',
    logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
  });
}

test('without ACS in production the run prunes, keeps the queue and fails with the reason', async () => {
  const { sql } = database;
  const [old] = await sql<{ id: string }[]>`
    insert into outbox_messages (kind, recipient_ciphertext, body_ciphertext, status, sent_at, updated_at)
    values ('registration', 'x', 'x', 'sent', now() - interval '40 days', now() - interval '40 days')
    returning id`;
  const [queued] = await sql<{ id: string }[]>`
    insert into outbox_messages (kind, recipient_ciphertext, body_ciphertext)
    values ('registration', 'x', 'x') returning id`;
  await sql`
    insert into registration_requests (email_ciphertext, email_blind_index, expires_at)
    values ('x', ${randomBytes(32)}, now() - interval '40 days')`;

  const { sendOutbox } = await import('../functions/outbox-sender');
  const logged: string[] = [];
  await expect(sendOutbox({ isPastDue: false } as Timer, timerContext(logged))).rejects.toThrow(
    /ACS_EMAIL_ENDPOINT and ACS_EMAIL_SENDER are required/,
  );

  expect(logged.join('\n')).toMatch(/delivery did not run; pruned 1 messages and 1 registration requests/);
  expect(await sql`select 1 from outbox_messages where id = ${old?.id ?? ''}`).toHaveLength(0);
  expect(await sql`select 1 from registration_requests where expires_at < now() - interval '30 days'`).toHaveLength(0);
  const [still] = await sql`select status, attempts from outbox_messages where id = ${queued?.id ?? ''}`;
  expect(still).toMatchObject({ status: 'queued', attempts: 0 });
});
