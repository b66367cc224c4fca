// Rotating the people-index key (PII_BLIND_INDEX_KEY; `npm run keys:reindex`, dev/reindex-keys.ts):
// sign-in, the student search by name, links by email and the one-account-per-address rule hold over
// real HTTP before the rotation, while rows are on both keys (a re-index killed in the middle), and
// after the old key is retired; retiring is refused while any row still uses the old key.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { checkRetirement, indexKeyUsage, reindexPeople } from '../dev/reindex-keys';
import { resetConfigForTests } from '../lib/config';
import { emailBlindIndex, resetKeysForTests } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const OLD = randomBytes(32).toString('base64');
const NEW = randomBytes(32).toString('base64');
const ROTATING = `new:${NEW},${OLD}`;

// Every phase signs everyone in (and one wrong password): the throttle's defaults would refuse that.
const app = useTestApp({ env: { PII_BLIND_INDEX_KEY: OLD, LOGIN_SOURCE_LIMIT: '1000', LOGIN_MAX_FAILURES: '100' } });

/** Switches the keys of this process: the app under test and the re-index both read them. */
function useIndexKeys(value: string, xapi?: string): void {
  process.env.PII_BLIND_INDEX_KEY = value;
  if (xapi === undefined) delete process.env.PII_XAPI_INDEX_KEY;
  else process.env.PII_XAPI_INDEX_KEY = xapi;
  resetConfigForTests();
  resetKeysForTests();
}

let admin: TestUser;
const students: TestUser[] = [];

async function signIn(email: string, password = TEST_PASSWORD): Promise<number> {
  const response = await send('POST', '/auth/login', { body: { email, password, client: 'tool' } });
  return response.status;
}

async function searchByName(name: string): Promise<string[]> {
  const response = await send('GET', `/students?limit=200&name=${encodeURIComponent(name)}`, { as: admin });
  expect(response.status).toBe(200);
  const page = (await response.json()) as { items: { id: string }[] };
  return page.items.map((item) => item.id);
}

async function createStudent(email: string, lastName: string): Promise<number> {
  const response = await send('POST', '/students', {
    as: admin,
    body: { email, firstName: 'Rotated', lastName, password: 'Another-Long-Passphrase-42' },
  });
  return response.status;
}

/** Everyone can sign in and be found by a name beginning, whichever key their row is on. */
async function everyoneWorks(): Promise<void> {
  for (const student of students) {
    expect(await signIn(student.email), student.email).toBe(200);
    expect(await searchByName(student.lastName.slice(0, 5)), student.lastName).toContain(student.id);
    expect(await searchByName(`rot ${student.lastName.slice(0, 4)}`)).toContain(student.id);
  }
  expect(await signIn(students[0]?.email as string, 'Not-The-Password-1')).toBe(401);
}

async function usersOn(key: string): Promise<number> {
  const usage = await indexKeyUsage(app.db.sql);
  return usage.find((use) => use.table === 'users' && use.key === key)?.rows ?? 0;
}

const script = path.join(REPO_ROOT, 'dev', 'reindex-keys.ts');

function runCommand(args: string[], env: Record<string, string>, onLine?: (line: string, child: ChildProcess) => void) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }>((resolve) => {
    // One process (tsx as a loader, not its CLI, which runs the script in a child a kill would miss).
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      env: { ...process.env, DATABASE_URL: app.db.url, ...env },
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      for (const line of chunk.toString().split('\n')) if (line) onLine?.(line, child);
    });
    child.on('close', (code, signal) => resolve({ code, signal, stdout }));
  });
}

beforeAll(async () => {
  useIndexKeys(OLD);
  admin = await createTestUser(app.db.sql, { roles: ['admin'] });
  for (let n = 0; n < 8; n++) {
    students.push(
      await createTestUser(app.db.sql, {
        roles: ['student'],
        firstName: 'Rotated',
        lastName: `Quill${String.fromCharCode(97 + n)}${randomBytes(2).toString('hex')}`,
      }),
    );
  }
});

