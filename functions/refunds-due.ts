// The daily refunds-due timer: GNPEC requires a refund to be remitted within the rule's days (45) of
// the date of determination. Each morning it flags the open refunds due within REFUND_DUE_WARNING_DAYS
// or already overdue that were not flagged at that level before, and emails finance a list through the
// outbox (lib/refunds.ts flagRefundsDue), in one transaction. The list itself is GET ledger/refunds-due.
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { timerDb } from '../lib/db';
import { flagRefundsDue } from '../lib/refunds';

export async function refundsDue(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const report = await timerDb().begin((sql) => flagRefundsDue(sql));
  // Counts only: which students they are stays behind sign-in.
  context.log(
    `refunds-due: flagged ${report.overdue} overdue and ${report.comingDue} coming due; ` +
      `told ${report.notified} finance accounts`,
  );
}

// 11:00 UTC every day (NCRONTAB with seconds): 06:00 or 07:00 in Atlanta, before the office opens.
app.timer('refunds-due', { schedule: '0 0 11 * * *', handler: refundsDue });
