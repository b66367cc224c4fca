// Key rotation (`npm run keys:rotate`, dev/rotate-keys.ts): every personal-data ciphertext moves to
// the current key without loss, an interrupted run resumes, rows held by other transactions are
// skipped and picked up later, a value that cannot be decrypted stops the run without writing, and
// once the old key is removed from configuration everything still reads through the API. Plaintext
// left from before migration 0008 (transcript PDFs, SCORM data, revocation reasons) reads through the
// API until the rotation encrypts it into the ciphertext columns and clears it.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { ciphertextTables, rotateKeys } from '../dev/rotate-keys';
import { resetConfigForTests } from '../lib/config';
import { decrypt, decryptBytes, emailBlindIndex, encrypt, type PiiField, resetKeysForTests } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { createEnrollment, createProgram } from './helpers/records';
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
let instructor: TestUser;

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
      for (const match of line.matchAll(/\bRENAME COLUMN \w+ TO (\w+_ciphertext)\b/gi))
        found.add(`${table}.${match[1]}`);
    }
  }
  return [...found].sort();
}

async function allCiphertexts(): Promise<{ where: string; value: string }[]> {
  const values: { where: string; value: string }[] = [];
  for (const table of await ciphertextTables(app.db.sql)) {
    for (const { name } of table.columns) {
      const rows = await app.db.sql<{ value: string | Buffer }[]>`
        select ${app.db.sql(name)} as value from ${app.db.sql(table.table)} where ${app.db.sql(name)} is not null`;
      // A bytea ciphertext starts with the same `v1.<keyId>.` header as a text one.
      const text = (value: string | Buffer) => (typeof value === 'string' ? value : value.toString('latin1'));
      values.push(...rows.map((row) => ({ where: `${table.table}.${name}`, value: text(row.value) })));
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
  const placement = await createProgram(app.db.sql, { code: 'ROT-X' });
  const placementEnrollment = await createEnrollment(app.db.sql, student.id, placement.programId);
  await insertEncrypted(
    'complaints',
    { user_id: student.id, filed_by: student.id, category: 'academic' },
    { details_ciphertext: 'Anxiety attack during the practical exam' },
  );
  await insertEncrypted(
    'complaints',
    { filed_by: admin.id, category: 'facilities' },
    { details_ciphertext: 'Complaint about parking', complainant_name_ciphertext: 'A. Visitor' },
  );
  // Supervisor email and phone left NULL: NULLs stay NULL.
  await insertEncrypted(
    'externships',
    {
      user_id: student.id,
      enrollment_id: placementEnrollment,
      site_name: 'Bright Smiles',
      start_date: '2026-01-05',
      created_by: admin.id,
    },
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
  await academicRecords(student.id);
});

/** A transcript the app generated (its PDF in the binary envelope), as its id and SHA-256. */
let transcript: { id: string; sha256: string };
/** Records as they were stored before migration 0008: plaintext in the legacy columns. */
const legacy = {
  pdf: Buffer.from('%PDF-1.7 legacy transcript of Chloé Rotation0'),
  suspendData: 'legacy answers: Chloé',
  interactions: [{ id: 'q1', learner_response: 'legacy words' }],
  reason: 'Legacy reason: name misspelt',
  transcriptId: '',
  credentialId: '',
  learnerId: '',
  moduleId: '',
};

async function academicRecords(learnerId: string) {
  const sql = app.db.sql;
  const { programId, moduleIds } = await createProgram(sql, { code: 'ROT-1', hours: [10, 10], modulePrefix: 'R' });
  await createEnrollment(sql, learnerId, programId);
  const response = await app.api('/transcripts', {
    method: 'POST',
    headers: { ...admin.headers, 'Content-Type': 'application/json' },
    body: JSON.stringify({ studentId: learnerId, programId }),
  });
  expect(response.status).toBe(201);
  const generated = (await response.json()) as { id: string; pdf: { sha256: string } };
  transcript = { id: generated.id, sha256: generated.pdf.sha256 };
  await insertEncrypted(
    'scorm_records',
    { user_id: learnerId, module_id: moduleIds[0] },
    { suspend_data_ciphertext: 'saved answers', interactions_ciphertext: '[{"id":"q1"}]' },
  );
  await insertEncrypted(
    'credentials',
    {
      user_id: learnerId,
      program_id: programId,
      credential_type: 'certificate',
      cert_serial: 'AADA-2026-ROTATE01',
      revoked_at: new Date(),
    },
    { revoke_reason_ciphertext: 'Issued in error' },
  );

  const [old] = await sql<{ id: string }[]>`
    insert into transcripts (user_id, program_id, gpa) values (${learnerId}, ${programId}, 3.1) returning id`;
  legacy.transcriptId = (old as { id: string }).id;
  await sql`
    insert into transcript_documents (transcript_id, content, content_length, sha256)
    values (${legacy.transcriptId}, ${legacy.pdf}, ${legacy.pdf.length}, ${createHash('sha256').update(legacy.pdf).digest()})`;
  legacy.learnerId = learnerId;
  // SCORM answers are for the programme's instructors only (docs/access-policy.md).
  instructor = await createTestUser(sql, { roles: ['instructor'] });
  await sql`insert into instructor_assignments (instructor_id, program_id) values (${instructor.id}, ${programId})`;
  legacy.moduleId = moduleIds[1] as string;
  await sql`
    insert into scorm_records (user_id, module_id, suspend_data, interactions)
    values (${learnerId}, ${legacy.moduleId}, ${legacy.suspendData}, ${sql.json(legacy.interactions)})`;
  const [credential] = await sql<{ id: string }[]>`
    insert into credentials (user_id, program_id, credential_type, cert_serial, revoked_at, revoke_reason)
    values (${learnerId}, ${programId}, 'certificate', 'AADA-2026-LEGACY01', now(), ${legacy.reason}) returning id`;
  legacy.credentialId = (credential as { id: string }).id;
}

/** The legacy records as the API serves them (to an admin, and SCORM data to the instructor). */
async function legacyThroughApi() {
  const pdf = await app.api(`/transcripts/${legacy.transcriptId}/pdf`, { headers: admin.headers });
  const scorm = await app.api(`/scorm/${legacy.moduleId}/users/${legacy.learnerId}`, { headers: instructor.headers });
  const credentials = await app.api(`/credentials?studentId=${legacy.learnerId}`, { headers: admin.headers });
  return {
    pdf: Buffer.from(await pdf.arrayBuffer()),
    scorm: (await scorm.json()) as { suspendData: string; interactions: unknown },
    reason: ((await credentials.json()) as { items: { id: string; revokeReason: string }[] }).items.find(
      (item) => item.id === legacy.credentialId,
    )?.revokeReason,
  };
}

async function legacyPlaintextLeft(): Promise<number> {
  const [row] = await app.db.sql<{ count: number }[]>`
    select (select count(*) from transcript_documents where content is not null)
         + (select count(*) from scorm_records where suspend_data is not null or interactions is not null)
         + (select count(*) from credentials where revoke_reason is not null) as count`;
  return Number(row?.count);
}

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

  test('plaintext stored before migration 0008 reads through the API as it was', async () => {
    expect(await legacyPlaintextLeft()).toBe(3);
    const read = await legacyThroughApi();
    expect(read.pdf.equals(legacy.pdf)).toBe(true);
    expect(read.scorm).toMatchObject({ suspendData: legacy.suspendData, interactions: legacy.interactions });
    expect(read.reason).toBe(legacy.reason);
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
    // …plus the four legacy plaintext values, now encrypted (a PDF, suspend data, interactions, a reason).
    expect(after).toHaveLength(before.length + 4);
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

  test('the rotation encrypted the legacy plaintext into the ciphertext columns and cleared it', async () => {
    expect(await legacyPlaintextLeft()).toBe(0);
    const sql = app.db.sql;
    const [document] = await sql<{ content: Buffer }[]>`
      select content_ciphertext as content from transcript_documents where transcript_id = ${legacy.transcriptId}`;
    expect(decryptBytes(document?.content as Buffer, 'transcript_documents.content').equals(legacy.pdf)).toBe(true);
    const [scorm] = await sql<{ suspend: string; interactions: string }[]>`
      select suspend_data_ciphertext as suspend, interactions_ciphertext as interactions
        from scorm_records where module_id = ${legacy.moduleId}`;
    expect(decrypt(scorm?.suspend as string, 'scorm_records.suspend_data')).toBe(legacy.suspendData);
    expect(JSON.parse(decrypt(scorm?.interactions as string, 'scorm_records.interactions'))).toEqual(
      legacy.interactions,
    );
    const read = await legacyThroughApi();
    expect(read.pdf.equals(legacy.pdf)).toBe(true);
    expect(read.scorm).toMatchObject({ suspendData: legacy.suspendData, interactions: legacy.interactions });
    expect(read.reason).toBe(legacy.reason);
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
    const pdf = await app.api(`/transcripts/${transcript.id}/pdf`, { headers: admin.headers });
    expect(
      createHash('sha256')
        .update(Buffer.from(await pdf.arrayBuffer()))
        .digest('hex'),
    ).toBe(transcript.sha256);
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

/** Rows (not values) with a ciphertext not on `currentId` or legacy plaintext still to encrypt. */
async function rowsWithOldKey(currentId: string): Promise<number> {
  const sql = app.db.sql;
  const header = `v1.${currentId}.`;
  const onOldKey = (value: unknown) =>
    value !== null && !(typeof value === 'string' ? value : (value as Buffer).toString('latin1')).startsWith(header);
  let rows = 0;
  for (const table of await ciphertextTables(sql)) {
    const names = table.columns.flatMap((column) => [column.name, ...(column.legacy ? [column.legacy.name] : [])]);
    const found = await sql<Record<string, unknown>[]>`select ${sql(names)} from ${sql(table.table)}`;
    rows += found.filter((row) =>
      table.columns.some((column) => onOldKey(row[column.name]) || (column.legacy && row[column.legacy.name] !== null)),
    ).length;
  }
  return rows;
}
