// Self-registration over real HTTP and real SQL: request a link (always 202), open it, complete the
// account; tokens single use and expiring; the password rule; bad input of every kind refused with
// nothing stored; the per-source limit; the outbox (encrypted at rest, delivered once, retried with
// a backoff); and no token or link in any log in production.
//
// Function modules are imported dynamically, after the app booted: a static import would register
// their functions before the local host's stand-in exists (see dev/functions-host.ts).
import { randomBytes } from 'node:crypto';
import { InvocationContext, type Timer } from '@azure/functions';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { parseConfig, resetConfigForTests } from '../lib/config';
import { decrypt, emailBlindIndex } from '../lib/crypto';
import {
  configuredSender,
  consoleSender,
  deliverPending,
  enqueueMessage,
  MAX_ATTEMPTS,
  type OutgoingMessage,
  type Sender,
} from '../lib/outbox';
import { checkPasswordPolicy } from '../lib/password-policy';
import { PASSWORD_MAX_LENGTH } from '../lib/passwords';
import { registeredFunction, useTestApp } from './helpers/app';
import { postFrom } from './helpers/http';
import { productionSettings } from './helpers/production';
import { createTestUser } from './helpers/users';

const app = useTestApp();

const outboxSenderModule = () => import('../functions/outbox-sender');

const GOOD_PASSWORD = 'Lantern-Orchid-Bicycle-42';
const INVALID_TOKEN_DETAIL = 'This link or token is invalid or has expired; start the registration again';

// The local host takes the client address from the socket (a client's X-Forwarded-For is overwritten),
// so each request leaves from its own loopback address (all of 127.0.0.0/8 reaches the host) and the
// per-source limit only bites where a test wants it.
let sources = 0;
const nextIp = () => {
  const n = sources++;
  return `127.20.${Math.floor(n / 250)}.${(n % 250) + 2}`;
};
const uniqueEmail = () => `applicant.${randomBytes(4).toString('hex')}@example.test`;

/** POST a JSON body (or a raw string) from the loopback address `source`. */
function post(path: string, body: unknown, source = nextIp(), contentType = 'application/json'): Promise<Response> {
  return postFrom(`${app.url}${path}`, body, source, contentType);
}

interface Problem {
  type: string;
  status: number;
  detail?: string;
  errors?: { field: string; message: string }[];
}

async function problem(response: Response, status: number): Promise<Problem> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await response.json()) as Problem;
}

interface StoredMessage {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  subject: string;
  recipient: string;
  body: string;
}

/** Every outbox message to `email`, oldest first, decrypted here as the sender would. */
async function messagesTo(email: string): Promise<StoredMessage[]> {
  const rows = await app.db.sql<
    {
      id: string;
      kind: string;
      status: string;
      attempts: number;
      subject: string;
      recipient_ciphertext: string;
      body_ciphertext: string;
    }[]
  >`select id, kind, status, attempts, subject, recipient_ciphertext, body_ciphertext
      from outbox_messages order by created_at, id`;
  return rows
    .map((row) => ({
      id: row.id,
      kind: row.kind,
      status: row.status,
      attempts: row.attempts,
      subject: row.subject,
      recipient: decrypt(row.recipient_ciphertext, 'outbox.recipient'),
      body: decrypt(row.body_ciphertext, 'outbox.body'),
    }))
    .filter((message) => message.recipient === email);
}

const tokenIn = (text: string): string => {
  const match = /\/register\/verify\?token=([A-Za-z0-9_-]{43})(?:\s|$)/.exec(text);
  if (!match) throw new Error('no verification link in the message');
  return match[1] as string;
};

/** Requests a link for `email` and returns the token of the newest message to it. */
async function requestLink(email: string): Promise<string> {
  const response = await post('/auth/register/request', { email });
  expect(response.status).toBe(202);
  const messages = await messagesTo(email);
  expect(messages.length).toBeGreaterThan(0);
  return tokenIn((messages.at(-1) as StoredMessage).body);
}

async function verify(token: string): Promise<{ registrationToken: string; expiresAt: string }> {
  const response = await post('/auth/register/verify', { token });
  expect(response.status).toBe(200);
  return (await response.json()) as { registrationToken: string; expiresAt: string };
}

async function registrationTokenFor(email: string): Promise<string> {
  return (await verify(await requestLink(email))).registrationToken;
}

