// The migration runner: applies the numbered SQL files of `migrations/` in order, records each one
// with a checksum in `schema_migrations`, refuses to run when an applied file changed or vanished, and
// can roll the last one back.
//
// File format (`NNNN_snake_name.sql`):
//   -- comments (optional)
//   -- migrate:no-transaction      (optional: run outside a transaction, statement by statement)
//   -- migrate:up
//   ...SQL...
//   -- migrate:down
//   ...SQL...
// A transactional part runs as one simple-protocol query inside BEGIN/COMMIT together with the
// bookkeeping row, so it applies completely or not at all. A no-transaction part (CREATE INDEX
// CONCURRENTLY) is split at lines ending in `;` and each statement runs on its own; its statements must
// be idempotent, since a failure half-way leaves the file unrecorded and it simply runs again.
//
// Concurrency: the whole run holds a session advisory lock on one reserved connection, so two runners
// (two deploy steps, two processes, two calls) never interleave: the second waits, then finds nothing
// to do. It waits by polling pg_try_advisory_lock rather than blocking in pg_advisory_lock, because a
// session blocked inside a statement holds a snapshot, and CREATE INDEX CONCURRENTLY in the lock holder
// waits for every older snapshot to end: holder and waiter would deadlock.
//
// Why one file over 350 lines: the parser of the file format, the checksums, the lock and the
// apply/rollback steps are one protocol whose rules (never apply a changed file, one runner at a time)
// must be read together; split, each part would lean on the others' invariants.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ReservedSql, Sql } from 'postgres';

export interface MigrationFile {
  /** The four-digit number: the order of application and the key in schema_migrations. */
  version: string;
  /** The snake_case rest of the file name, without `.sql`. */
  name: string;
  /** SHA-256 (hex) of the file's contents (line endings normalized to LF). */
  checksum: string;
  up: string;
  down: string;
  /** False for files marked `-- migrate:no-transaction`. */
  transactional: boolean;
}

export interface MigrationOptions {
  /** The folder of the SQL files; default: the repository's `migrations` folder. */
  dir?: string;
  /** Progress lines (one per file applied or rolled back). */
  log?: (line: string) => void;
}

export interface MigrationState {
  version: string;
  name: string;
  applied: boolean;
  appliedAt: Date | null;
  /** Null when not applied; false when the file changed since, or is no longer on disk. */
  checksumMatches: boolean | null;
}

/** The key of the session advisory lock held while migrating (ASCII "AADAMIGR"). */
export const MIGRATION_LOCK_KEY = '4702114533211719506';

const FILE_NAME = /^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$/;
const MARKER = /^--\s*migrate:(up|down|no-transaction)\s*$/;
const LOCK_POLL_MIN_MS = 25;
const LOCK_POLL_MAX_MS = 500;

// Any postgres.js client, whatever custom types it was configured with (the runner uses none).
// biome-ignore lint/suspicious/noExplicitAny: see above
type AnySql = Sql<any>;
// biome-ignore lint/suspicious/noExplicitAny: see above
type Conn = ReservedSql<any>;

interface AppliedRow {
  version: string;
  name: string;
  checksum: string;
  appliedat: Date;
}

// ---------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------

function hasSqlFiles(dir: string): boolean {
  try {
    return readdirSync(dir).some((entry) => entry.endsWith('.sql'));
  } catch {
    return false;
  }
}

/**
 * The repository's migrations folder, found by walking up from this file: `lib/` when run from source,
 * `dist/lib/` when compiled.
 */
export function defaultMigrationsDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'migrations');
    if (existsSync(candidate) && hasSqlFiles(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`No migrations folder with .sql files found above ${__dirname}`);
    dir = parent;
  }
}

