// Hourly housekeeping: prunes the sign-in tables (what goes when, and how: lib/sign-in-retention.ts),
// and sweeps orphan objects from the files store (lib/files.ts sweepOrphanFiles). Nothing pruned here
// is regulated data: the audit trail has its own retention (functions/audit-retention.ts), the outbox
// and the registration requests theirs (functions/outbox-sender.ts).
//
// The same run rolls up closed days of the audit trail for GET audit/summary (lib/audit-trail.ts),
// at most ROLLUP_DAYS_PER_RUN a run: a new deployment catches up on its last year within half a day,
// and the summary is exact meanwhile (it reads audit_log for days not rolled up yet).
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { rollUpClosedAuditDays } from '../lib/audit-trail';
import { timerDb } from '../lib/db';
import { sweepOrphanFiles } from '../lib/files';
import { pruneSignInTables } from '../lib/sign-in-retention';

const ROLLUP_DAYS_PER_RUN = 31;

export async function maintenance(_timer: Timer | null, context: InvocationContext): Promise<void> {
  const report = await pruneSignInTables();
  // Counts only: these rows hold blind indexes, addresses and token hashes, none of which belongs in a log.
  context.log(
    `maintenance: removed ${report.loginAttempts} login attempts, ${report.rateLimitBuckets} rate-limit buckets, ` +
      `${report.refreshTokens} expired refresh tokens, ${report.oneTimeTokens} expired one-time tokens`,
  );
  const rolled = await rollUpClosedAuditDays(timerDb(), ROLLUP_DAYS_PER_RUN);
  context.log(`maintenance: rolled up ${rolled} closed days of the audit trail`);
  // Objects of the files store no row names (a request failed after its upload): lib/files.ts.
  const files = await sweepOrphanFiles(timerDb());
  context.log(`maintenance: removed ${files.deleted} orphan files (${files.kept} under retention kept)`);
}

// Every hour at minute 15 (NCRONTAB with seconds), away from the outbox's and the audit's runs.
app.timer('maintenance', { schedule: '0 15 * * * *', handler: maintenance });
