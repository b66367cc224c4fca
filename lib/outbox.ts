import { type Config, ConfigError, config } from './config';
import { decrypt, encrypt } from './crypto';
import { db, type Sql, TEXT_ARRAY, type TransactionSql, UUID_ARRAY } from './db';

type Db = Sql | TransactionSql;

export interface OutboxMessage {
  /** What the message is, snake_case: `registration_verification`. */
  kind: string;
  recipient: string;
  /** Stored in plaintext: no personal data, no secrets. */
  subject: string;
  body: string;
}

/** The columns of an outbox row for `message`, recipient and body encrypted. */
export function encryptMessage(message: OutboxMessage) {
  return {
    kind: message.kind,
    recipient_ciphertext: encrypt(message.recipient, 'outbox.recipient'),
    subject: message.subject,
    body_ciphertext: encrypt(message.body, 'outbox.body'),
  };
}

/**
 * The insert that queues `message` once per row of the CTE named `issued` (an emailed link just issued),
 * as a CTE body of the statement that issues it: when no link is issued, nothing is queued, in the same
 * round trip and with the same work whatever the outcome.
 */
export function queueForIssuedLink(sql: Db, message: OutboxMessage) {
  const row = encryptMessage(message);
  return sql`
    insert into outbox_messages (kind, recipient_ciphertext, subject, body_ciphertext)
    select ${row.kind}, ${row.recipient_ciphertext}, ${row.subject}, ${row.body_ciphertext}
      from issued`;
}

/** Queues a message; pass the transaction of the change that causes it. */
export async function enqueueMessage(sql: Db, message: OutboxMessage): Promise<{ id: string }> {
  const row = encryptMessage(message);
  const [queued] = await sql<{ id: string }[]>`
    insert into outbox_messages (kind, recipient_ciphertext, subject, body_ciphertext)
    values (${row.kind}, ${row.recipient_ciphertext}, ${row.subject}, ${row.body_ciphertext})
    returning id`;
  if (!queued) throw new Error('the outbox insert returned no row');
  return queued;
}

// ---------------------------------------------------------------------------------------------------
// Senders
// ---------------------------------------------------------------------------------------------------

export interface OutgoingMessage extends OutboxMessage {
  id: string;
}

export interface Sender {
  readonly name: string;
  /** Resolves once the provider accepted the message; throws otherwise. */
  send(message: OutgoingMessage): Promise<void>;
}

/**
 * Development only: prints the message, link included, so a developer can click it. Refuses to run
 * in production, where a token in a log would be a credential in the log store.
 */
export const consoleSender: Sender = {
  name: 'console',
  async send(message) {
    if (config().APP_ENV === 'production') throw new ConfigError('the console sender is never used in production');
    console.info(`[outbox] ${message.kind} to ${message.recipient}: ${message.subject}\n${message.body}\n`);
  },
};

export interface AcsSettings {
  endpoint: string;
  senderAddress: string;
}

type SenderConfig = Pick<Config, 'APP_ENV' | 'ACS_EMAIL_ENDPOINT' | 'ACS_EMAIL_SENDER'>;

/** ACS settings when configured (lib/config.ts checks they come as a pair). */
function acsSettings(cfg: SenderConfig): AcsSettings | null {
  if (!cfg.ACS_EMAIL_ENDPOINT || !cfg.ACS_EMAIL_SENDER) return null;
  return { endpoint: cfg.ACS_EMAIL_ENDPOINT, senderAddress: cfg.ACS_EMAIL_SENDER };
}

/**
 * Azure Communication Services email, signed in with the Function App's managed identity
 * (DefaultAzureCredential: no connection string or key to keep). The SDK is loaded on first send.
 */
export function acsEmailSender(settings: AcsSettings): Sender {
  const connect = async () => {
    const { EmailClient } = await import('@azure/communication-email');
    const { DefaultAzureCredential } = await import('@azure/identity');
    return new EmailClient(settings.endpoint, new DefaultAzureCredential());
  };
  let client: ReturnType<typeof connect> | undefined;
  return {
    name: 'azure-communication-services',
    async send(message) {
      client ??= connect();
      const poller = await (await client).beginSend({
        senderAddress: settings.senderAddress,
        content: { subject: message.subject, plainText: message.body },
        recipients: { to: [{ address: message.recipient }] },
        // Engagement tracking rewrites links through a redirector: ours carry secrets, so never.
        disableUserEngagementTracking: true,
      });
      const result = await poller.pollUntilDone();
      if (result.status !== 'Succeeded') {
        throw new Error(`ACS email ${result.status}${result.error?.code ? ` (${result.error.code})` : ''}`);
      }
    },
  };
}

/**
 * The sender for this deployment: ACS when configured; otherwise the console, except in production,
 * which refuses to deliver at all (messages stay queued until ACS is configured).
 */
export function configuredSender(cfg: SenderConfig = config()): Sender {
  const acs = acsSettings(cfg);
  if (acs) return acsEmailSender(acs);
  if (cfg.APP_ENV === 'production') {
    throw new ConfigError('ACS_EMAIL_ENDPOINT and ACS_EMAIL_SENDER are required to deliver messages in production');
  }
  return consoleSender;
}

// ---------------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------------

