// Delivers queued outbox messages every minute, then forgets what is done: sent messages after 30 days
// (lib/outbox.ts) and registration requests 30 days after they expired. The two parts are independent:
// when delivery cannot run (production without Azure Communication Services configured, or a failure
// mid-batch) the pruning still runs, and the run then fails with the delivery's error so it shows in
// the Functions logs and alerts. Messages wait, queued and encrypted, until delivery works again.
//
// The local host runs no timers: in development, routes that queue a message deliver it to the
// console themselves (deliverNowInDevelopment in lib/outbox.ts).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { type Sql, timerDb } from '../lib/db';
import { configuredSender, type DeliveryReport, deliverPending, pruneDelivered } from '../lib/outbox';
import { pruneExpiredRegistrations } from '../lib/registration';

/** Messages per batch, and batches per run (one run must end well before the next minute). */
const BATCH = 50;
const MAX_BATCHES = 10;

export async function sendOutbox(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const sql = timerDb();
  let delivery: { via: string; totals: DeliveryReport } | { error: unknown };
  try {
    delivery = await deliverBatches(sql);
  } catch (error) {
    delivery = { error };
  }
  const pruned = await pruneDelivered(sql);
  const registrations = await pruneExpiredRegistrations(sql);
  // Counts only: never a recipient, a body or a link.
  const prunedText = `pruned ${pruned} messages and ${registrations} registration requests`;
  if ('error' in delivery) {
    context.log(`outbox: delivery did not run; ${prunedText}`);
    throw delivery.error;
  }
  const { via, totals } = delivery;
  context.log(
    `outbox via ${via}: ${totals.sent} sent, ${totals.retrying} to retry, ${totals.failed} failed; ${prunedText}`,
  );
}

/** Up to MAX_BATCHES batches, stopping at the first that is not full. */
async function deliverBatches(sql: Sql): Promise<{ via: string; totals: DeliveryReport }> {
  const sender = configuredSender();
  const totals = { sent: 0, retrying: 0, failed: 0 };
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    const report = await deliverPending(sql, sender, { batch: BATCH });
    totals.sent += report.sent;
    totals.retrying += report.retrying;
    totals.failed += report.failed;
    if (report.sent + report.retrying + report.failed < BATCH) break;
  }
  return { via: sender.name, totals };
}

app.timer('outbox-sender', { schedule: '0 */1 * * * *', handler: sendOutbox });
