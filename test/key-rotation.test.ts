// Key rotation (`npm run keys:rotate`, dev/rotate-keys.ts): every personal-data ciphertext moves to
// the current key without loss, an interrupted run resumes, rows held by other transactions are
// skipped and picked up later, a value that cannot be decrypted stops the run without writing, and
// once the old key is removed from configuration everything still reads through the API.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { ciphertextTables, rotateKeys } from '../dev/rotate-keys';
import { resetConfigForTests } from '../lib/config';
import { decrypt, emailBlindIndex, encrypt, type PiiField, resetKeysForTests } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { createTestUser, type TestUser } from './helpers/users';

const key = () => randomBytes(32).toString('base64');
const KEY_A = key();
const KEY_B = key();
const KEY_C = key();

const app = useTestApp({ env: { PII_ENCRYPTION_KEYS: `a:${KEY_A}` } });

/** Switches the keys of this process: the app under test and the rotation both read them. */
function useKeys(value: string): void {
  process.env.PII_ENCRYPTION_KEYS = value;
  resetConfigForTests();
  resetKeysForTests();
}

interface Stored {
  table: string;
  column: string;
  id: string;
  field: PiiField;
  plaintext: string;
}

/** Every value this file encrypted, to check after rotation that each one still decrypts to itself. */
const stored: Stored[] = [];
const createdUsers: { id: string; email: string; firstName: string; lastName: string }[] = [];
let admin: TestUser;

async function insertEncrypted(table: string, values: Record<string, unknown>, plain: Record<string, string>) {
  const row: Record<string, unknown> = { ...values };
  for (const [column, text] of Object.entries(plain)) {
    row[column] = encrypt(text, fieldName(table, column));
  }
  const [inserted] = await app.db.sql<
    { id: string }[]
  >`insert into ${app.db.sql(table)} ${app.db.sql(row)} returning id`;
  const id = (inserted as { id: string }).id;
  for (const [column, text] of Object.entries(plain)) {
    stored.push({ table, column, id, field: fieldName(table, column), plaintext: text });
  }
  return id;
}

function fieldName(table: string, column: string): PiiField {
  if (table === 'outbox_messages') return `outbox.${column.replace(/_ciphertext$/, '')}`;
  return `${table}.${column.replace(/_ciphertext$/, '')}`;
}

/** `table.column` of every `*_ciphertext` column the migrations create. */
function ciphertextColumnsInMigrations(): string[] {
  const found = new Set<string>();
  const dir = path.join(REPO_ROOT, 'migrations');
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.sql'))) {
    const up = readFileSync(path.join(dir, file), 'utf8').split(/^--\s*migrate:down/m)[0] as string;
    let table = '';
    for (const line of up.split('\n')) {
      const opened = /\b(?:CREATE TABLE|ALTER TABLE(?: ONLY)?)\s+(?:IF NOT EXISTS\s+)?(?:public\.)?(\w+)/i.exec(line);
      if (opened) table = opened[1] as string;
      for (const match of line.matchAll(/\b(\w+_ciphertext)\s+(?:text|bytea)\b/gi)) found.add(`${table}.${match[1]}`);
    }
  }
  return [...found].sort();
}

async function allCiphertexts(): Promise<{ where: string; value: string }[]> {
  const values: { where: string; value: string }[] = [];
  for (const table of await ciphertextTables(app.db.sql)) {
    for (const { name } of table.columns) {
      const rows = await app.db.sql<{ value: string }[]>`
        select ${app.db.sql(name)} as value from ${app.db.sql(table.table)} where ${app.db.sql(name)} is not null`;
      values.push(...rows.map((row) => ({ where: `${table.table}.${name}`, value: row.value })));
    }
  }
  return values;
}

async function listedUsers(): Promise<Response> {
  return app.api('/users?limit=200', { headers: admin.headers });
}