/** Parses one migration file; throws an error naming the file when it is malformed. */
export function parseMigration(fileName: string, contents: string): MigrationFile {
  const match = FILE_NAME.exec(fileName);
  if (!match) throw new Error(`Migration file name ${fileName} does not match NNNN_snake_name.sql`);
  const text = contents.replace(/\r\n?/g, '\n');
  const parts: Record<'preamble' | 'up' | 'down', string[]> = { preamble: [], up: [], down: [] };
  let section: 'preamble' | 'up' | 'down' = 'preamble';
  let transactional = true;
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    const marker = MARKER.exec(line.trim())?.[1];
    if (marker) {
      if (seen.has(marker)) throw new Error(`Migration ${fileName}: "-- migrate:${marker}" appears twice`);
      seen.add(marker);
      if (marker === 'no-transaction') {
        if (section !== 'preamble') {
          throw new Error(`Migration ${fileName}: "-- migrate:no-transaction" must come before "-- migrate:up"`);
        }
        transactional = false;
      } else if (marker === 'up') {
        section = 'up';
      } else {
        if (section !== 'up') throw new Error(`Migration ${fileName}: "-- migrate:down" must follow "-- migrate:up"`);
        section = 'down';
      }
      continue;
    }
    parts[section].push(line);
  }
  if (!seen.has('up') || !seen.has('down')) {
    throw new Error(`Migration ${fileName} needs a "-- migrate:up" line and a "-- migrate:down" line`);
  }
  if (parts.preamble.some((line) => line.trim() !== '' && !line.trim().startsWith('--'))) {
    throw new Error(`Migration ${fileName} has SQL before "-- migrate:up"`);
  }
  const up = parts.up.join('\n').trim();
  if (splitStatements(up).length === 0) throw new Error(`Migration ${fileName} has an empty up part`);
  return {
    version: match[1] as string,
    name: match[2] as string,
    checksum: createHash('sha256').update(text).digest('hex'),
    up,
    down: parts.down.join('\n').trim(),
    transactional,
  };
}

/** The migration files of `dir` in version order. */
export function loadMigrations(dir: string = defaultMigrationsDir()): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((entry) => entry.endsWith('.sql'))
    .sort();
  const migrations = files.map((file) => parseMigration(file, readFileSync(path.join(dir, file), 'utf8')));
  for (let i = 1; i < migrations.length; i++) {
    const previous = migrations[i - 1] as MigrationFile;
    const current = migrations[i] as MigrationFile;
    if (previous.version === current.version) {
      throw new Error(`Migrations ${fileName(previous)} and ${fileName(current)} share version ${current.version}`);
    }
  }
  return migrations;
}

function fileName(migration: { version: string; name: string }): string {
  return `${migration.version}_${migration.name}.sql`;
}

/**
 * Splits a no-transaction part into statements: a statement ends with a line whose code ends in `;`
 * (optionally followed by a `--` comment). Comment-only lines never end a statement, and chunks holding
 * only comments are dropped. Keep such files simple: no functions, DO blocks or multi-line strings.
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  const flush = () => {
    const statement = current.join('\n').trim();
    const code = current.filter((line) => !line.trim().startsWith('--') && line.trim() !== '');
    if (code.length > 0) statements.push(statement);
    current = [];
  };
  for (const line of text.split('\n')) {
    current.push(line);
    const trimmed = line.trim();
    if (!trimmed.startsWith('--') && /;\s*(--.*)?$/.test(trimmed)) flush();
  }
  flush();
  return statements;
}

// ---------------------------------------------------------------------------------------------------
// Database state
// ---------------------------------------------------------------------------------------------------

async function ensureTable(conn: Conn): Promise<void> {
  await conn.unsafe(`
    create table if not exists public.schema_migrations (
      version    text primary key,
      name       text not null,
      checksum   text not null,
      applied_at timestamptz not null default now()
    )`);
}

async function tableExists(sql: AnySql): Promise<boolean> {
  const [row] = await sql<{ present: boolean }[]>`
    select to_regclass('public.schema_migrations') is not null as present`;
  return row?.present === true;
}

// Column aliases without underscores: correct whatever column transform the caller's client uses.
async function appliedRows(sql: AnySql): Promise<AppliedRow[]> {
  return sql<AppliedRow[]>`
    select version, name, checksum, applied_at as appliedat
      from public.schema_migrations
     order by version`;
}

/** Throws unless every applied migration is still on disk, unchanged. */
function verifyApplied(files: MigrationFile[], applied: AppliedRow[]): void {
  const byVersion = new Map(files.map((file) => [file.version, file]));
  for (const row of applied) {
    const file = byVersion.get(row.version);
    if (!file) {
      throw new Error(
        `Migration ${fileName(row)} was applied on ${new Date(row.appliedat).toISOString()} but is no longer on ` +
          'disk; restore the file (or roll the database back with the release that has it)',
      );
    }
    if (file.checksum !== row.checksum) {
      throw new Error(
        `Migration ${fileName(file)} has changed since it was applied (checksum ${row.checksum.slice(0, 12)}… ` +
          `in the database, ${file.checksum.slice(0, 12)}… on disk); applied migrations must not be edited: ` +
          'add a new migration instead',
      );
    }
  }
}

