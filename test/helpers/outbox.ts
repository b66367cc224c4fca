// The emails the app queued, as their recipients would read them: decrypted from the outbox, and the
// one-time token of the portal link they carry.
import type postgres from 'postgres';
import { decrypt } from '../../lib/crypto';

/** The decrypted bodies of the messages of `kind` queued for `email`, oldest first. */
export async function messagesTo(sql: postgres.Sql, kind: string, email: string): Promise<string[]> {
  const rows = await sql<{ recipient_ciphertext: string; body_ciphertext: string }[]>`
    select recipient_ciphertext, body_ciphertext from outbox_messages where kind = ${kind} order by created_at, id`;
  return rows
    .filter((row) => decrypt(row.recipient_ciphertext, 'outbox.recipient') === email)
    .map((row) => decrypt(row.body_ciphertext, 'outbox.body'));
}

/** The token of the link to portal page `page` in a message (`sign-in/unlock`, `account/set-password`). */
export function linkTokenIn(message: string | undefined, page: string): string {
  const token = new RegExp(`/${page}\\?token=([A-Za-z0-9_-]{43})`).exec(message ?? '')?.[1];
  if (!token) throw new Error(`no ${page} link in the message: ${message}`);
  return token;
}
