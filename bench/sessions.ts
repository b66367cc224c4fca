// Signing in to the generated data (bench/run.ts, bench/profile.ts): through the API's sign-in route,
// or with a token minted in-process the way the API would when there is no such route (yet).
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import type { Role } from '../lib/access';
import { issueAccessToken } from '../lib/auth';
import { decrypt, emailBlindIndex } from '../lib/crypto';
import { BENCH_PASSWORD } from './school';

const log = (line: string) => process.stderr.write(`${line}\n`);

async function signIn(api: string, email: string): Promise<{ id: string; headers: Record<string, string> } | null> {
  const response = await fetch(`${api}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password: BENCH_PASSWORD, client: 'tool' }),
  });
  if (!response.ok) {
    await response.arrayBuffer();
    return null;
  }
  const body = (await response.json()) as { accessToken: string; user: { id: string } };
  return { id: body.user.id, headers: { Authorization: `Bearer ${body.accessToken}` } };
}

/** Signs in through the API; without a sign-in route (yet), mints a token the way the API would. */
export async function signInOrMint(api: string, admin: postgres.Sql, email: string) {
  const signedIn = await signIn(api, email);
  if (signedIn) return signedIn;
  const [row] = await admin<{ id: string; roles: string[] }[]>`
    select u.id, array(select role_name from user_roles r where r.user_id = u.id) as roles
      from users u where u.email_blind_index = ${emailBlindIndex(email)}`;
  if (!row) return null;
  log(`  sign-in as ${email} failed or is not available: using a token minted in-process`);
  // A session of its own (every token names one; this one is never ended, so never refused).
  const token = await issueAccessToken({ id: row.id, roles: row.roles as Role[] }, randomUUID());
  return { id: row.id, headers: { Authorization: `Bearer ${token}` } };
}

/** Active students' emails (decrypted from the table, as the bench knows the keys). */
export async function activeStudentEmails(
  admin: postgres.Sql,
  limit: number,
): Promise<{ id: string; email: string }[]> {
  const rows = await admin<{ id: string; email_ciphertext: string }[]>`
    select u.id, u.email_ciphertext
      from users u join user_roles r on r.user_id = u.id and r.role_name = 'student'
     where u.status = 'active' and exists (select 1 from enrollments e where e.user_id = u.id)
     order by u.created_at
     limit ${limit}`;
  return rows.map((row) => ({ id: row.id, email: decrypt(row.email_ciphertext, 'users.email') }));
}
