// The hourly agreement timer: expires the open agreements whose signing link expired and emails the
// reminders that are due (AGREEMENT_REMINDER_DAYS after the link was sent), through the outbox, in one
// transaction (lib/agreement-reminders.ts). Hourly so a reminder goes out about the hour of day the
// agreement was sent (office hours), and an expiry shows in the staff list within the hour (the link
// itself stops working at its expiry, timer or not).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { remindAndExpireAgreements } from '../lib/agreement-reminders';
import { timerDb } from '../lib/db';

export async function agreementReminders(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const report = await timerDb().begin((sql) => remindAndExpireAgreements(sql));
  // Counts only: who was reminded stays behind sign-in.
  context.log(`agreement-reminders: ${report.expired} agreements expired, ${report.reminded} reminders queued`);
}

// Every hour at minute 40 (NCRONTAB with seconds), away from the maintenance (15) and audit runs.
app.timer('agreement-reminders', { schedule: '0 40 * * * *', handler: agreementReminders });
