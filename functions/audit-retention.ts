// Audit retention: a nightly timer removes audit rows older than AUDIT_RETENTION_DAYS (default six
// years), through prune_audit_log() (migrations/0001), which refuses less than 90 days and always
// keeps PHI-access rows younger than six years (45 CFR 164.316(b)(2)). The app role has no DELETE
// on audit_log; the SECURITY DEFINER function is its only way to remove rows.
//
// The pruning is itself recorded: the same statement appends an `audit_log_pruned` row saying how
// many rows went and under which retention, so a gap in the trail is always explained by the trail.
import type { InvocationContext, Timer } from '@azure/functions';
import { app } from '@azure/functions';
import { z } from 'zod';
import { pruneAuditLog } from '../lib/audit-trail';
import { timerDb } from '../lib/db';

export const DEFAULT_AUDIT_RETENTION_DAYS = 2190; // six years
const MIN_RETENTION_DAYS = 90; // what prune_audit_log enforces; checked here too for a clearer message
const MAX_RETENTION_DAYS = 36_500;

const RetentionDays = z.preprocess(
  (value) => (value === '' ? undefined : value),
  z.coerce.number().int().min(MIN_RETENTION_DAYS).max(MAX_RETENTION_DAYS).default(DEFAULT_AUDIT_RETENTION_DAYS),
);

/**
 * AUDIT_RETENTION_DAYS, validated. Read per run rather than at module load, so a bad value fails
 * this function's run with a message instead of stopping every function of the app.
 */
export function retentionDaysFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = RetentionDays.safeParse(env.AUDIT_RETENTION_DAYS);
  if (!parsed.success) {
    throw new Error(
      `AUDIT_RETENTION_DAYS must be a whole number of days from ${MIN_RETENTION_DAYS} to ${MAX_RETENTION_DAYS}`,
    );
  }
  return parsed.data;
}

export async function auditRetention(_timer: Timer, context: InvocationContext): Promise<void> {
  const retentionDays = retentionDaysFromEnv();
  const removed = await pruneAuditLog(timerDb(), retentionDays, context.invocationId);
  context.log(`audit retention: removed ${removed} rows older than ${retentionDays} days (PHI rows kept six years)`);
}

// 03:30 UTC every day (NCRONTAB with seconds), outside the school's working hours.
app.timer('audit-retention', { schedule: '0 30 3 * * *', handler: auditRetention });