beforeAll(async () => {
  useKeys(`a:${KEY_A}`);
  admin = await createTestUser(app.db.sql, { roles: ['admin'] });
  await app.api('/roles', { headers: admin.headers });
  for (let i = 0; i < 7; i++) {
    const body = {
      email: `rotate-${i}-${randomBytes(3).toString('hex')}@example.test`,
      firstName: ['Chloé', 'Øyvind', 'Renée', 'Zoë', 'Ana', 'Nguyễn', 'Siobhán'][i] as string,
      lastName: `Rotation ${String.fromCharCode(65 + i)}`,
      roles: ['student'],
    };
    const response = await app.api('/users', {
      method: 'POST',
      headers: { ...admin.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    createdUsers.push({ id, email: body.email, firstName: body.firstName, lastName: body.lastName });
    stored.push(
      { table: 'users', column: 'email_ciphertext', id, field: 'users.email', plaintext: body.email },
      { table: 'users', column: 'first_name_ciphertext', id, field: 'users.first_name', plaintext: body.firstName },
      { table: 'users', column: 'last_name_ciphertext', id, field: 'users.last_name', plaintext: body.lastName },
    );
  }
  const student = createdUsers[0] as { id: string };
  const email = 'applicant@example.test';
  await insertEncrypted(
    'registration_requests',
    {
      email_blind_index: emailBlindIndex(email),
      token_hash: randomBytes(32),
      expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    },
    { email_ciphertext: email },
  );
  await insertEncrypted(
    'outbox_messages',
    { kind: 'verify_email' },
    { recipient_ciphertext: email, body_ciphertext: 'Open https://example.test/verify?token=secret' },
  );
  await insertEncrypted(
    'leads',
    { email_blind_index: emailBlindIndex('lead@example.test') },
    {
      first_name_ciphertext: 'Lea',
      last_name_ciphertext: 'Lead',
      email_ciphertext: 'lead@example.test',
      phone_ciphertext: '+1 404 555 0100',
    },
  );
  await insertEncrypted(
    'complaints',
    { user_id: student.id },
    { details_ciphertext: 'Anxiety attack during the practical exam' },
  );
  await insertEncrypted('complaints', {}, { details_ciphertext: 'Anonymous complaint about parking' });
  // Supervisor email and phone left NULL: NULLs stay NULL.
  await insertEncrypted(
    'externships',
    { user_id: student.id, site_name: 'Bright Smiles' },
    { supervisor_name_ciphertext: 'Dr. Ruth Molar' },
  );
  const [template] = await app.db.sql<{ id: string }[]>`
    insert into document_templates (name, version, content, sha256)
    values ('Enrollment agreement', '1', ${Buffer.from('%PDF')}, ${randomBytes(32)}) returning id`;
  const documentId = await insertEncrypted(
    'signed_documents',
    { template_id: (template as { id: string }).id, user_id: student.id, retention_until: '2032-01-01' },
    { form_data_ciphertext: JSON.stringify({ dob: '1999-04-01', ssnLast4: '1234' }) },
  );
  // Append-only for the app role: the rotation runs as the owner.
  await insertEncrypted(
    'document_signatures',
    { document_id: documentId, signer_user_id: student.id, signature_type: 'student' },
    { signature_ciphertext: 'data:image/png;base64,iVBORw0KGgo=', typed_name_ciphertext: 'Chloé Rotation0' },
  );
});

describe('key rotation', () => {
  test('covers every *_ciphertext column of the migrations', async () => {
    const discovered = (await ciphertextTables(app.db.sql))
      .flatMap((table) => table.columns.map((column) => `${table.table}.${column.name}`))
      .sort();
    expect(discovered).toEqual(ciphertextColumnsInMigrations());
    expect(discovered).toContain('users.email_ciphertext');
  });

  test('the app reads with the configured keys only (so the checks below prove something)', async () => {
    useKeys(`b:${KEY_B}`);
    expect((await listedUsers()).status).toBe(500);
    useKeys(`a:${KEY_A}`);
    expect((await listedUsers()).status).toBe(200);
  });

  test('rotates A → B in an interrupted run and a resumed one, without loss', async () => {
    const before = await allCiphertexts();
    expect(before.length).toBeGreaterThan(30);
    expect(before.every(({ value }) => value.startsWith('v1.a.'))).toBe(true);
    const rowsOnA = await rowsWithOldKey('b');

    useKeys(`b:${KEY_B},a:${KEY_A}`);
    const lines: string[] = [];
    const interrupted = await rotateKeys(app.db.sql, { batchSize: 2, maxBatches: 4, log: (line) => lines.push(line) });
    expect(interrupted.complete).toBe(false);
    expect(interrupted.rotated).toBeGreaterThan(0);
    expect(lines.join('\n')).toContain('run again to continue');
    const halfway = await allCiphertexts();
    expect(halfway.some(({ value }) => value.startsWith('v1.a.'))).toBe(true);
    expect(halfway.some(({ value }) => value.startsWith('v1.b.'))).toBe(true);

    // Mid-rotation the app reads both keys, and writes new values with B.
    const response = await listedUsers();
    expect(response.status).toBe(200);
    const listed = ((await response.json()) as { items: { id: string; email: string }[] }).items;
    for (const user of createdUsers) expect(listed.find((item) => item.id === user.id)?.email).toBe(user.email);

    const resumed = await rotateKeys(app.db.sql, { batchSize: 2, log: (line) => lines.push(line) });
    expect(resumed.complete).toBe(true);
    // Nothing was rewritten twice: the resumed run did only what the first left.
    expect(interrupted.rotated + resumed.rotated).toBe(rowsOnA);

    const after = await allCiphertexts();
    expect(after).toHaveLength(before.length);
    const notOnB = after.filter(({ value }) => !value.startsWith('v1.b.'));
    expect(notOnB.map(({ where }) => where)).toEqual([]);
    for (const value of stored) {
      const [row] = await app.db.sql<{ value: string }[]>`
        select ${app.db.sql(value.column)} as value from ${app.db.sql(value.table)} where id = ${value.id}`;
      expect(row?.value.startsWith('v1.b.'), `${value.table}.${value.column}`).toBe(true);
      expect(decrypt(row?.value as string, value.field), `${value.table}.${value.column}`).toBe(value.plaintext);
    }
    const [nulls] = await app.db.sql`select supervisor_email_ciphertext, supervisor_phone_ciphertext from externships`;
    expect(nulls).toEqual({ supervisor_email_ciphertext: null, supervisor_phone_ciphertext: null });

    const again = await rotateKeys(app.db.sql, { batchSize: 2 });
    expect(again).toEqual({ rotated: 0, complete: true });
  });

  test('with key A removed from configuration, everything still reads through the API', async () => {
    useKeys(`b:${KEY_B}`);
    const response = await listedUsers();
    expect(response.status).toBe(200);
    const listed = ((await response.json()) as { items: { id: string; email: string; firstName: string }[] }).items;
    for (const user of createdUsers) {
      expect(listed.find((item) => item.id === user.id)).toMatchObject({
        email: user.email,
        firstName: user.firstName,
      });
      const one = await app.api(`/users/${user.id}`, { headers: admin.headers });
      expect(await one.json()).toMatchObject({ email: user.email, lastName: user.lastName });
    }
    const search = await app.api(`/users?email=${encodeURIComponent((createdUsers[3] as { email: string }).email)}`, {
      headers: admin.headers,
    });
    expect(((await search.json()) as { items: { id: string }[] }).items.map((item) => item.id)).toEqual([
      (createdUsers[3] as { id: string }).id,
    ]);
  });

  test('rows locked by a request are skipped, reported, and rotated by the next run', async () => {
    useKeys(`c:${KEY_C},b:${KEY_B}`);
    const locked = createdUsers[2] as { id: string };
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let lockTaken: () => void = () => {};
    const taken = new Promise<void>((resolve) => {
      lockTaken = resolve;
    });
    const holder = app.db.sql.begin(async (tx) => {
      await tx`select id from users where id = ${locked.id} for update`;
      lockTaken();
      await released;
    });
    await taken;
    const lines: string[] = [];
    const first = await rotateKeys(app.db.sql, { batchSize: 3, log: (line) => lines.push(line) });
    expect(first.complete).toBe(false);
    expect(lines.join('\n')).toContain('users: 1 rows were locked');
    const [stillOld] = await app.db.sql`select email_ciphertext from users where id = ${locked.id}`;
    expect(stillOld?.email_ciphertext).toMatch(/^v1\.b\./);
    release();
    await holder;
    const second = await rotateKeys(app.db.sql, { batchSize: 3 });
    expect(second).toEqual({ rotated: 1, complete: true });
    expect((await allCiphertexts()).every(({ value }) => value.startsWith('v1.c.'))).toBe(true);
  });

  test('a value that cannot be decrypted stops the run, names where it is, and writes nothing of its batch', async () => {
    useKeys(`b:${KEY_B},c:${KEY_C}`);
    const target = stored.find((value) => value.table === 'complaints') as Stored;
    const [row] = await app.db.sql<
      { value: string }[]
    >`select details_ciphertext as value from complaints where id = ${target.id}`;
    const original = (row as { value: string }).value;
    const tampered = `${original.slice(0, -2)}${original.endsWith('AA') ? 'BB' : 'AA'}`;
    await app.db.sql`update complaints set details_ciphertext = ${tampered} where id = ${target.id}`;
    const error = await rotateKeys(app.db.sql, { batchSize: 50 }).catch((caught: unknown) => caught as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`complaints.details_ciphertext (id ${target.id})`);
    expect((error as Error).message).not.toContain(target.plaintext);
    const complaints = await app.db.sql<{ value: string }[]>`select details_ciphertext as value from complaints`;
    expect(complaints.every(({ value }) => !value.startsWith('v1.b.'))).toBe(true);

    await app.db.sql`update complaints set details_ciphertext = ${original} where id = ${target.id}`;
    expect((await rotateKeys(app.db.sql)).complete).toBe(true);
    expect((await allCiphertexts()).every(({ value }) => value.startsWith('v1.b.'))).toBe(true);
  });
});

describe('npm run keys:rotate', () => {
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
  const script = path.join(REPO_ROOT, 'dev', 'rotate-keys.ts');
  const run = (env: Record<string, string | undefined>) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        tsx,
        [script],
        { env: { ...process.env, ...env }, timeout: 30_000 },
        (error, stdout, stderr) => resolve({ code: child.exitCode ?? (error ? 1 : 0), stdout, stderr }),
      );
    });

  test('runs as a command against DATABASE_URL, and says what it needs without it', async () => {
    const result = await run({ DATABASE_URL: app.db.url, PII_ENCRYPTION_KEYS: `c:${KEY_C},b:${KEY_B}` });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Re-encrypting with key "c"');
    expect(result.stdout).toContain('Complete:');
    useKeys(`c:${KEY_C}`);
    expect((await listedUsers()).status).toBe(200);
    const values = await allCiphertexts();
    expect(values.every(({ value }) => value.startsWith('v1.c.'))).toBe(true);

    const missing = await run({ DATABASE_URL: undefined });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('DATABASE_URL is required');
  });
});

/** Rows (not values) with at least one ciphertext not on `currentId`. */
async function rowsWithOldKey(currentId: string): Promise<number> {
  let rows = 0;
  for (const table of await ciphertextTables(app.db.sql)) {
    const ids = new Set<string>();
    for (const { name } of table.columns) {
      const found = await app.db.sql<{ id: string }[]>`
        select id from ${app.db.sql(table.table)}
         where ${app.db.sql(name)} is not null and not starts_with(${app.db.sql(name)}, ${`v1.${currentId}.`})`;
      for (const { id } of found) ids.add(id);
    }
    rows += ids.size;
  }
  return rows;
}
