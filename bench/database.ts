// The benchmark's own PostgreSQL: the embedded server of dev/database.ts, with its data in
// `.data/bench-postgres` (git-ignored) so `npm start` and the tests never see the generated rows,
// and with `max_connections` chosen per start (the scale-out part restarts it with a small budget).
// Also the environment the benchmarked app runs with, and the index migration the bench toggles.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type postgres from 'postgres';
import { startAzurite } from '../dev/azurite';
import { freePort, REPO_ROOT, type RunningServer, startEmbeddedPostgres } from '../dev/database';
import { parseConfig } from '../lib/config';
import { loadMigrations, splitStatements } from '../lib/migrations';
import { developmentSealCertificate } from '../lib/pdf-seal';

export const BENCH_DATABASE = 'aada_bench';
export const BENCH_DATA_DIR = path.join(REPO_ROOT, '.data', 'bench-postgres');
const BENCH_SUPERUSER_PASSWORD = 'bench-local-only';

/** The server's default connection limit (the same as the dev and test servers). */
export const DEFAULT_MAX_CONNECTIONS = 200;

export interface BenchServer extends RunningServer {
  port: number;
  maxConnections: number;
}

/** Starts the bench server; `maxConnections` is per start (the scale-out part restarts it with a small budget). */
export async function startBenchPostgres(opts: { maxConnections?: number; port?: number } = {}): Promise<BenchServer> {
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const port = opts.port ?? (await freePort());
  try {
    const server = await startEmbeddedPostgres({
      dataDir: BENCH_DATA_DIR,
      port,
      persistent: true,
      // Production durability: with fsync off every commit would be nearly free and the audit
      // row each protected request commits would cost nothing here while it dominates in Azure.
      durable: true,
      password: BENCH_SUPERUSER_PASSWORD,
      maxConnections,
    });
    return { ...server, port, maxConnections };
  } catch {
    throw new Error(
      `the bench PostgreSQL did not start (data in ${BENCH_DATA_DIR}); is another bench still running? ` +
        'If not, remove that folder and run `npm run bench:generate` again',
    );
  }
}

/**
 * Keys for the generated data: the generator encrypts with them and every benchmarked instance
 * decrypts with them, so the app can run with APP_ENV=production (which refuses demo keys).
 * Derived from fixed labels: they protect nothing but fake benchmark people.
 */
const benchKey = (label: string) => createHash('sha256').update(`aada-bench-only:${label}`).digest('base64');
export const BENCH_SECRETS = {
  PII_ENCRYPTION_KEYS: `bench1:${benchKey('pii')}`,
  PII_BLIND_INDEX_KEY: benchKey('blind-index'),
  JWT_SIGNING_KEY: benchKey('jwt'),
  H5P_ASSET_KEY: benchKey('h5p-assets'),
} as const;

/**
 * The environment of a benchmarked instance: production mode, as in Azure, over `appUrl` (the
 * app's login role). `extra` sets the pool variables of the scale-out runs. Validated here with
 * lib/config, so a setting production starts to require fails the bench at once, by name.
 */
export function productionEnv(appUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  const url = new URL(appUrl);
  const env = {
    APP_ENV: 'production',
    DATABASE_URL: appUrl,
    // Required in production; with DATABASE_URL set the pool takes its target from the URL.
    DB_HOST: url.hostname,
    DB_NAME: url.pathname.slice(1),
    DB_USER: decodeURIComponent(url.username),
    DB_SSL: 'disable',
    DB_MAX_CONNECTIONS: String(DEFAULT_MAX_CONNECTIONS),
    DB_RESERVED_CONNECTIONS: '20',
    MAX_INSTANCES: '1',
    TIMER_INSTANCES: '0',
    CORS_ALLOWED_ORIGINS: '',
    APP_PUBLIC_URL: 'https://portal.bench.aada.test',
    // The files store and the seal certificate production requires: bench/run.ts starts an Azurite of
    // its own and makes a development certificate before any instance (see startBenchServices).
    BLOB_ENDPOINT: process.env.BLOB_ENDPOINT ?? '',
    PDF_SEAL_CERTIFICATE: process.env.PDF_SEAL_CERTIFICATE ?? '',
    ...BENCH_SECRETS,
    ...extra,
  };
  parseConfig(env);
  return env;
}

// ---------------------------------------------------------------------------------------------------
// The seed's index migration, run by hand: its down part drops exactly the indexes its up part makes,
// so toggling it leaves every later migration (0003+) in place and schema_migrations untouched.
// ---------------------------------------------------------------------------------------------------

const INDEX_MIGRATION = '0002';

/**
 * Indexes of 0002 on tables a later migration rebuilt with indexes of its own (0017: the ledger,
 * withdrawals and refunds; 0029: the LRS's statements): their columns are gone, so they are left out of
 * the toggle.
 */
const SUPERSEDED_INDEXES = /\bidx_(ledger_entries|withdrawals|refunds|xapi_statements)_/;

function indexMigrationStatements(direction: 'up' | 'down'): string[] {
  const migration = loadMigrations().find((file) => file.version === INDEX_MIGRATION);
  if (!migration) throw new Error(`migration ${INDEX_MIGRATION} is not in migrations/`);
  return splitStatements(migration[direction]).filter((statement) => !SUPERSEDED_INDEXES.test(statement));
}

/** Drops (`down`) or builds (`up`, idempotent) the indexes of 0002, then refreshes planner statistics. */
export async function setSeedIndexes(admin: postgres.Sql, direction: 'up' | 'down'): Promise<number> {
  const started = performance.now();
  for (const statement of indexMigrationStatements(direction)) await admin.unsafe(statement);
  await admin.unsafe('analyze');
  return performance.now() - started;
}

/**
 * The services besides PostgreSQL a production instance needs: an in-memory Azurite for the files store
 * and a development seal certificate (they protect nothing but fake benchmark people). Sets BLOB_ENDPOINT
 * and PDF_SEAL_CERTIFICATE for productionEnv; returns the stop of Azurite.
 */
export async function startBenchServices(log: (line: string) => void): Promise<() => Promise<void>> {
  // Production refuses an http files store: Azurite serves HTTPS with a throwaway self-signed
  // certificate for 127.0.0.1, which the instances trust through NODE_EXTRA_CA_CERTS (read when each
  // spawned Node starts; they inherit this process's environment).
  const tls = selfSignedLoopbackCertificate();
  process.env.NODE_EXTRA_CA_CERTS = tls.certPath;
  const blobs = await startAzurite({ port: await freePort(), log, tls });
  process.env.BLOB_ENDPOINT = blobs.endpoint;
  process.env.PDF_SEAL_CERTIFICATE = developmentSealCertificate().toString('base64');
  return () => blobs.stop();
}

/** A certificate and key for 127.0.0.1 in a temporary directory, made by the openssl command. */
function selfSignedLoopbackCertificate() {
  const dir = mkdtempSync(path.join(tmpdir(), 'aada-bench-tls-'));
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  return { certPath, keyPath };
}