async function requestStatus(email: string): Promise<string | undefined> {
  const [row] = await app.db.sql<{ status: string }[]>`
    select status from registration_requests where email_blind_index = ${emailBlindIndex(email)}`;
  return row?.status;
}

async function userCount(email: string): Promise<number> {
  const [row] = await app.db.sql<{ n: number }[]>`
    select count(*)::int as n from users where email_blind_index = ${emailBlindIndex(email)}`;
  return row?.n ?? 0;
}

/** Lets the one-time tokens of `email`'s registration request run out. */
async function expireTokensOf(email: string): Promise<void> {
  await app.db.sql`
    update one_time_tokens t set issued_at = now() - interval '2 hours', expires_at = now() - interval '1 second'
      from registration_requests r
     where r.id = t.registration_request_id and r.email_blind_index = ${emailBlindIndex(email)}`;
}

/** Lets a test act as if the last link to `email` went out RESEND_INTERVAL ago. */
async function ageRequest(email: string): Promise<void> {
  await app.db.sql.begin(async (tx) => {
    await tx`alter table registration_requests disable trigger registration_requests_set_updated_at`;
    await tx`update registration_requests set updated_at = now() - interval '2 minutes'
              where email_blind_index = ${emailBlindIndex(email)}`;
    await tx`alter table registration_requests enable trigger registration_requests_set_updated_at`;
  });
}

/** Runs `fn` with some environment variables changed, restoring them and the parsed config after. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  resetConfigForTests();
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetConfigForTests();
  }
}

/** Everything the process writes through the console while `fn` runs. */
async function consoleOutputOf(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const spies = methods.map((method) =>
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((arg) => (arg instanceof Error ? `${arg.message}\n${arg.stack}` : String(arg))).join(' '));
    }),
  );
  try {
    await fn();
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  return lines.join('\n');
}

