// The migration runner and the schema it builds, on a real PostgreSQL: fresh databases from the test
// server, the repository's migration files (or copies of them in a temporary folder).
import { randomBytes } from 'node:crypto';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  defaultMigrationsDir,
  loadMigrations,
  MIGRATION_LOCK_KEY,
  migrateDown,
  migrateUp,
  migrationStatus,
  parseMigration,
  pendingMigrations,
  splitStatements,
} from '../lib/migrations';
import { createDatabase, type TestDatabase } from './helpers/database';

const MIGRATIONS = loadMigrations();
const VERSIONS = MIGRATIONS.map((migration) => migration.version);

const databases: TestDatabase[] = [];
const tempDirs: string[] = [];

async function freshDatabase(): Promise<TestDatabase> {
  const database = await createDatabase();
  databases.push(database);
  return database;
}

async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'aada-migrations-'));
  tempDirs.push(dir);
  await cp(defaultMigrationsDir(), dir, { recursive: true });
  return dir;
}

afterAll(async () => {
  await Promise.all(databases.map((database) => database.drop()));
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function publicIndexes(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select indexname as name from pg_indexes where schemaname = 'public' order by indexname`;
  return rows.map((row) => row.name);
}

async function insertUser(sql: postgres.Sql | postgres.ReservedSql): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext)
    values ('v1:test:e', ${randomBytes(32)}, 'v1:test:f', 'v1:test:l')
    returning id`;
  return (row as { id: string }).id;
}

async function insertProgram(sql: postgres.Sql): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into programs (code, name, credential_level, total_clock_hours)
    values (${`P-${randomBytes(4).toString('hex')}`}, 'Dental Assisting', 'certificate', 400)
    returning id`;
  return (row as { id: string }).id;
}

describe('migration files', () => {
  it('are numbered, parse, and 0002 runs outside a transaction', () => {
    expect(VERSIONS.slice(0, 2)).toEqual(['0001', '0002']);
    // Numbers are reserved per engineer, so a later one may land before an earlier one: ascending, unique.
    expect(
      VERSIONS.every((version, i) => /^\d{4}$/.test(version) && (i === 0 || version > (VERSIONS[i - 1] as string))),
    ).toBe(true);
    const [core, indexes] = MIGRATIONS;
    expect(core?.transactional).toBe(true);
    expect(indexes?.transactional).toBe(false);
    for (const migration of MIGRATIONS) {
      expect(migration.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(splitStatements(migration.down).length).toBeGreaterThan(0);
    }
  });

  it('0002 down drops exactly the indexes its up creates', () => {
    const indexes = MIGRATIONS[1];
    const created = splitStatements(indexes?.up ?? '').map(
      (statement) => /CREATE INDEX CONCURRENTLY IF NOT EXISTS (\w+) ON/.exec(statement)?.[1],
    );
    const dropped = splitStatements(indexes?.down ?? '').map(
      (statement) => /^DROP INDEX CONCURRENTLY IF EXISTS (\w+);$/.exec(statement)?.[1],
    );
    expect(created).not.toContain(undefined);
    expect(dropped).not.toContain(undefined);
    expect(new Set(created).size).toBe(created.length);
    expect([...dropped].sort()).toEqual([...created].sort());
  });

  it('rejects malformed files with a message naming them', () => {
    expect(() => parseMigration('1_x.sql', '-- migrate:up\nselect 1;\n-- migrate:down\n')).toThrow(/1_x\.sql/);
    expect(() => parseMigration('0009_no_down.sql', '-- migrate:up\nselect 1;\n')).toThrow(/0009_no_down\.sql/);
    expect(() => parseMigration('0009_early.sql', 'select 1;\n-- migrate:up\nselect 1;\n-- migrate:down\n')).toThrow(
      /0009_early\.sql has SQL before/,
    );
    expect(() =>
      parseMigration('0009_late_flag.sql', '-- migrate:up\n-- migrate:no-transaction\nselect 1;\n-- migrate:down\n'),
    ).toThrow(/0009_late_flag\.sql/);
  });

  it('splits no-transaction parts at lines ending in a semicolon, ignoring comments', () => {
    expect(
      splitStatements('-- a comment;\nselect 1;\n\n-- another\nselect\n  2; -- trailing\n-- only a comment\n'),
    ).toEqual(['-- a comment;\nselect 1;', '-- another\nselect\n  2; -- trailing']);
  });
});

describe('the runner', () => {
  it('applies every file to an empty database, rolls all back, and applies them again', async () => {
    const { sql } = await freshDatabase();
    expect(await pendingMigrations(sql)).toEqual(VERSIONS);

    expect(await migrateUp(sql)).toEqual(VERSIONS);
    const status = await migrationStatus(sql);
    expect(status.map((s) => [s.version, s.applied, s.checksumMatches])).toEqual(VERSIONS.map((v) => [v, true, true]));
    expect(status.every((s) => s.appliedAt instanceof Date)).toBe(true);
    expect(await pendingMigrations(sql)).toEqual([]);
    expect(await migrateUp(sql)).toEqual([]);

    for (const version of [...VERSIONS].reverse()) expect(await migrateDown(sql)).toBe(version);
    expect(await migrateDown(sql)).toBeNull();
    // Nothing of the schema is left but the runner's own table.
    const relations = await sql<{ name: string }[]>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' order by 1`;
    expect(relations.map((r) => r.name)).toEqual(['schema_migrations', 'schema_migrations_pkey']);
    const functions = await sql`
      select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'`;
    expect(functions.length).toBe(0);
    expect(await pendingMigrations(sql)).toEqual(VERSIONS);

    expect(await migrateUp(sql)).toEqual(VERSIONS);
  });

  it('rolls back and re-applies the index migration on a database with data, losing nothing', async () => {
    const { sql } = await freshDatabase();
    await migrateUp(sql);
    const indexesBefore = await publicIndexes(sql);
    expect(indexesBefore.filter((name) => name.startsWith('idx_')).length).toBeGreaterThan(30);

    const programId = await insertProgram(sql);
    await sql`insert into modules (program_id, code, title, delivery_type, clock_hours, position)
              values (${programId}, 'M1', 'Infection control', 'online', 20, 1)`;
    const userId = await insertUser(sql);
    await sql`insert into audit_log (user_id, method, route, status, phi)
              values (${userId}, 'GET', 'students/{id}', 200, true)`;
    const snapshot = async () =>
      sql`select (select count(*) from programs)::int as programs, (select count(*) from modules)::int as modules,
                 (select count(*) from users)::int as users, (select count(*) from audit_log)::int as audit`;
    const before = await snapshot();
    expect(before).toEqual([{ programs: 1, modules: 1, users: 1, audit: 1 }]);

    // Roll back to just before the index migration (later migrations, if any, first).
    const rolledBack: (string | null)[] = [];
    while (rolledBack.at(-1) !== '0002') rolledBack.push(await migrateDown(sql));
    expect(rolledBack).toEqual(VERSIONS.slice(1).reverse());
    const indexNames = splitStatements(MIGRATIONS[1]?.up ?? '').map(
      (statement) => /EXISTS (\w+) ON/.exec(statement)?.[1],
    );
    const remaining = await publicIndexes(sql);
    expect(indexNames.filter((name) => remaining.includes(name as string))).toEqual([]);
    expect(await snapshot()).toEqual(before);
    expect(await pendingMigrations(sql)).toEqual(VERSIONS.slice(1));

    expect(await migrateUp(sql)).toEqual(VERSIONS.slice(1));
    expect(await publicIndexes(sql)).toEqual(indexesBefore);
    expect(await snapshot()).toEqual(before);
    const invalid = await sql`select 1 from pg_index where not indisvalid`;
    expect(invalid.length).toBe(0);
  });

  it('refuses to run when an applied file changed or vanished, naming it', async () => {
    const { sql } = await freshDatabase();
    const dir = await copyOfMigrations();
    await migrateUp(sql, { dir });

    const core = path.join(dir, '0001_core_schema.sql');
    await appendFile(core, '\n-- an edit after the fact\n');
    await expect(migrateUp(sql, { dir })).rejects.toThrow(/0001_core_schema\.sql has changed/);
    await expect(migrateDown(sql, { dir })).rejects.toThrow(/0001_core_schema\.sql/);
    const status = await migrationStatus(sql, { dir });
    expect(status.find((s) => s.version === '0001')?.checksumMatches).toBe(false);
    await cp(path.join(defaultMigrationsDir(), '0001_core_schema.sql'), core);

    await rm(path.join(dir, '0002_performance_indexes.sql'));
    await expect(migrateUp(sql, { dir })).rejects.toThrow(/0002_performance_indexes\.sql .*no longer on disk/);

    // Still up to date with the original files: nothing was run or recorded by the refused runs.
    expect(await migrateUp(sql)).toEqual([]);
  });

  it('applies each file exactly once when two runners start together', async () => {
    const { url, sql } = await freshDatabase();
    // Both runners find the lock taken and wait; then they race for it when it is released.
    const holder = await sql.reserve();
    await holder`select pg_advisory_lock(${MIGRATION_LOCK_KEY}::bigint)`;
    const first = postgres(url, { max: 2, onnotice: () => {} });
    const second = postgres(url, { max: 2, onnotice: () => {} });
    const lines: string[] = [];
    try {
      const running = Promise.all([
        migrateUp(first, { log: (line) => lines.push(`first: ${line}`) }),
        migrateUp(second, { log: (line) => lines.push(`second: ${line}`) }),
      ]);
      await vi.waitFor(() => expect(lines.filter((line) => line.includes('waiting')).length).toBe(2));
      await holder`select pg_advisory_unlock(${MIGRATION_LOCK_KEY}::bigint)`;
      holder.release();
      const results = await running;
      expect(results.flat().sort()).toEqual(VERSIONS);
      expect(results.map((applied) => applied.length).sort()).toEqual([0, VERSIONS.length]);
    } finally {
      await Promise.all([first.end(), second.end()]);
    }
    const rows = await sql`select version from schema_migrations order by version`;
    expect(rows.map((row) => row.version)).toEqual(VERSIONS);
    const locks = await sql`
      select 1 from pg_locks
       where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
    expect(locks.length).toBe(0);
  });

  it('drops an invalid index left by a failed concurrent build before building it again', async () => {
    const { sql } = await freshDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'aada-migrations-'));
    tempDirs.push(dir);
    await writeFile(
      path.join(dir, '0001_table.sql'),
      '-- migrate:up\ncreate table t (a int);\ninsert into t values (1), (1);\n-- migrate:down\ndrop table t;\n',
    );
    await migrateUp(sql, { dir });
    await expect(sql.unsafe('create unique index concurrently idx_t_a on t (a)')).rejects.toThrow();
    const [left] = await sql`select indisvalid from pg_index where indexrelid = 'idx_t_a'::regclass`;
    expect(left?.indisvalid).toBe(false);

    await writeFile(
      path.join(dir, '0002_index.sql'),
      '-- migrate:no-transaction\n-- migrate:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_t_a ON t (a);\n' +
        '-- migrate:down\nDROP INDEX CONCURRENTLY IF EXISTS idx_t_a;\n',
    );
    const log: string[] = [];
    expect(await migrateUp(sql, { dir, log: (line) => log.push(line) })).toEqual(['0002']);
    expect(log.some((line) => line.includes('invalid index'))).toBe(true);
    const [built] = await sql`select indisvalid, indisunique from pg_index where indexrelid = 'idx_t_a'::regclass`;
    expect(built).toEqual({ indisvalid: true, indisunique: false });
  });
});

describe('the schema', () => {
  let database: TestDatabase;
  let sql: postgres.Sql;

  beforeAll(async () => {
    database = await freshDatabase();
    sql = database.sql;
    await migrateUp(sql);
  });

  /** Runs `work` as the application role on a dedicated connection. */
  async function asApp<T>(work: (conn: postgres.ReservedSql) => Promise<T>): Promise<T> {
    const client = postgres(database.url, { max: 1, onnotice: () => {} });
    const conn = await client.reserve();
    try {
      await conn`set role aada_app`;
      return await work(conn);
    } finally {
      conn.release();
      await client.end();
    }
  }

  it('lets the application role append to audit_log but never change or remove it', async () => {
    await asApp(async (app) => {
      const [row] = await app<{ id: string }[]>`
        insert into audit_log (method, route, status, roles, resource_ids, client_ip)
        values ('GET', 'students/{id}', 200, ${['admin']}, ${app.json({ id: 'x' })}, '203.0.113.7')
        returning id`;
      expect(row?.id).toBeDefined();
      await expect(app`update audit_log set status = 500`).rejects.toMatchObject({ code: '42501' });
      await expect(app`delete from audit_log`).rejects.toMatchObject({ code: '42501' });
      await expect(app`truncate audit_log`).rejects.toMatchObject({ code: '42501' });
    });
    // Even the owner cannot edit an audit row.
    await expect(sql`update audit_log set status = 500`).rejects.toThrow(/append-only/);
  });

  it('prunes audit rows only through prune_audit_log, keeping PHI rows for six years', async () => {
    await sql`
      insert into audit_log (occurred_at, method, route, status, phi, event) values
        (now() - interval '1 year',  'GET', 'prune/{case}', 200, false, 'prune_old_plain'),
        (now() - interval '1 year',  'GET', 'prune/{case}', 200, true,  'prune_old_phi'),
        (now() - interval '7 years', 'GET', 'prune/{case}', 200, true,  'prune_ancient_phi'),
        (now(),                      'GET', 'prune/{case}', 200, false, 'prune_recent')`;
    await asApp(async (app) => {
      await expect(app`select prune_audit_log(interval '1 day')`).rejects.toMatchObject({ code: '22023' });
      const [pruned] = await app<{ removed: string }[]>`select prune_audit_log(interval '180 days') as removed`;
      expect(Number(pruned?.removed)).toBe(2);
    });
    const left = await sql`select event from audit_log where route = 'prune/{case}' order by event`;
    expect(left.map((row) => row.event)).toEqual(['prune_old_phi', 'prune_recent']);
  });

  it('grants the application role exactly the intended privileges', async () => {
    const rows = await sql<{ name: string; select: boolean; update: boolean; delete: boolean; truncate: boolean }[]>`
      select c.relname as name,
             has_table_privilege('aada_app', c.oid, 'SELECT') as select,
             has_table_privilege('aada_app', c.oid, 'UPDATE') as update,
             has_table_privilege('aada_app', c.oid, 'DELETE') as delete,
             has_table_privilege('aada_app', c.oid, 'TRUNCATE') as truncate
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and c.relkind in ('r', 'p')
       order by 1`;
    expect(rows.length).toBeGreaterThan(30);
    // Every table is readable (a table added without grants fails here).
    expect(rows.filter((row) => !row.select).map((row) => row.name)).toEqual([]);
    expect(rows.filter((row) => row.truncate).map((row) => row.name)).toEqual([]);
    expect(rows.filter((row) => row.delete).map((row) => row.name)).toEqual([
      'h5p_user_states', // a player clears its reader's state ({"state": null})
      'instructor_assignments',
      'login_attempts',
      'module_xapi_activities', // a module's editors change which activities belong to it
      'one_time_tokens',
      'outbox_messages',
      'rate_limit_buckets',
      'refresh_tokens',
      'registration_requests',
      'user_roles',
      'xapi_documents', // xAPI's State and profile documents have DELETE in the spec
    ]);
    expect(rows.filter((row) => !row.update).map((row) => row.name)).toEqual([
      'attendance_enrollment_totals', // kept by the database's trigger only (0050)
      'attendance_records',
      'attendance_sessions',
      'audit_daily_routes', // a closed day's counts never change
      'audit_log',
      'complaint_transitions',
      'content_files', // column-level: only retiring a file
      'document_events',
      'document_signatures',
      'enrollment_status_changes',
      'externship_hours', // column-level: only the approval columns
      'externships', // column-level: only the verification columns and the end date
      'h5p_activities', // column-level: only retiring an activity
      'h5p_activity_files', // written once with its activity
      'h5p_user_states', // column-level: only the state and when it was saved
      'idempotency_keys',
      'ledger_entries', // append-only
      'ledger_entry_memos', // append-only (key rotation runs as the owner)
      'lesson_versions', // append-only: every save of a lesson is a new version
      'lrs_credentials', // column-level: only the revocation columns
      'module_xapi_activities', // a mapping is replaced, never edited
      'refund_approval_reversals', // append-only: an undone approval stays on record
      'refund_due_notices', // a notice sent stays sent
      'refund_overrides', // append-only: a later override is a new row
      'refund_rules', // a rule change is a new row
      'refunds', // column-level: status, approval and remittance only
      'roles',
      'schema_migrations',
      'skills_checkoffs',
      'stored_files', // keys:rotate, run as the owner, moves a row to its re-encrypted object
      'withdrawals',
      'xapi_attachments',
      'xapi_progress_events', // column-level: only `voided`
      'xapi_statement_index',
      'xapi_statements', // column-level: only `voided`
    ]);
  });

  it('rejects a negative ledger amount and an unknown enrollment status', async () => {
    const userId = await insertUser(sql);
    const programId = await insertProgram(sql);
    await expect(
      sql`insert into ledger_entries (user_id, kind, category, direction, amount_cents, posted_by)
          values (${userId}, 'charge', 'tuition', 'debit', -100, ${userId})`,
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      sql`insert into enrollments (user_id, program_id, start_date, status)
          values (${userId}, ${programId}, '2026-01-05', 'graduated')`,
    ).rejects.toMatchObject({ code: '23514' });
  });

  it('keeps ledger entries append-only: the app role can neither update nor delete one, nor can the owner', async () => {
    const userId = await insertUser(sql);
    const [entry] = await sql<{ id: string }[]>`
      insert into ledger_entries (user_id, kind, category, direction, amount_cents, posted_by)
      values (${userId}, 'charge', 'tuition', 'debit', 5000, ${userId}) returning id`;
    const id = entry?.id as string;
    await asApp(async (app) => {
      await expect(app`update ledger_entries set amount_cents = 1 where id = ${id}`).rejects.toMatchObject({
        code: '42501',
      });
      await expect(app`delete from ledger_entries where id = ${id}`).rejects.toMatchObject({ code: '42501' });
      await expect(app`truncate ledger_entries`).rejects.toMatchObject({ code: '42501' });
    });
    await expect(sql`update ledger_entries set amount_cents = 1 where id = ${id}`).rejects.toThrow(/never changed/);
    await expect(sql`delete from ledger_entries where id = ${id}`).rejects.toThrow(/never changed/);
    await expect(sql`truncate ledger_entries cascade`).rejects.toThrow(/never changed/);
    const [kept] = await sql<{ amount_cents: string }[]>`select amount_cents from ledger_entries where id = ${id}`;
    expect(kept?.amount_cents).toBe('5000');
  });

  it('refuses to delete a user with enrollments, and cascades only ephemera', async () => {
    const programId = await insertProgram(sql);
    const student = await insertUser(sql);
    await sql`insert into enrollments (user_id, program_id, start_date) values (${student}, ${programId}, '2026-01-05')`;
    await expect(sql`delete from users where id = ${student}`).rejects.toMatchObject({ code: '23503' });
    // One open enrollment per student and program.
    await expect(
      sql`insert into enrollments (user_id, program_id, start_date) values (${student}, ${programId}, '2026-02-02')`,
    ).rejects.toMatchObject({ code: '23505' });

    const newcomer = await insertUser(sql);
    await sql`insert into user_roles (user_id, role_name) values (${newcomer}, 'student')`;
    await sql`insert into refresh_tokens (user_id, family_id, token_hash, expires_at)
              values (${newcomer}, gen_random_uuid(), ${randomBytes(32)}, now() + interval '7 days')`;
    await sql`delete from users where id = ${newcomer}`;
    const left = await sql`
      select (select count(*) from user_roles where user_id = ${newcomer})::int as roles,
             (select count(*) from refresh_tokens where user_id = ${newcomer})::int as tokens`;
    expect(left).toEqual([{ roles: 0, tokens: 0 }]);
  });

  it('sends an agreement to a user or a lead, never both, and reorders modules in one transaction', async () => {
    const userId = await insertUser(sql);
    const [template] = await sql<{ id: string }[]>`
      insert into document_templates (name, version, content, sha256)
      values ('Enrollment Agreement', '2026.1', '\\x25504446', ${randomBytes(32)}) returning id`;
    await expect(
      sql`insert into signed_documents (template_id, retention_until) values (${template?.id as string}, '2031-01-01')`,
    ).rejects.toMatchObject({ code: '23514' });
    await sql`insert into signed_documents (template_id, user_id, retention_until)
              values (${template?.id as string}, ${userId}, '2031-01-01')`;

    const programId = await insertProgram(sql);
    await expect(
      sql`insert into modules (program_id, code, title, delivery_type, clock_hours, position)
          values (${programId}, 'X', 'Unknown delivery', 'lab_only', 10, 1)`,
    ).rejects.toMatchObject({ code: '23514' });
    await sql`insert into modules (program_id, code, title, delivery_type, clock_hours, position) values
                (${programId}, 'A', 'First', 'online', 10, 1), (${programId}, 'B', 'Second', 'hybrid', 10, 2)`;
    await sql.begin(async (tx) => {
      await tx`update modules set position = 3 - position where program_id = ${programId}`;
    });
    const order = await sql`select code from modules where program_id = ${programId} order by position`;
    expect(order.map((row) => row.code)).toEqual(['B', 'A']);
  });
});
