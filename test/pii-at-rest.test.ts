// Personal data at rest: after seeding the demo data and creating, changing, searching for and
// deactivating people through the API (including failed requests), no email address or name of any
// person appears in plaintext in any column of any table of the database, the audit log included;
// nor does a transcript PDF (its `%PDF` signature or the name it prints), a learner's SCORM answers or
// the reason a credential was revoked.
//
// How the scan avoids false alarms, and what it therefore does not claim:
// * Ciphertexts (`v1.<key>.<base64url>`) and password hashes are removed from text before searching:
//   they are random one-way or encrypted outputs, where short names would otherwise turn up by chance.
// * A single first name, last name or email local part is matched as a whole word (not inside a
//   longer word: "Ana" is not found in "anatomy"); and one that is already in the freshly migrated
//   database, before any person exists, is catalogue vocabulary ("Registrar" the demo registrar's
//   surname, and `registrar` the role), so it is not searched. Full emails and full names always are.
// * Binary columns hold random bytes (HMACs, hashes): only needles of 6 or more bytes are searched
//   there, as shorter ones would match random bytes by chance.
import { extractText, getDocumentProxy } from 'unpdf';
import { beforeAll, describe, expect, test } from 'vitest';
import { seedDemoData } from '../dev/seed';
import { decrypt, normalizeName } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createEnrollment, createProgram, recordProgress } from './helpers/records';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

interface Dump {
  texts: { where: string; value: string }[];
  binaries: { where: string; value: Buffer }[];
}