describe('rotating the people-index key', () => {
  test('before: sign-in and search work on the key without an id', async () => {
    expect(await usersOn('(the key without an id)')).toBeGreaterThanOrEqual(9);
    await everyoneWorks();
  });

  test('after deploying the new key: old rows still sign in and are found, new rows use the new key, one account per address across both', async () => {
    useIndexKeys(ROTATING);
    await everyoneWorks();
    expect(await createStudent('Fresh.Student@Example.test', 'Newkeyperson')).toBe(201);
    expect(await usersOn('new')).toBe(1);
    // An address held under the old key is taken for a new account and for a change of address.
    expect(await createStudent(students[1]?.email.toUpperCase() as string, 'Duplicate')).toBe(409);
    const change = await send('PATCH', `/students/${students[3]?.id}`, {
      as: admin,
      body: { email: students[2]?.email },
    });
    expect(change.status).toBe(409);
    expect(await searchByName('newkey')).toHaveLength(1);
    expect(await signIn('fresh.student@example.test', 'Another-Long-Passphrase-42')).toBe(200);
  });

  // The commands start their own Node with tsx, slow on a loaded machine: these tests wait longer.
  test('during: a re-index killed after its first batch leaves rows on both keys, and everything still works', {
    timeout: 180_000,
  }, async () => {
    let killed = false;
    const run = await runCommand(
      ['--batch-size', '2', '--pause-ms', '2000'],
      { PII_BLIND_INDEX_KEY: ROTATING },
      (line, child) => {
        if (!killed && line.includes('batch committed')) {
          killed = true;
          child.kill('SIGKILL');
        }
      },
    );
    expect(run.signal).toBe('SIGKILL');
    const moved = await usersOn('new');
    expect(moved).toBe(3);
    expect(await usersOn('(the key without an id)')).toBeGreaterThan(0);
    await everyoneWorks();
    expect(await createStudent(students[0]?.email as string, 'Duplicate')).toBe(409);
    expect(await createStudent(students[7]?.email as string, 'Duplicate')).toBe(409);

    const retire = await runCommand(['--retire'], { PII_BLIND_INDEX_KEY: ROTATING });
    expect(retire.code).toBe(1);
    expect(retire.stdout).toMatch(/Refused: rows still use an older index key/);
    expect(retire.stdout).toMatch(/users: \d+ rows on \(the key without an id\)/);
  });

  test('an interrupted run in-process continues where it stopped', async () => {
    const first = await reindexPeople(app.db.sql, { batchSize: 2, maxBatches: 1 });
    expect(first).toEqual({ reindexed: 2, complete: false });
    await everyoneWorks();
  });

  test('the command runs again to the end, then allows retiring the old key', { timeout: 180_000 }, async () => {
    const run = await runCommand([], { PII_BLIND_INDEX_KEY: ROTATING });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Complete:');
    expect(await usersOn('(the key without an id)')).toBe(0);
    const retire = await runCommand(['--retire'], { PII_BLIND_INDEX_KEY: ROTATING });
    expect(retire.code).toBe(0);
    expect(retire.stdout).toContain('keep only that entry of PII_BLIND_INDEX_KEY');
    expect((await checkRetirement(app.db.sql)).retirable).toBe(true);
  });

  test('after retiring: only the new key is configured and every account signs in and is found', async () => {
    useIndexKeys(`new:${NEW}`, OLD);
    await everyoneWorks();
    expect(await signIn('fresh.student@example.test', 'Another-Long-Passphrase-42')).toBe(200);
    expect(await createStudent(students[4]?.email as string, 'Duplicate')).toBe(409);
    const [stored] = await app.db.sql<{ email_blind_index: Buffer }[]>`
      select email_blind_index from users where id = ${students[5]?.id as string}`;
    expect(stored?.email_blind_index.equals(emailBlindIndex(students[5]?.email as string))).toBe(true);
    expect(stored?.email_blind_index.subarray(0, 4).toString('ascii')).toBe('new:');
    expect((await checkRetirement(app.db.sql)).retirable).toBe(true);
  });
});
