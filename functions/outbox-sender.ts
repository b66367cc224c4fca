// Delivers queued outbox messages every minute, then forgets what is done: sent messages after 30 days
// (lib/outbox.ts) and registration requests 30 days after they expired. In production it refuses to
// run without Azure Communication Services configured (the console sender would log links); the run
// fails with that message and the messages wait, queued and encrypted, until ACS is set up.
//
// The local host runs no timers: in development, routes that queue a message deliver it to the
// console themselves (deliverNowInDevelopment in lib/outbox.ts).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { db } from '../lib/db';
import { configuredSender, deliverPending, pruneDelivered } from '../lib/outbox';

/** Messages per batch, and batches per run (one run must end well before the next minute). */
const BATCH = 50;
const MAX_BATCHES = 10;
const REGISTRATION_RETENTION_DAYS = 30;

export async function sendOutbox(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const sender = configuredSender();
  const totals = { sent: 0, retrying: 0, failed: 0 };
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const report = await deliverPending(db(), sender, { batch: BATCH });
    totals.sent += report.sent;
    totals.retrying += report.retrying;
    totals.failed += report.failed;
    if (report.sent + report.retrying + report.failed < BATCH) break;
  }
  const pruned = await pruneDelivered(db());
  const [registrations] = await db()<{ removed: number }[]>`
    with removed as (
      delete from registration_requests
       where expires_at < now() - make_interval(days => ${REGISTRATION_RETENTION_DAYS})
      returning 1)
    select count(*)::int as removed from removed`;
  // Counts only: never a recipient, a body or a link.
  context.log(
    `outbox via ${sender.name}: ${totals.sent} sent, ${totals.retrying} to retry, ${totals.failed} failed; ` +
      `pruned ${pruned} messages and ${registrations?.removed ?? 0} registration requests`,
  );
}

app.timer('outbox-sender', { schedule: '0 */1 * * * *', handler: sendOutbox });