/** The files not yet applied; throws when one of them sorts before an applied one. */
function pendingFiles(files: MigrationFile[], applied: AppliedRow[]): MigrationFile[] {
  const appliedVersions = new Set(applied.map((row) => row.version));
  const pending = files.filter((file) => !appliedVersions.has(file.version));
  const lastApplied = applied.at(-1);
  const early = lastApplied && pending.find((file) => file.version < lastApplied.version);
  if (early && lastApplied) {
    throw new Error(
      `Migration ${fileName(early)} is pending but a later one, ${fileName(lastApplied)}, is already applied; ` +
        'renumber it after the last applied migration',
    );
  }
  return pending;
}

// ---------------------------------------------------------------------------------------------------
// Locking and execution
// ---------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withMigrationLock<T>(
  sql: AnySql,
  log: (line: string) => void,
  run: (conn: Conn) => Promise<T>,
): Promise<T> {
  const conn: Conn = await sql.reserve();
  let locked = false;
  try {
    for (let delay = LOCK_POLL_MIN_MS; ; delay = Math.min(delay * 2, LOCK_POLL_MAX_MS)) {
      const [row] = await conn<{ locked: boolean }[]>`
        select pg_try_advisory_lock(${MIGRATION_LOCK_KEY}::bigint) as locked`;
      if (row?.locked) break;
      if (delay === LOCK_POLL_MIN_MS) log('waiting for another migration runner to finish');
      await sleep(delay);
    }
    locked = true;
    // For this run only (reset below, before the connection goes back to the pool): no statement
    // timeout inherited from the app's pool settings (an index build on a large table takes minutes),
    // and every object lands in public whatever the role's default search_path.
    await conn`select set_config('statement_timeout', '0', false), set_config('search_path', 'public', false)`;
    return await run(conn);
  } finally {
    try {
      if (locked) {
        await conn`select pg_advisory_unlock(${MIGRATION_LOCK_KEY}::bigint)`;
        await conn.unsafe('reset statement_timeout; reset search_path');
      }
    } catch {
      // The connection is gone; the server released the session lock with it.
    } finally {
      conn.release();
    }
  }
}

async function inTransaction(conn: Conn, work: () => Promise<void>): Promise<void> {
  await conn.unsafe('begin');
  try {
    await work();
  } catch (error) {
    await conn.unsafe('rollback').catch(() => {});
    throw error;
  }
  await conn.unsafe('commit');
}

/** Runs a part of a file, with the error naming the file (and, outside a transaction, the statement). */
async function runPart(
  conn: Conn,
  migration: MigrationFile,
  direction: 'up' | 'down',
  log: (line: string) => void,
  record: () => Promise<void>,
): Promise<void> {
  const text = migration[direction];
  try {
    if (migration.transactional) {
      await inTransaction(conn, async () => {
        if (text !== '') await conn.unsafe(text);
        await record();
      });
      return;
    }
    const statements = splitStatements(text);
    if (direction === 'up') await dropInvalidIndexesNamedIn(conn, statements, log);
    for (const [index, statement] of statements.entries()) {
      try {
        await conn.unsafe(statement);
      } catch (error) {
        throw new StatementError(index + 1, statements.length, error);
      }
    }
    await record();
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`Migration ${fileName(migration)} (${direction}) failed: ${detail}`, { cause: error });
  }
}