/** A claimed message is another worker's for this long (longer than a function may run). */
const LEASE_SECONDS = 5 * 60;
/** After this many failed attempts a message is `failed` and left for an operator. */
export const MAX_ATTEMPTS = 8;
/** Retry after 1, 2, 4 … minutes, at most an hour. */
const BACKOFF_BASE_SECONDS = 60;
const BACKOFF_MAX_SECONDS = 60 * 60;
const ERROR_TEXT_MAX = 200;

interface ClaimedRow {
  id: string;
  kind: string;
  recipient_ciphertext: string;
  subject: string | null;
  body_ciphertext: string;
}

export interface DeliveryReport {
  sent: number;
  /** Failed this time and queued again with a backoff. */
  retrying: number;
  /** Failed for the last time (status `failed`). */
  failed: number;
}

/**
 * Claims up to `batch` due messages (`FOR UPDATE SKIP LOCKED`: concurrent workers take disjoint
 * rows; the lease keeps them disjoint after this short transaction), sends them, and records every
 * outcome in one statement. Returns counts only: nothing here logs a recipient, body or link.
 */
export async function deliverPending(sql: Db, sender: Sender, options: { batch: number }): Promise<DeliveryReport> {
  const claimed = await sql<ClaimedRow[]>`
    update outbox_messages o
       set attempts = o.attempts + 1,
           next_attempt_at = now() + make_interval(secs => ${LEASE_SECONDS})
      from (select id from outbox_messages
             where status = 'queued' and next_attempt_at <= now()
             order by next_attempt_at
             limit ${options.batch}
             for update skip locked) due
     where o.id = due.id
    returning o.id, o.kind, o.recipient_ciphertext, o.subject, o.body_ciphertext`;
  if (claimed.length === 0) return { sent: 0, retrying: 0, failed: 0 };

  const errors = await Promise.all(claimed.map((row) => sendOne(sender, row)));
  const results = await sql<{ status: string }[]>`
    update outbox_messages o
       set status = case when r.error is null then 'sent'
                         when o.attempts >= ${MAX_ATTEMPTS} then 'failed'
                         else 'queued' end,
           sent_at = case when r.error is null then now() end,
           next_attempt_at = case when r.error is null then o.next_attempt_at
                                  else now() + make_interval(secs => least(
                                         ${BACKOFF_BASE_SECONDS}::float8 * power(2, o.attempts - 1),
                                         ${BACKOFF_MAX_SECONDS}::float8)) end,
           last_error = r.error
      from unnest(${sql.array(
        claimed.map((row) => row.id),
        UUID_ARRAY,
      )}::uuid[], ${sql.array(errors, TEXT_ARRAY)}::text[]) as r(id, error)
     where o.id = r.id
    returning o.status`;
  return {
    sent: results.filter((row) => row.status === 'sent').length,
    retrying: results.filter((row) => row.status === 'queued').length,
    failed: results.filter((row) => row.status === 'failed').length,
  };
}

/** Sends one claimed row; returns null on success, else a short error text without message content. */
async function sendOne(sender: Sender, row: ClaimedRow): Promise<string | null> {
  let message: OutgoingMessage;
  try {
    message = {
      id: row.id,
      kind: row.kind,
      recipient: decrypt(row.recipient_ciphertext, 'outbox.recipient'),
      subject: row.subject ?? '',
      body: decrypt(row.body_ciphertext, 'outbox.body'),
    };
  } catch {
    return 'undecryptable: its key is no longer configured';
  }
  try {
    await sender.send(message);
    return null;
  } catch (error) {
    return describeFailure(error);
  }
}

/**
 * What is kept of a send error: its class and code. Provider messages can quote the recipient, so
 * their text is dropped, except for this module's own ACS status errors, which never hold one.
 */
function describeFailure(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; statusCode?: unknown; message?: unknown };
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  const code = e?.code ?? e?.statusCode;
  const own = typeof e?.message === 'string' && e.message.startsWith('ACS email ') ? `: ${e.message}` : '';
  return `${name}${code !== undefined ? ` ${String(code)}` : ''}${own}`.slice(0, ERROR_TEXT_MAX);
}

/** Sent and failed messages (their encrypted links) are kept this long, then deleted. */
const RETENTION_DAYS = 30;

/** Removes sent or failed messages older than RETENTION_DAYS; returns how many. */
export async function pruneDelivered(sql: Db): Promise<number> {
  const [row] = await sql<{ removed: number }[]>`
    with removed as (
      delete from outbox_messages
       where status in ('sent', 'failed') and updated_at < now() - make_interval(days => ${RETENTION_DAYS})
      returning 1)
    select count(*)::int as removed from removed`;
  return row?.removed ?? 0;
}

/**
 * Development only: delivers to the console right away, because the local host runs no timers. Call
 * it after the transaction that queued the message committed (before, the row is not visible yet).
 * Callers do not await it: a request never waits on delivery, and a failure costs only a log line.
 */
export function deliverNowInDevelopment(): void {
  if (config().APP_ENV !== 'development') return;
  deliverPending(db(), consoleSender, { batch: 20 }).catch((error: unknown) => {
    console.warn(`[outbox] development delivery failed: ${describeFailure(error)}`);
  });
}