const CIPHERTEXT = /v1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]+/g;
const PASSWORD_HASH = /\$(?:argon2(?:id|i|d)\$[^\s"',}]*|2[aby]\$\d{2}\$[./A-Za-z0-9]{53})/g;
const MIN_BINARY_NEEDLE_BYTES = 6;

/** Every value of every column of every table in schema public: text as text, bytea as bytes. */
async function dumpDatabase(): Promise<Dump> {
  const sql = app.db.sql;
  const columns = await sql<{ table: string; column: string; udt: string }[]>`
    select c.table_name as table, c.column_name as column, c.udt_name as udt
      from information_schema.columns c
      join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
     where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
     order by c.table_name, c.ordinal_position`;
  const dump: Dump = { texts: [], binaries: [] };
  for (const { table, column, udt } of columns) {
    const where = `${table}.${column}`;
    if (udt === 'bytea' || udt === '_bytea') {
      const rows = await sql<{ value: Buffer | Buffer[] }[]>`
        select ${sql(column)} as value from ${sql(table)} where ${sql(column)} is not null`;
      for (const { value } of rows) {
        for (const bytes of Array.isArray(value) ? value : [value]) dump.binaries.push({ where, value: bytes });
      }
    } else {
      const rows = await sql<{ value: string }[]>`
        select ${sql(column)}::text as value from ${sql(table)} where ${sql(column)} is not null`;
      for (const { value } of rows) {
        dump.texts.push({ where, value: value.replace(CIPHERTEXT, ' ').replace(PASSWORD_HASH, ' ') });
      }
    }
  }
  return dump;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Bytes as a string of code units 0-255, lower-cased: a case-insensitive search in binary data. */
const bytesKey = (bytes: Buffer) => bytes.toString('latin1').toLowerCase();

/** Where each needle occurs: as a whole word in text, as bytes (long needles only) in binary data. */
function occurrences(dump: Dump, needles: readonly string[]): { needle: string; where: string }[] {
  const found: { needle: string; where: string }[] = [];
  for (const needle of new Set(needles.filter((n) => n.trim().length > 0))) {
    const word = new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(needle)}(?![\\p{L}\\p{N}])`, 'iu');
    for (const { where, value } of dump.texts) if (word.test(value)) found.push({ needle, where });
    const bytes = Buffer.from(needle, 'utf8');
    if (bytes.length >= MIN_BINARY_NEEDLE_BYTES) {
      const key = bytesKey(Buffer.from(needle.toLowerCase(), 'utf8'));
      for (const { where, value } of dump.binaries) if (bytesKey(value).includes(key)) found.push({ needle, where });
    }
  }
  return found;
}

interface Person {
  email: string;
  firstName: string;
  lastName: string;
}

/** The forms in which a person's data could leak: as typed, normalised, lower-cased, in parts. */
function wholeValueNeedles(person: Person): string[] {
  const fullName = `${person.firstName} ${person.lastName}`;
  return [person.email, person.email.toLowerCase(), fullName, normalizeName(fullName)];
}
function partNeedles(person: Person): string[] {
  const names = [person.firstName, person.lastName];
  const words = names.flatMap((name) => normalizeName(name).split(' '));
  return [...names, ...words, person.email.split('@')[0] as string].filter((part) => part.length >= 2);
}

let admin: TestUser;
/** A student with a transcript, SCORM answers and a revoked credential, each of which names them. */
let learner: TestUser;
let transcriptId: string;
/** Values that existed only in requests or before a change: they must not linger anywhere either. */
const formerValues: Person[] = [];
let catalogue: Dump;

beforeAll(async () => {
  catalogue = await dumpDatabase(); // the migrated database before any person exists
  await seedDemoData(app.db.sql);
  admin = await createTestUser(app.db.sql, { roles: ['admin'] });

  const people = [
    { email: 'Zephyrine.Quellborough@Example.test', firstName: 'Zéphyrine', lastName: 'Quellborough' },
    { email: 'thorunn.ohanrahan@example.test', firstName: 'Þórunn', lastName: "O'Hanrahan-Ng" },
    { email: 'siobhan.nibhriain@example.test', firstName: 'Siobhán', lastName: 'Ní Bhriain' },
  ];
  const ids: string[] = [];
  for (const person of people) {
    const response = await send('POST', '/users', {
      as: admin,
      body: {
        ...person,
        password: 'Scan-Test-Passphrase-1',
        roles: ['student'],
      },
    });
    expect(response.status).toBe(201);
    ids.push(((await response.json()) as { id: string }).id);
  }
  const [zephyrine, thorunn, siobhan] = ids as [string, string, string];

  // A change: the old values must be gone, the new ones encrypted.
  formerValues.push(people[0] as Person);
  const patched = await send('PATCH', `/users/${zephyrine}`, {
    as: admin,
    body: {
      email: 'zephyrine.vance@example.test',
      lastName: 'Quellborough-Vance',
    },
  });
  expect(patched.status).toBe(200);
  // Searches put PII in query strings; the audit trail keeps only the route template.
  expect(
    (await send('GET', `/users?email=${encodeURIComponent('thorunn.ohanrahan@example.test')}`, { as: admin })).status,
  ).toBe(200);
  expect((await send('GET', '/users?name=Siobh%C3%A1n%20N%C3%AD', { as: admin })).status).toBe(200);
  const search = await send('POST', '/users/search', {
    as: admin,
    body: { email: 'zephyrine.vance@example.test', name: 'zéph' },
  });
  expect(((await search.json()) as { items: unknown[] }).items).toHaveLength(1);
  // Failed requests carrying PII: a duplicate (409) and an invalid one (400).
  expect(
    (await send('POST', '/users', { as: admin, body: { ...(people[1] as Person), roles: ['student'] } })).status,
  ).toBe(409);
  const rejected = { email: 'rejected.applicant@example.test', firstName: 'Rejectedina', lastName: 'Bad\u0000Name' };
  formerValues.push(rejected);
  expect((await send('POST', '/users', { as: admin, body: { ...rejected, roles: ['student'] } })).status).toBe(400);
  expect((await send('PUT', `/users/${thorunn}/roles/registrar`, { as: admin })).status).toBe(204);
  expect((await send('POST', `/users/${siobhan}/deactivate`, { as: admin })).status).toBe(200);
  await academicRecords();
});

/** A transcript (PDF), SCORM answers that quote the learner's name, and a revocation reason naming them. */
async function academicRecords() {
  const sql = app.db.sql;
  learner = await createTestUser(sql, { roles: ['student'], firstName: 'Wilhelmina', lastName: 'Quistgaard-Ørsted' });
  const { programId, moduleIds } = await createProgram(sql, { code: 'PII-1', hours: [10], modulePrefix: 'P' });
  const enrollmentId = await createEnrollment(sql, learner.id, programId);
  const moduleId = moduleIds[0] as string;
  const name = `${learner.firstName} ${learner.lastName}`;
  const scorm = await send('PUT', `/scorm/${moduleId}`, {
    as: learner,
    body: {
      suspendData: JSON.stringify({ essay: `My name is ${name}` }),
      interactions: [{ id: 'q1', learner_response: `Signed, ${name}` }],
    },
  });
  expect(scorm.status).toBe(200);
  await recordProgress(sql, enrollmentId, moduleId, { status: 'passed', score: 91 });
  const transcript = await send('POST', '/transcripts', { as: admin, body: { studentId: learner.id, programId } });
  expect(transcript.status).toBe(201);
  transcriptId = ((await transcript.json()) as { id: string }).id;
  const credential = await send('POST', '/credentials', { as: admin, body: { studentId: learner.id, programId } });
  expect(credential.status).toBe(201);
  const { id } = (await credential.json()) as { id: string };
  expect(
    (await send('POST', `/credentials/${id}/revoke`, { as: admin, body: { reason: `Issued to ${name} in error` } }))
      .status,
  ).toBe(200);
}

/** Every person in the database, decrypted with the app's keys (the needles of the scan). */
async function everyone(): Promise<Person[]> {
  const rows = await app.db.sql<{ email: string; first: string; last: string }[]>`
    select email_ciphertext as email, first_name_ciphertext as first, last_name_ciphertext as last from users`;
  return rows.map((row) => ({
    email: decrypt(row.email, 'users.email'),
    firstName: decrypt(row.first, 'users.first_name'),
    lastName: decrypt(row.last, 'users.last_name'),
  }));
}

/** Where a value holds a PDF in the clear: its `%PDF` signature, anywhere in text or bytes. */
function plaintextPdfs(dump: Dump): string[] {
  return [
    ...dump.texts.filter(({ value }) => value.includes('%PDF')),
    ...dump.binaries.filter(({ value }) => value.includes('%PDF')),
  ].map(({ where }) => where);
}

function needlesFor(people: readonly Person[]): string[] {
  const vocabulary = (part: string) => occurrences(catalogue, [part]).length > 0;
  return [...people.flatMap(wholeValueNeedles), ...people.flatMap(partNeedles).filter((part) => !vocabulary(part))];
}

describe('no personal data in plaintext at rest', () => {
  test('the scan finds a planted email and names (text, array and binary columns)', async () => {
    const sql = app.db.sql;
    await sql`create table public.pii_scan_canary (note text, tags text[], raw bytea, doc jsonb)`;
    try {
      await sql`insert into public.pii_scan_canary values
        ('contact: ZEPHYRINE.VANCE@example.test', null, null, null),
        (null, array['x', 'Þórunn'], null, null),
        (null, null, ${Buffer.from('\u0001quellborough-vance\u0002')}, null),
        (null, null, null, ${sql.json({ name: 'Siobhán Ní Bhriain' })}),
        (null, null, ${Buffer.from('%PDF-1.7 plaintext document')}, null)`;
      const planted = occurrences(await dumpDatabase(), needlesFor(await everyone())).filter((hit) =>
        hit.where.startsWith('pii_scan_canary.'),
      );
      expect(new Set(planted.map((hit) => hit.where))).toEqual(
        new Set(['pii_scan_canary.note', 'pii_scan_canary.tags', 'pii_scan_canary.raw', 'pii_scan_canary.doc']),
      );
      expect(plaintextPdfs(await dumpDatabase())).toEqual(['pii_scan_canary.raw']);
    } finally {
      await sql`drop table public.pii_scan_canary`;
    }
  });

  test('no seeded or API-created person, nor a value that was changed or rejected, appears anywhere', async () => {
    const people = await everyone();
    expect(people.length).toBeGreaterThanOrEqual(36 + 7 + 3);
    expect(people.map((person) => person.email)).toContain('student01@demo.aada.edu');
    expect(people.map((person) => person.firstName)).toContain('Chloé');
    expect(people.map((person) => person.lastName)).toContain('Quellborough-Vance');
    const dump = await dumpDatabase();
    expect(dump.texts.length).toBeGreaterThan(1000);
    expect(occurrences(dump, needlesFor([...people, ...formerValues]))).toEqual([]);
  });

  test('the audit log recorded those requests (PHI, failures included) by route template and ids only', async () => {
    const rows = await app.db.sql<{ route: string; status: number; phi: boolean; resource_ids: unknown }[]>`
      select route, status, phi, resource_ids from audit_log where route like 'users%' order by id`;
    expect(rows.map((row) => row.status)).toEqual(expect.arrayContaining([200, 201, 204, 400, 409]));
    expect(rows.every((row) => row.route.startsWith('users') && !row.route.includes('?'))).toBe(true);
    expect(rows.filter((row) => row.phi).length).toBeGreaterThanOrEqual(8);
    for (const row of rows) {
      for (const value of Object.values((row.resource_ids ?? {}) as Record<string, string>)) {
        expect(value).toMatch(/^[0-9a-f-]{36}$|^[a-z_]+$/);
      }
    }
    const auditDump = (await dumpDatabase()).texts.filter((entry) => entry.where.startsWith('audit_log.'));
    expect(auditDump.length).toBeGreaterThan(0);
    expect(
      occurrences({ texts: auditDump, binaries: [] }, needlesFor([...(await everyone()), ...formerValues])),
    ).toEqual([]);
  });

  test('no transcript PDF, SCORM answer or revocation reason is stored in plaintext', async () => {
    // The PDF the API serves does print the name: what is stored must not show it, nor be a PDF.
    const served = await send('GET', `/transcripts/${transcriptId}/pdf`, { as: admin });
    expect(served.status).toBe(200);
    const document = await getDocumentProxy(new Uint8Array(await served.arrayBuffer()));
    expect((await extractText(document, { mergePages: true })).text).toContain('Wilhelmina Quistgaard-Ørsted');
    const [stored] = await app.db.sql<{ content: Buffer }[]>`
      select content_ciphertext as content from transcript_documents where transcript_id = ${transcriptId}`;
    expect(stored?.content.length).toBeGreaterThan(1000);

    const dump = await dumpDatabase();
    expect(plaintextPdfs(dump)).toEqual([]);
    const person = { email: learner.email, firstName: learner.firstName, lastName: learner.lastName };
    expect(occurrences(dump, [...wholeValueNeedles(person), ...partNeedles(person), 'My name is', 'Signed,'])).toEqual(
      [],
    );
  });
});
