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

/** Removes audit rows older than `retentionDays` (PHI rows: six years at least); returns how many. */
export async function pruneAuditLog(retentionDays: number, runId: string): Promise<number> {
  // One statement: prune and record the pruning atomically (no recorded prune that did not happen,
  // no prune without its record).
  const [row] = await timerDb()<{ removed: string }[]>`
    with pruned as (
      select prune_audit_log(make_interval(days => ${retentionDays}::int)) as removed
    )
    insert into audit_log (request_id, method, route, resource_ids, status, duration_ms, phi, event)
    select ${runId}, 'TIMER', 'audit-retention',
           jsonb_build_object('removed', removed::text, 'retentionDays', ${String(retentionDays)}::text),
           200, (extract(epoch from clock_timestamp() - now()) * 1000)::int, false, 'audit_log_pruned'
      from pruned
    returning resource_ids ->> 'removed' as removed`;
  return Number(row?.removed ?? 0);
}

export async function auditRetention(_timer: Timer, context: InvocationContext): Promise<void> {
  const retentionDays = retentionDaysFromEnv();
  const removed = await pruneAuditLog(retentionDays, context.invocationId);
  context.log(`audit retention: removed ${removed} rows older than ${retentionDays} days (PHI rows kept six years)`);
}

// 03:30 UTC every day (NCRONTAB with seconds), outside the school's working hours.
app.timer('audit-retention', { schedule: '0 30 3 * * *', handler: auditRetention });
