// Reminders and expiry of unsigned agreements, run by the agreement-reminders timer
// (functions/agreement-reminders.ts) in one transaction:
// * an open agreement (pending or viewed) whose signing link expired (AGREEMENT_LINK_DAYS after it
//   was sent or resent) becomes `expired`, with an `expired` event; the link stops working at that
//   instant whether or not the timer has run (the one-time token expires with it), and the timer
//   makes sure of it;
// * an open agreement gets a reminder email AGREEMENT_REMINDER_DAYS after its link was sent (3 and
//   7 by default), each at most once per link, with a `reminded` event. A timer that was down sends
//   one reminder for all the days that passed, not one per day. An agreement its signer opened or
//   consented to in the last hour is left for the next run: the reminder replaces the link, and the
//   signer may be on the page with the current one.
import { findAgreement, recordEvent, signerOf } from './agreements';
import { sendSigningReminder } from './agreements-http';
import { config } from './config';
import type { AnySql } from './db';

/** Reminders one run sends at most; the rest wait for the next run (hourly). */
export const REMINDERS_PER_RUN = 200;
const SIGNER_ACTIVE_WITHIN = '1 hour';

export interface ReminderReport {
  expired: number;
  reminded: number;
}

export async function remindAndExpireAgreements(sql: AnySql): Promise<ReminderReport> {
  const expired = await expireOpenAgreements(sql);
  const due = await agreementsDueAReminder(sql, config().AGREEMENT_REMINDER_DAYS);
  for (const agreement of due) await remind(sql, agreement);
  return { expired, reminded: due.length };
}

/** Open agreements whose link expired: marked, their trail told, their token closed. */
async function expireOpenAgreements(sql: AnySql): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    with expired as (
      update signed_documents set status = 'expired', expired_at = now()
       where status in ('pending', 'viewed') and link_expires_at <= now()
      returning id
    ), trail as (
      insert into document_events (document_id, event_type) select id, 'expired' from expired
    ), closed as (
      update one_time_tokens set expires_at = now()
       where purpose = 'agreement_signing' and expires_at > now()
         and signed_document_id in (select id from expired)
    )
    select count(*)::int as count from expired`;
  return row?.count ?? 0;
}

interface DueReminder {
  id: string;
  /** How many of the reminder days have passed since the link was sent. */
  due: number;
  seconds_left: number;
}

/** Open agreements with a reminder day passed and not reminded of it, locked (others skip them). */
function agreementsDueAReminder(sql: AnySql, days: readonly number[]) {
  return sql<DueReminder[]>`
    select d.id, r.due, extract(epoch from d.link_expires_at - now())::float8 as seconds_left
      from signed_documents d
     cross join lateral (
       select count(*)::int as due from unnest(${days as number[]}::int[]) as day
        where d.link_sent_at + make_interval(days => day) <= now()
     ) r
     where d.status in ('pending', 'viewed') and d.link_expires_at > now()
       and d.reminders_sent < r.due
       and not exists (
         select 1 from document_events e
          where e.document_id = d.id and e.event_type in ('viewed', 'consented')
            and e.occurred_at > now() - ${SIGNER_ACTIVE_WITHIN}::interval)
     order by d.link_expires_at, d.id
     limit ${REMINDERS_PER_RUN}
       for update of d skip locked`;
}

async function remind(sql: AnySql, agreement: DueReminder): Promise<void> {
  const row = await findAgreement(sql, agreement.id, null);
  if (!row) return;
  await sendSigningReminder(sql, row.id, await signerOf(sql, row), agreement.seconds_left);
  await sql`update signed_documents set reminders_sent = ${agreement.due} where id = ${row.id}`;
  await recordEvent(
    sql,
    row.id,
    'reminded',
    { userId: null, clientIp: null, userAgent: null },
    {
      reminder: String(agreement.due),
    },
  );
}
