// `npm run admin:create -- --email ADDRESS [--first NAME --last NAME]`: creates the first
// administrator of a fresh deployment, or grants the admin role to an existing account.
//
// The password comes from the environment variable ADMIN_PASSWORD or from a hidden prompt, never from
// the command line: arguments end up in shell history and are visible to every user of the machine
// in the process list. It is only needed (and only read) when a new account is created.
// Runs against the migrated database in DATABASE_URL (DATABASE_URL=postgres://… npm run admin:create …);
// without it, against the database of `npm start` (dev/local-database.ts): the running embedded server
// if `npm start` is up, else that server started on .data/postgres for the command and stopped after.
// The grant is written to the audit trail as an `admin_created` or `role_granted` event.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { HttpError } from '../lib/errors';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../lib/passwords';
import { revokeAllForUser } from '../lib/sessions';
import { EmailAddress, emailIndexMatches, insertUser, PersonName } from '../lib/users';
import { openLocalDatabase } from './local-database';

const USAGE = 'usage: npm run admin:create -- --email ADDRESS [--first NAME --last NAME]';
const DEFAULT_FIRST_NAME = 'School';
const DEFAULT_LAST_NAME = 'Administrator';

class UsageError extends Error {}

export interface AdminRequest {
  email: string;
  firstName: string;
  lastName: string;
}

export function parseCommandLine(argv: readonly string[]): AdminRequest {
  if (argv.some((arg) => arg === '--password' || arg.startsWith('--password=') || arg === '-p')) {
    throw new UsageError(
      'Refusing --password: a password on the command line is kept in shell history and shown in the process list.\n' +
        'Set ADMIN_PASSWORD in the environment or type it at the prompt.',
    );
  }
  let values: { email?: string | undefined; first?: string | undefined; last?: string | undefined };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { email: { type: 'string' }, first: { type: 'string' }, last: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : error}\n${USAGE}`);
  }
  const email = EmailAddress.safeParse(values.email ?? '');
  if (!email.success) throw new UsageError(`--email: a valid email address is required\n${USAGE}`);
  const firstName = PersonName.safeParse(values.first ?? DEFAULT_FIRST_NAME);
  const lastName = PersonName.safeParse(values.last ?? DEFAULT_LAST_NAME);
  if (!firstName.success || !lastName.success) {
    throw new UsageError('--first and --last: 1 to 100 letters, spaces, apostrophes, hyphens and periods');
  }
  return { email: email.data, firstName: firstName.data, lastName: lastName.data };
}

export function checkPasswordLength(password: string): void {
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    throw new UsageError(`The password must have ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`);
  }
}

/** Reads one line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk, encoding, done) {
      if (!muted) process.stdout.write(chunk, encoding);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, resolve);
      muted = true; // the question is written; what is typed next is not
    });
  } finally {
    muted = false;
    rl.close();
    process.stdout.write('\n');
  }
}

async function readPassword(): Promise<string> {
  const fromEnvironment = process.env.ADMIN_PASSWORD;
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  if (!process.stdin.isTTY) throw new UsageError('No terminal to prompt on: set ADMIN_PASSWORD in the environment');
  const password = await promptHidden('Password for the new administrator: ');
  checkPasswordLength(password);
  if ((await promptHidden('Repeat the password: ')) !== password) throw new UsageError('The passwords differ');
  return password;
}

export interface AdminOutcome {
  id: string;
  created: boolean;
  /** The account's status when it already existed (an inactive account cannot sign in). */
  status: string;
}

/**
 * Grants admin to the account with this email, or creates it (active, with the password that
 * `password()` supplies), and records the grant in the audit trail, all in one transaction.
 */
export async function createOrGrantAdmin(
  sql: postgres.Sql,
  request: AdminRequest,
  password: () => Promise<string>,
): Promise<AdminOutcome> {
  const [existing] = await sql<{ id: string; status: string }[]>`
    select id, status from users u where ${emailIndexMatches(sql, sql`u.email_blind_index`, request.email)}`;
  // Read (and check) the password before the transaction: a prompt must not hold a connection open.
  const newPassword = existing ? null : await password();
  if (newPassword !== null) checkPasswordLength(newPassword);
  return sql.begin(async (tx) => {
    let outcome: AdminOutcome;
    if (existing) {
      const granted = await tx`
        insert into user_roles (user_id, role_name) values (${existing.id}, 'admin')
        on conflict (user_id, role_name) do nothing returning user_id`;
      if (granted.length > 0) {
        await revokeAllForUser(tx, existing.id, 'roles_changed');
      }
      outcome = { id: existing.id, created: false, status: existing.status };
    } else {
      const { id } = await insertUser(tx, { ...request, password: newPassword, roles: ['admin'], status: 'active' });
      outcome = { id, created: true, status: 'active' };
    }
    await tx`
      insert into audit_log (request_id, user_id, method, route, resource_ids, status, phi, event)
      values (${`cli-${randomUUID()}`}, ${outcome.id}, 'CLI', 'dev/admin-create', ${tx.json({ id: outcome.id })},
              ${outcome.created ? 201 : 200}, false, ${outcome.created ? 'admin_created' : 'role_granted'})`;
    return outcome;
  });
}

async function main(): Promise<void> {
  const request = parseCommandLine(process.argv.slice(2));
  // Without DATABASE_URL: npm start's database, through the app's role (it needs no more).
  const local = process.env.DATABASE_URL ? undefined : await openLocalDatabase({ log: (line) => console.log(line) });
  // The configuration (read by lib/ on first use) then names the same database.
  // npm start's database is a development one, with its demo keys (as npm start itself sets).
  if (local) {
    process.env.DATABASE_URL = local.appUrl;
    process.env.APP_ENV ??= 'development';
  }
  const sql = postgres(process.env.DATABASE_URL as string, { max: 1, onnotice: () => {} });
  try {
    const [migrated] = await sql`select to_regclass('public.users') is not null as ok`;
    if (!migrated?.ok) throw new UsageError('This database has no users table: run `npm run migrate` first');
    const outcome = await createOrGrantAdmin(sql, request, readPassword);
    if (outcome.created) {
      console.log(`Created administrator ${outcome.id}`);
    } else {
      console.log(`Granted the admin role to the existing account ${outcome.id} (its password is unchanged)`);
      if (outcome.status !== 'active') console.log(`Note: that account is ${outcome.status} and cannot sign in yet`);
    }
  } finally {
    await sql.end({ timeout: 5 });
    await local?.stop();
  }
}

// Run as a command, not when a test imports the functions above.
if (process.argv[1] && path.resolve(process.argv[1]) === __filename) {
  main().catch((error) => {
    if (error instanceof UsageError) console.error(error.message);
    else if (error instanceof HttpError) console.error(error.detail ?? error.title);
    else console.error(`admin:create failed: ${(error as { code?: string })?.code ?? (error as Error)?.message}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  });
}
