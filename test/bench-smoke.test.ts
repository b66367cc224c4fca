// The benchmark cannot rot: its data generator at a tiny size, the generated accounts used through
// the API, and one scenario driven by the bench's own load code. No figure is asserted (speed
// belongs in bench/); only that the machinery works and the data is what the API expects.
import { describe, expect, test } from 'vitest';
import { generate } from '../bench/generate';
import { runScenario, scenario } from '../bench/scenarios';
import { BENCH_PASSWORD, makePlan, staffEmail, studentEmail, tableLoads } from '../bench/school';
import type { TableLoad } from '../bench/school-plan';
import { decrypt, emailBlindIndex, nameSearchToken, normalizeName } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';

const app = useTestApp();

const STUDENTS = 20;
const AUDIT_PER_STUDENT = 5;
const STAFF_ROLES = 7;

async function count(table: string): Promise<number> {
  const [row] = await app.db.sql<{ n: number }[]>`select count(*)::int as n from ${app.db.sql(table)}`;
  return row?.n ?? -1;
}

const signIn = (email: string) =>
  send('POST', '/auth/login', { body: { email, password: BENCH_PASSWORD, client: 'tool' } });

describe('the bench data generator at a tiny size', () => {
  test('writes every table it promises, with the row counts it reports', async () => {
    const result = await generate(app.db.sql, { students: STUDENTS, auditPerStudent: AUDIT_PER_STUDENT, seed: 7 });
    expect(result.rows.users).toBe(STUDENTS + STAFF_ROLES);
    expect(result.rows.audit_log).toBe(STUDENTS * AUDIT_PER_STUDENT);
    for (const [table, rows] of Object.entries(result.rows)) expect(await count(table), table).toBe(rows);
    for (const table of ['programs', 'modules', 'enrollments', 'module_progress', 'ledger_entries']) {
      expect(result.rows[table], table).toBeGreaterThan(0);
    }
    // Every student has one or two enrollments; one account per staff role.
    const perStudent = await app.db.sql<{ enrollments: number }[]>`
      select (select count(*) from enrollments e where e.user_id = r.user_id)::int as enrollments
        from user_roles r where r.role_name = 'student'`;
    expect(perStudent).toHaveLength(STUDENTS);
    expect(perStudent.every((row) => row.enrollments >= 1 && row.enrollments <= 2)).toBe(true);
    const roles = await app.db.sql<{ role_name: string }[]>`
      select role_name from user_roles where role_name <> 'student' order by role_name`;
    expect(roles).toHaveLength(STAFF_ROLES);
    // The audit trail is spread over two years and mixes PHI and non-PHI routes and outcomes.
    const [audit] = await app.db.sql<{ days: number; phi: number; routes: number; statuses: number }[]>`
      select extract(day from max(occurred_at) - min(occurred_at))::int as days,
             count(*) filter (where phi)::int as phi, count(distinct route)::int as routes,
             count(distinct status)::int as statuses
        from audit_log`;
    expect(audit?.days).toBeGreaterThan(300);
    expect(audit?.phi).toBeGreaterThan(0);
    expect(audit?.phi).toBeLessThan(STUDENTS * AUDIT_PER_STUDENT);
    expect(audit?.routes).toBeGreaterThan(3);
  });

  test('stores PII encrypted, found by its blind index and name tokens, never in plaintext', async () => {
    const [student] = await app.db.sql<{ id: string; email_ciphertext: string; last_name_ciphertext: string }[]>`
      select id, email_ciphertext, last_name_ciphertext from users
       where email_blind_index = ${emailBlindIndex(studentEmail(7))}`;
    expect(student).toBeDefined();
    const email = decrypt(student?.email_ciphertext as string, 'users.email');
    expect(email).toBe(studentEmail(7));
    expect(student?.email_ciphertext).not.toContain('bench.aada.test');
    // The first three letters of the longest word of the last name ("O'Brien" is two words).
    const lastName = decrypt(student?.last_name_ciphertext as string, 'users.last_name');
    const word = normalizeName(lastName)
      .split(' ')
      .sort((a, b) => b.length - a.length)[0] as string;
    const token = nameSearchToken(word.slice(0, 3));
    expect(token, lastName).not.toBeNull();
    const found = await app.db.sql<{ id: string }[]>`
      select id from users where name_search_tokens @> array[${token as Buffer}::bytea]`;
    expect(
      found.map((row) => row.id),
      lastName,
    ).toContain(student?.id);
  });

  test('the generated accounts sign in through the API, and staff see the generated students', async () => {
    const [active] = await app.db.sql<{ email_ciphertext: string }[]>`
      select u.email_ciphertext from users u join user_roles r on r.user_id = u.id and r.role_name = 'student'
       where u.status = 'active' order by u.created_at limit 1`;
    const studentLogin = await signIn(decrypt(active?.email_ciphertext as string, 'users.email'));
    expect(studentLogin.status).toBe(200);
    const adminLogin = await signIn(staffEmail('admin'));
    expect(adminLogin.status).toBe(200);
    const { accessToken } = (await adminLogin.json()) as { accessToken: string };
    const list = await app.api('/students?limit=5', { headers: { Authorization: `Bearer ${accessToken}` } });
    expect(list.status).toBe(200);
    const page = (await list.json()) as { items: { email: string }[] };
    expect(page.items).toHaveLength(5);
    expect(page.items.every((item) => item.email.endsWith('@bench.aada.test'))).toBe(true);
  });

  test('refuses a database that already holds data', async () => {
    await expect(generate(app.db.sql, { students: 1 })).rejects.toThrow(/already has/);
  });
});

describe('the bench school', () => {
  test('is the same for the same seed and different for another (ciphertexts aside)', () => {
    const options = { students: 30, auditPerStudent: 3, seed: 11, now: new Date('2026-01-15T00:00:00Z') };
    const rowsOf = (seed: number) => {
      const plan = makePlan({ ...options, seed });
      const { relational, audit } = tableLoads(plan, 'not-a-hash', seed);
      // Ciphertexts are fresh every time (random nonces): users rows, and the *_ciphertext columns of the
      // compliance records, are left out; every other value is plain data.
      const plain = (load: TableLoad) => {
        const kept = load.columns.split(', ').map((column) => !column.endsWith('_ciphertext'));
        return [...load.rows()].map((row) => row.filter((_, i) => kept[i]));
      };
      return [...relational.filter((load) => load.table !== 'users'), audit].map(plain);
    };
    expect(rowsOf(11)).toEqual(rowsOf(11));
    expect(rowsOf(12)).not.toEqual(rowsOf(11));
  });
});

describe('a bench scenario through the bench load driver', () => {
  test('the catalogue for one second at two connections: requests completed, no errors', async () => {
    const outcome = await runScenario(
      scenario('catalogue'),
      { api: app.url },
      { connections: 2, durationSeconds: 1, warmupSeconds: 0 },
    );
    expect(outcome.skipped).toBeUndefined();
    expect(outcome.result?.requests).toBeGreaterThan(0);
    expect(outcome.result?.errors).toBe(0);
    expect(outcome.result?.unexpectedStatus).toBe(0);
    expect(outcome.result?.statusCounts['200']).toBe(outcome.result?.requests);
  });

  test('a route the app does not serve is skipped with a reason, not failed', async () => {
    const outcome = await runScenario(scenario('ping'), { api: app.url }, { connections: 1, durationSeconds: 1 });
    expect(outcome.skipped).toMatch(/route not available yet/);
    expect(outcome.result).toBeUndefined();
  });
});