function timerContext(logged: string[]): InvocationContext {
  return new InvocationContext({
    invocationId: randomBytes(8).toString('hex'),
    functionName: 'outbox-sender',
    logHandler: (_level, ...args) => logged.push(args.map(String).join(' ')),
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('registration, start to finish', () => {
  test('request → link in the outbox → verify → complete creates an active student', async () => {
    const email = uniqueEmail();
    const response = await post('/auth/register/request', { email: `  ${email.toUpperCase()} ` });
    expect(response.status).toBe(202);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const [message, ...others] = await messagesTo(email);
    expect(others).toEqual([]);
    expect(message).toMatchObject({ kind: 'registration_verification', status: 'queued', attempts: 0 });
    expect(message?.subject).not.toContain(email);
    expect(message?.body).toContain('http://localhost:5173/register/verify?token=');
    const token = tokenIn(message?.body ?? '');
    expect(await requestStatus(email)).toBe('pending');

    const verified = await verify(token);
    expect(verified.registrationToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verified.registrationToken).not.toBe(token);
    const minutesLeft = (Date.parse(verified.expiresAt) - Date.now()) / 60_000;
    expect(minutesLeft).toBeGreaterThan(13);
    expect(minutesLeft).toBeLessThanOrEqual(15);
    expect(await requestStatus(email)).toBe('verified');

    const completed = await post('/auth/register/complete', {
      registrationToken: verified.registrationToken,
      firstName: ' Zoë ',
      lastName: "O'Brien-Nguyễn",
      password: GOOD_PASSWORD,
    });
    expect(completed.status).toBe(201);
    const account = (await completed.json()) as { id: string; roles: string[] };
    expect(account.roles).toEqual(['student']);
    expect(await requestStatus(email)).toBe('completed');

    const [user] = await app.db.sql<
      {
        id: string;
        status: string;
        email_ciphertext: string;
        first_name_ciphertext: string;
        last_name_ciphertext: string;
        password_hash: string;
        roles: string[];
      }[]
    >`select u.id, u.status, u.email_ciphertext, u.first_name_ciphertext, u.last_name_ciphertext, u.password_hash,
             array(select role_name from user_roles r where r.user_id = u.id) as roles
        from users u where u.email_blind_index = ${emailBlindIndex(email)}`;
    expect(user?.id).toBe(account.id);
    expect(user?.status).toBe('active');
    expect(user?.roles).toEqual(['student']);
    expect(decrypt(user?.email_ciphertext ?? '', 'users.email')).toBe(email);
    expect(decrypt(user?.first_name_ciphertext ?? '', 'users.first_name')).toBe('Zoë');
    expect(decrypt(user?.last_name_ciphertext ?? '', 'users.last_name')).toBe("O'Brien-Nguyễn");
    expect(user?.password_hash).toMatch(/^\$argon2id\$/);
    await expectCanSignIn(email, GOOD_PASSWORD, account.id);

    // Both tokens were single use.
    const replayedLink = await problem(await post('/auth/register/verify', { token }), 400);
    expect(replayedLink.detail).toBe(INVALID_TOKEN_DETAIL);
    const replayedCompletion = await problem(
      await post('/auth/register/complete', {
        registrationToken: verified.registrationToken,
        firstName: 'Zoë',
        lastName: 'Again',
        password: GOOD_PASSWORD,
      }),
      400,
    );
    expect(replayedCompletion.detail).toBe(INVALID_TOKEN_DETAIL);
    expect(replayedCompletion.errors).toEqual([{ field: 'body.registrationToken', message: 'Invalid or expired' }]);
    expect(await userCount(email)).toBe(1);

    // Every step is audited, with its event and without the address.
    const audit = await app.db.sql<{ route: string; status: number; event: string | null; row: string }[]>`
      select route, status, event, a::text as row from audit_log a
       where route like 'auth/register/%' and (resource_ids ->> 'userId' = ${account.id} or event is not null)`;
    expect(audit.map((row) => row.event)).toEqual(
      expect.arrayContaining(['registration_requested', 'registration_verified', 'registration_completed']),
    );
    for (const row of audit) {
      expect(row.row).not.toContain(email);
      expect(row.row).not.toContain(token);
    }
  });

  test('an address with an account gets the same 202 and nothing is queued or stored for it', async () => {
    const existing = await createTestUser(app.db.sql, { roles: ['student'], email: uniqueEmail() });
    const fresh = uniqueEmail();
    const forFresh = await post('/auth/register/request', { email: fresh });
    const forExisting = await post('/auth/register/request', { email: existing.email });
    // Full-width letters normalise (NFKC) to the same address: still the existing account.
    const fullWidth = [...existing.email]
      .map((c) => (/[a-z0-9@]/.test(c) ? String.fromCodePoint((c.codePointAt(0) as number) + 0xfee0) : c))
      .join('');
    expect(fullWidth).not.toBe(existing.email);
    const forLookAlike = await post('/auth/register/request', { email: fullWidth });
    expect([forFresh.status, forExisting.status, forLookAlike.status]).toEqual([202, 202, 202]);
    const bodies = await Promise.all([forFresh.text(), forExisting.text(), forLookAlike.text()]);
    expect(new Set(bodies).size).toBe(1);
    for (const header of ['content-type', 'cache-control', 'content-length']) {
      expect(forExisting.headers.get(header)).toBe(forFresh.headers.get(header));
    }
    expect(await messagesTo(fresh)).toHaveLength(1);
    expect(await messagesTo(existing.email)).toEqual([]);
    expect(await requestStatus(existing.email)).toBeUndefined();
  });

  test('a new request replaces the token, but not within a minute of the last link', async () => {
    const email = uniqueEmail();
    const first = await requestLink(email);
    // A second request right away sends nothing (no mail-bombing an address) and keeps the first link.
    expect((await post('/auth/register/request', { email })).status).toBe(202);
    expect(await messagesTo(email)).toHaveLength(1);

    await ageRequest(email);
    const second = await requestLink(email);
    expect(second).not.toBe(first);
    expect(await messagesTo(email)).toHaveLength(2);
    expect((await problem(await post('/auth/register/verify', { token: first }), 400)).detail).toBe(
      INVALID_TOKEN_DETAIL,
    );
    await verify(second);

    // A new request after verification starts over: the registration token dies too.
    await ageRequest(email);
    const { registrationToken } = await verify(await requestLink(email));
    await ageRequest(email);
    await requestLink(email);
    const stale = await post('/auth/register/complete', {
      registrationToken,
      firstName: 'Ada',
      lastName: 'Stale',
      password: GOOD_PASSWORD,
    });
    expect((await problem(stale, 400)).detail).toBe(INVALID_TOKEN_DETAIL);
    expect(await requestStatus(email)).toBe('pending');
  });

  test('an expired link and an expired registration token get the same 400 as a wrong one', async () => {
    const email = uniqueEmail();
    const token = await requestLink(email);
    await expireTokensOf(email);
    expect((await problem(await post('/auth/register/verify', { token }), 400)).detail).toBe(INVALID_TOKEN_DETAIL);
    expect(await requestStatus(email)).toBe('pending');

    const other = uniqueEmail();
    const registrationToken = await registrationTokenFor(other);
    await expireTokensOf(other);
    const expired = await post('/auth/register/complete', {
      registrationToken,
      firstName: 'Late',
      lastName: 'Comer',
      password: GOOD_PASSWORD,
    });
    expect((await problem(expired, 400)).detail).toBe(INVALID_TOKEN_DETAIL);
    expect(await userCount(other)).toBe(0);
  });

  test('unknown, malformed and cross-step tokens: one message for all', async () => {
    const email = uniqueEmail();
    const linkToken = await requestLink(email);
    const unknown = randomBytes(32).toString('base64url');
    for (const token of [unknown, 'x', `${unknown}=`, "' or 1=1 --", '<script>alert(1)</script>', 'a'.repeat(1000)]) {
      const body = await problem(await post('/auth/register/verify', { token }), 400);
      expect(body.detail, token).toBe(INVALID_TOKEN_DETAIL);
      expect(body.errors).toEqual([{ field: 'body.token', message: 'Invalid or expired' }]);
    }
    // The emailed token is not a registration token, and a registration token is not a link.
    const asRegistration = await post('/auth/register/complete', {
      registrationToken: linkToken,
      firstName: 'Cross',
      lastName: 'Step',
      password: GOOD_PASSWORD,
    });
    expect((await problem(asRegistration, 400)).detail).toBe(INVALID_TOKEN_DETAIL);
    const { registrationToken } = await verify(linkToken);
    expect((await problem(await post('/auth/register/verify', { token: registrationToken }), 400)).detail).toBe(
      INVALID_TOKEN_DETAIL,
    );
    // Wrong types are plain validation errors naming the field.
    const wrongType = await problem(await post('/auth/register/verify', { token: 12345 }), 400);
    expect(wrongType.errors?.map((e) => e.field)).toEqual(['body.token']);
    expect(await requestStatus(email)).toBe('verified');
  });

  test('two concurrent completions with one token: exactly one account', async () => {
    const email = uniqueEmail();
    const registrationToken = await registrationTokenFor(email);
    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        post('/auth/register/complete', {
          registrationToken,
          firstName: 'Race',
          lastName: `Runner ${String.fromCharCode(65 + i)}`,
          password: GOOD_PASSWORD,
        }),
      ),
    );
    expect(responses.map((r) => r.status).sort()).toEqual([201, 400, 400, 400, 400]);
    expect(await userCount(email)).toBe(1);
  });

  test('409 when the address got an account between the link and the completion', async () => {
    const email = uniqueEmail();
    const registrationToken = await registrationTokenFor(email);
    await createTestUser(app.db.sql, { roles: ['staff'], email });
    const response = await post('/auth/register/complete', {
      registrationToken,
      firstName: 'Second',
      lastName: 'Comer',
      password: GOOD_PASSWORD,
    });
    expect((await problem(response, 409)).type).toBe('urn:aada:problem:conflict');
    expect(await userCount(email)).toBe(1);
    // Rolled back: the request is still verified, not completed by a failed attempt.
    expect(await requestStatus(email)).toBe('verified');
  });
});

describe('the password rule', () => {
  test('checkPasswordPolicy: length, the common list (any case, padded), the email local part', () => {
    expect(checkPasswordPolicy(GOOD_PASSWORD)).toBeNull();
    expect(checkPasswordPolicy('short-1')).toMatch(/at least 12/);
    expect(checkPasswordPolicy('🦷'.repeat(12))).toBeNull(); // 12 characters, 24 UTF-16 units
    expect(checkPasswordPolicy('x'.repeat(PASSWORD_MAX_LENGTH))).toBeNull();
    expect(checkPasswordPolicy('x'.repeat(PASSWORD_MAX_LENGTH + 1))).toMatch(/at most 128/);
    for (const common of [
      'password1234',
      'QwertyUiop123',
      'IloveYou1234',
      '123456789012',
      'monkey!!!!!!!!',
      '2024dentalassistant',
    ]) {
      expect(checkPasswordPolicy(common), common).toMatch(/too common/);
    }
    expect(checkPasswordPolicy('Jane.Doe-Spring-Garden', { email: 'Jane.Doe@example.test' })).toMatch(/email/);
    expect(checkPasswordPolicy('Jane.Doe-Spring-Garden', { email: 'someone@example.test' })).toBeNull();
    expect(checkPasswordPolicy('al-spring-garden-9', { email: 'al@example.test' })).toBeNull();
  });

  test('weak, common, personal and over-long passwords → 400 on body.password, nothing stored', async () => {
    const email = uniqueEmail();
    const localPart = email.split('@')[0] as string;
    const registrationToken = await registrationTokenFor(email);
    const cases: [string, RegExp][] = [
      ['short-pass', /at least 12/],
      ['Password1234', /too common/],
      ['qwertyuiop123', /too common/],
      [`My-${localPart.toUpperCase()}-2026`, /email/],
      ['x'.repeat(PASSWORD_MAX_LENGTH + 1), /at most 128/],
      ['y'.repeat(500_000), /at most 128/],
    ];
    for (const [password, reason] of cases) {
      const body = await problem(
        await post('/auth/register/complete', { registrationToken, firstName: 'Weak', lastName: 'Password', password }),
        400,
      );
      expect(body.detail, password.slice(0, 20)).toMatch(reason);
      expect(body.errors).toEqual([{ field: 'body.password', message: body.detail }]);
    }
    const wrongType = await problem(
      await post('/auth/register/complete', {
        registrationToken,
        firstName: 'A',
        lastName: 'B',
        password: 123456789012,
      }),
      400,
    );
    expect(wrongType.errors?.map((e) => e.field)).toEqual(['body.password']);
    expect(await userCount(email)).toBe(0);
    expect(await requestStatus(email)).toBe('verified');
    // The token still works with a good password.
    const ok = await post('/auth/register/complete', {
      registrationToken,
      firstName: 'Good',
      lastName: 'Password',
      password: GOOD_PASSWORD,
    });
    expect(ok.status).toBe(201);
  });
});

describe('bad input', () => {
  test('unicode tricks, SQL and markup in emails → 400 on body.email, nothing stored', async () => {
    const before = await app.db.sql<{ n: number }[]>`
      select (select count(*) from registration_requests) + (select count(*) from outbox_messages) as n`;
    const emails = [
      'jane\u200b.doe@example.test', // zero-width space
      'j\u0430ne@example.test', // Cyrillic а
      'jane@ex\u0430mple.test',
      '\u202etset.elpmaxe@enaj', // right-to-left override
      'jane@example.test\u0000',
      "x'); drop table users;--@example.test",
      '<script>alert(1)</script>@example.test',
      'jane@example.test, other@example.test',
      'jane@example.test\r\nBcc: victim@example.test',
      'not-an-address',
      `${'a'.repeat(250)}@example.test`,
      '',
    ];
    for (const email of emails) {
      const body = await problem(await post('/auth/register/request', { email }), 400);
      expect(
        body.errors?.map((e) => e.field),
        JSON.stringify(email),
      ).toEqual(['body.email']);
    }
    for (const body of [{}, { email: 42 }, { email: ['a@example.test'] }, { email: null }, []]) {
      expect((await post('/auth/register/request', body)).status, JSON.stringify(body)).toBe(400);
    }
    expect((await post('/auth/register/request', '{"email": "broken')).status).toBe(400);
    const wrongType = await post('/auth/register/request', { email: uniqueEmail() }, nextIp(), 'text/plain');
    expect(wrongType.status).toBe(415);
    const huge = await post('/auth/register/request', { email: uniqueEmail(), padding: 'x'.repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    const after = await app.db.sql<{ n: number }[]>`
      select (select count(*) from registration_requests) + (select count(*) from outbox_messages) as n`;
    expect(after[0]?.n).toBe(before[0]?.n);
  });

  test('SQL and script fragments in names → 400 naming the field; real names of any script pass', async () => {
    const email = uniqueEmail();
    const registrationToken = await registrationTokenFor(email);
    const complete = (firstName: unknown, lastName: unknown) =>
      post('/auth/register/complete', { registrationToken, firstName, lastName, password: GOOD_PASSWORD });
    const bad = [
      "Robert'); DROP TABLE users;--",
      '<script>alert(1)</script>',
      '<img src=x onerror=alert(1)>',
      "x' OR '1'='1",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell lookup, literally
      '${jndi:ldap://x}',
      '{{7*7}}',
      'Name\u0000',
      '   ',
      'Ann 2',
      'a'.repeat(101),
      '-Leading',
    ];
    for (const name of bad) {
      const first = await problem(await complete(name, 'Valid'), 400);
      expect(new Set(first.errors?.map((e) => e.field)), name).toEqual(new Set(['body.firstName']));
      const last = await problem(await complete('Valid', name), 400);
      expect(new Set(last.errors?.map((e) => e.field)), name).toEqual(new Set(['body.lastName']));
    }
    expect((await problem(await complete(42, ['x']), 400)).errors?.map((e) => e.field)).toEqual([
      'body.firstName',
      'body.lastName',
    ]);
    expect(await userCount(email)).toBe(0);
    expect(await requestStatus(email)).toBe('verified');
    expect((await complete('李', 'Ó Briain-Ní Dhomhnaill')).status).toBe(201);
  });
});

describe('per-source rate limit', () => {
  test('the 11th request in a minute from one address → 429 with Retry-After; other addresses unaffected', async () => {
    const ip = nextIp();
    for (let i = 0; i < 10; i++) {
      expect((await post('/auth/register/request', { email: uniqueEmail() }, ip)).status).toBe(202);
    }
    const email = uniqueEmail();
    const limited = await post('/auth/register/request', { email }, ip);
    const body = await problem(limited, 429);
    expect(body.type).toBe('urn:aada:problem:rate-limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Refused before any work: nothing queued for the address.
    expect(await messagesTo(email)).toEqual([]);
    expect((await post('/auth/register/request', { email }, nextIp())).status).toBe(202);
    // Each step counts separately: the same address may still open links, ten a minute.
    for (let i = 0; i < 10; i++) {
      expect((await post('/auth/register/verify', { token: 'x' }, ip)).status).toBe(400);
    }
    expect((await post('/auth/register/verify', { token: 'x' }, ip)).status).toBe(429);
    const registrationToken = randomBytes(32).toString('base64url');
    const completion = { registrationToken, firstName: 'Rate', lastName: 'Limited', password: GOOD_PASSWORD };
    for (let i = 0; i < 10; i++) {
      expect((await post('/auth/register/complete', completion, ip)).status).toBe(400);
    }
    expect((await post('/auth/register/complete', completion, ip)).status).toBe(429);
  });
});

describe('the outbox', () => {
  test('recipient, body and tokens are never stored in plaintext', async () => {
    const email = uniqueEmail();
    const token = await requestLink(email);
    const { registrationToken } = await verify(token);
    const dump = await app.db.sql<{ row: string }[]>`
      select o::text as row from outbox_messages o
      union all select r::text from registration_requests r
      union all select t::text from one_time_tokens t`;
    const text = dump.map((row) => row.row).join('\n');
    expect(text).toContain('registration_verification');
    for (const secret of [email, email.split('@')[0] as string, token, registrationToken, 'register/verify']) {
      expect(text).not.toContain(secret);
    }
    const [row] = await app.db.sql<{ recipient_ciphertext: string; body_ciphertext: string }[]>`
      select recipient_ciphertext, body_ciphertext from outbox_messages order by created_at desc limit 1`;
    expect(row?.recipient_ciphertext).toMatch(/^v1\./);
    expect(row?.body_ciphertext).toMatch(/^v1\./);
  });

  test('delivers each due message once, retries failures with a backoff, gives up after MAX_ATTEMPTS', async () => {
    await deliverPending(app.db.sql, { name: 'drain', send: async () => {} }, { batch: 1000 });
    const good = uniqueEmail();
    const flaky = uniqueEmail();
    const doomed = uniqueEmail();
    const ids = await Promise.all(
      [good, flaky, doomed].map(
        async (recipient) =>
          (
            await enqueueMessage(app.db.sql, {
              kind: 'test_notice',
              recipient,
              subject: 'Notice',
              body: `Hello ${recipient}`,
            })
          ).id,
      ),
    );
    await app.db.sql`update outbox_messages set attempts = ${MAX_ATTEMPTS - 1} where id = ${ids[2] as string}`;
    const delivered: OutgoingMessage[] = [];
    const sender: Sender = {
      name: 'fake',
      async send(message) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (message.recipient !== good) {
          throw Object.assign(new Error(`mailbox ${message.recipient} unavailable`), { code: 'MailboxUnavailable' });
        }
        delivered.push(message);
      },
    };
    // Two workers at once: SKIP LOCKED and the lease split the rows, nothing is sent twice.
    const reports = await Promise.all([
      deliverPending(app.db.sql, sender, { batch: 10 }),
      deliverPending(app.db.sql, sender, { batch: 10 }),
    ]);
    expect(reports.reduce((sum, r) => sum + r.sent + r.retrying + r.failed, 0)).toBe(3);
    expect(delivered.map((m) => m.recipient)).toEqual([good]);
    expect(delivered[0]).toMatchObject({ kind: 'test_notice', subject: 'Notice', body: `Hello ${good}` });

    const rows = await app.db.sql<
      { id: string; status: string; attempts: number; last_error: string | null; sent_at: Date | null; wait: number }[]
    >`select id, status, attempts, last_error, sent_at,
             extract(epoch from next_attempt_at - now())::float8 as wait
        from outbox_messages where id = any(${ids}::uuid[])`;
    const byId = new Map(rows.map((row) => [row.id, row]));
    expect(byId.get(ids[0] as string)).toMatchObject({ status: 'sent', attempts: 1, last_error: null });
    expect(byId.get(ids[0] as string)?.sent_at).toBeInstanceOf(Date);
    const retrying = byId.get(ids[1] as string);
    expect(retrying).toMatchObject({ status: 'queued', attempts: 1, sent_at: null });
    expect(retrying?.wait).toBeGreaterThan(50);
    expect(retrying?.wait).toBeLessThanOrEqual(60);
    expect(byId.get(ids[2] as string)).toMatchObject({ status: 'failed', attempts: MAX_ATTEMPTS });
    // The provider's text quoted the recipient: only the error's class and code are kept.
    for (const row of rows) {
      expect(row.last_error ?? '').not.toContain('@');
    }
    expect(retrying?.last_error).toBe('Error MailboxUnavailable');

    // Not due yet: a run now sends nothing; once due, the retry goes out.
    expect(await deliverPending(app.db.sql, sender, { batch: 10 })).toEqual({ sent: 0, retrying: 0, failed: 0 });
    await app.db.sql`update outbox_messages set next_attempt_at = now() where id = ${ids[1] as string}`;
    const okSender: Sender = { name: 'ok', send: async (message) => void delivered.push(message) };
    expect(await deliverPending(app.db.sql, okSender, { batch: 10 })).toEqual({ sent: 1, retrying: 0, failed: 0 });
    expect(delivered.map((m) => m.recipient)).toEqual([good, flaky]);
  });

  test('the sender: ACS when configured (both settings), the console only outside production', async () => {
    const acs = {
      ACS_EMAIL_ENDPOINT: 'https://aada.unitedstates.communication.azure.com',
      ACS_EMAIL_SENDER: 'DoNotReply@mail.example.test',
    };
    // Outside production (APP_ENV's default), where the console sender is allowed.
    const base = { APP_ENV: 'development', DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };
    expect(configuredSender(parseConfig({ ...base, ...acs })).name).toBe('azure-communication-services');
    expect(configuredSender(parseConfig(base)).name).toBe('console');
    expect(() => parseConfig({ ...base, ACS_EMAIL_ENDPOINT: acs.ACS_EMAIL_ENDPOINT })).toThrow(/both/);
    expect(() => parseConfig({ ...base, ...acs, ACS_EMAIL_ENDPOINT: 'http://insecure.example.test' })).toThrow(
      /ACS_EMAIL_ENDPOINT/,
    );
    const { registeredRoutes } = await import('../dev/functions-host');
    const timer = registeredFunction('outbox-sender');
    expect(timer?.triggerType).toBe('timerTrigger');
    expect(Object.values(timer?.metadata.bindings ?? {}).map((b) => b.schedule)).toContain('0 */1 * * * *');
    expect(registeredRoutes().map((route) => route.name)).not.toContain('outbox-sender');
  });

  test('development: the link is printed to the console right after the request', async () => {
    const email = uniqueEmail();
    let printed = '';
    await withEnv({ APP_ENV: 'development' }, async () => {
      printed = await consoleOutputOf(async () => {
        expect((await post('/auth/register/request', { email })).status).toBe(202);
        await vi.waitFor(async () => expect((await messagesTo(email))[0]?.status).toBe('sent'), { timeout: 5_000 });
      });
    });
    const [message] = await messagesTo(email);
    expect(printed).toContain(email);
    expect(printed).toContain(`http://localhost:5173/register/verify?token=${tokenIn(message?.body ?? '')}`);
  });

  test('the timer delivers through the configured sender outside production and logs counts only', async () => {
    const email = uniqueEmail();
    const token = await requestLink(email);
    const { sendOutbox } = await outboxSenderModule();
    const logged: string[] = [];
    const printed = await consoleOutputOf(() => sendOutbox({ isPastDue: false } as Timer, timerContext(logged)));
    expect(printed).toContain(token); // the console sender of development and tests
    expect(logged.join('\n')).toMatch(/outbox via console: [1-9]\d* sent/);
    expect(logged.join('\n')).not.toContain(email);
    expect((await messagesTo(email))[0]?.status).toBe('sent');
  });
});

describe('production', () => {
  // Parsed keys are cached by now; the fresh ones only satisfy the production configuration check.
  const PRODUCTION = { ...productionSettings(), DB_HOST: 'unused.example.test', DB_NAME: 'unused', DB_USER: 'unused' };

  test('no token, link or address reaches a log; delivery refuses to run without ACS', async () => {
    const email = uniqueEmail();
    const logged: string[] = [];
    let registrationToken = '';
    let linkToken = '';
    const printed = await withEnv(PRODUCTION, () =>
      consoleOutputOf(async () => {
        expect((await post('/auth/register/request', { email })).status).toBe(202);
        const [message] = await messagesTo(email);
        expect(message?.body).toContain('https://portal.example.test/register/verify?token=');
        linkToken = tokenIn(message?.body ?? '');
        ({ registrationToken } = await verify(linkToken));
        const { sendOutbox } = await outboxSenderModule();
        await expect(sendOutbox({ isPastDue: false } as Timer, timerContext(logged))).rejects.toThrow(
          /ACS_EMAIL_ENDPOINT and ACS_EMAIL_SENDER are required/,
        );
        await expect(
          consoleSender.send({ id: 'x', kind: 'test', recipient: email, subject: 's', body: linkToken }),
        ).rejects.toThrow(/never used in production/);
        // No development console delivery happens instead: the message is still queued, untried (below).
        const completed = await post('/auth/register/complete', {
          registrationToken,
          firstName: 'Prod',
          lastName: 'Student',
          password: GOOD_PASSWORD,
        });
        expect(completed.status).toBe(201);
      }),
    );
    const everything = `${printed}\n${logged.join('\n')}`;
    for (const secret of [linkToken, registrationToken, 'register/verify', email]) {
      expect(everything).not.toContain(secret);
    }
    // The message waits, queued and encrypted, for a configured sender.
    expect((await messagesTo(email))[0]).toMatchObject({ status: 'queued', attempts: 0 });
  });

  test('production refuses a portal URL that is not https', async () => {
    const { APP_PUBLIC_URL: _unused, ...withoutUrl } = PRODUCTION;
    await withEnv(withoutUrl, async () => {
      const printed = await consoleOutputOf(async () => {
        expect((await post('/auth/register/request', { email: uniqueEmail() })).status).toBe(500);
      });
      expect(printed).toMatch(/APP_PUBLIC_URL/);
    });
  });
});

/** The new account signs in over HTTP and its token reaches its own profile. */
async function expectCanSignIn(email: string, password: string, userId: string): Promise<void> {
  const response = await post('/auth/login', { email, password, client: 'tool' });
  expect(response.status).toBe(200);
  const { accessToken } = (await response.json()) as { accessToken: string };
  const me = await app.api('/auth/me', { headers: { authorization: `Bearer ${accessToken}` } });
  expect(me.status).toBe(200);
  expect((await me.json()) as { id: string; roles: string[] }).toMatchObject({ id: userId, roles: ['student'] });
}