class StatementError extends Error {
  constructor(position: number, total: number, cause: unknown) {
    super(`statement ${position} of ${total}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

/**
 * A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind, which `IF NOT EXISTS` would then
 * silently keep. Before (re)running a no-transaction file, drop the invalid indexes it names.
 */
async function dropInvalidIndexesNamedIn(conn: Conn, statements: string[], log: (line: string) => void): Promise<void> {
  const invalid = await conn<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name
      from pg_index i
      join pg_class c on c.oid = i.indexrelid
      join pg_namespace n on n.oid = c.relnamespace
     where not i.indisvalid
       and n.nspname <> 'information_schema' and left(n.nspname, 3) <> 'pg_'`;
  const text = statements.join('\n').toLowerCase();
  for (const index of invalid) {
    const name = index.name.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    if (!new RegExp(`(^|[^a-z0-9_$])${name}($|[^a-z0-9_$])`).test(text)) continue;
    const qualified = `"${index.schema.replace(/"/g, '""')}"."${index.name.replace(/"/g, '""')}"`;
    log(`dropping invalid index ${qualified} left by an earlier failed build`);
    await conn.unsafe(`drop index concurrently if exists ${qualified}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------

/** Applies every pending migration in order; returns the versions applied (empty when up to date). */
export async function migrateUp(sql: AnySql, opts: MigrationOptions = {}): Promise<string[]> {
  const files = loadMigrations(opts.dir);
  const log = opts.log ?? (() => {});
  return withMigrationLock(sql, log, async (conn) => {
    await ensureTable(conn);
    const applied = await appliedRows(conn);
    verifyApplied(files, applied);
    const pending = pendingFiles(files, applied);
    const done: string[] = [];
    for (const migration of pending) {
      const started = performance.now();
      await runPart(conn, migration, 'up', log, async () => {
        await conn`
          insert into public.schema_migrations (version, name, checksum)
          values (${migration.version}, ${migration.name}, ${migration.checksum})`;
      });
      done.push(migration.version);
      log(`applied ${fileName(migration)} in ${Math.round(performance.now() - started)} ms`);
    }
    return done;
  });
}

/** Rolls back the last applied migration; returns its version, or null when none is applied. */
export async function migrateDown(sql: AnySql, opts: MigrationOptions = {}): Promise<string | null> {
  const files = loadMigrations(opts.dir);
  const log = opts.log ?? (() => {});
  return withMigrationLock(sql, log, async (conn) => {
    if (!(await tableExists(conn))) return null;
    const applied = await appliedRows(conn);
    verifyApplied(files, applied);
    const last = applied.at(-1);
    if (!last) return null;
    const migration = files.find((file) => file.version === last.version) as MigrationFile;
    if (splitStatements(migration.down).length === 0) {
      throw new Error(`Migration ${fileName(migration)} has no down part; it cannot be rolled back`);
    }
    const started = performance.now();
    await runPart(conn, migration, 'down', log, async () => {
      await conn`delete from public.schema_migrations where version = ${migration.version}`;
    });
    log(`rolled back ${fileName(migration)} in ${Math.round(performance.now() - started)} ms`);
    return migration.version;
  });
}

/** Every migration on disk (and any applied one missing from disk) with its state. Read-only. */
export async function migrationStatus(sql: AnySql, opts: { dir?: string } = {}): Promise<MigrationState[]> {
  const files = loadMigrations(opts.dir);
  const applied = (await tableExists(sql)) ? await appliedRows(sql) : [];
  const byVersion = new Map(applied.map((row) => [row.version, row]));
  const states: MigrationState[] = files.map((file) => {
    const row = byVersion.get(file.version);
    return {
      version: file.version,
      name: file.name,
      applied: row !== undefined,
      appliedAt: row?.appliedat ?? null,
      checksumMatches: row ? row.checksum === file.checksum : null,
    };
  });
  const onDisk = new Set(files.map((file) => file.version));
  for (const row of applied) {
    if (!onDisk.has(row.version)) {
      states.push({
        version: row.version,
        name: row.name,
        applied: true,
        appliedAt: row.appliedat,
        checksumMatches: false,
      });
    }
  }
  return states.sort((a, b) => a.version.localeCompare(b.version));
}

/**
 * The versions on disk not yet applied (one cheap query; used by the readiness probe). A database
 * without schema_migrations has every migration pending.
 */
export async function pendingMigrations(sql: AnySql, opts: { dir?: string } = {}): Promise<string[]> {
  const files = loadMigrations(opts.dir);
  let applied: Set<string>;
  try {
    const rows = await sql<{ version: string }[]>`select version from public.schema_migrations`;
    applied = new Set(rows.map((row) => row.version));
  } catch (error) {
    if ((error as { code?: string }).code !== '42P01') throw error; // undefined_table
    applied = new Set();
  }
  return files.filter((file) => !applied.has(file.version)).map((file) => file.version);
}
