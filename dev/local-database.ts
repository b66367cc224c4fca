// The local database of `npm start`, shared by every command that needs it without DATABASE_URL
// (`npm start`, `npm run admin:create`): the embedded PostgreSQL on EMBEDDED_PG_PORT (54329) with its
// data in .data/postgres, the database `aada_lms`, migrated and with the demo data loaded once.
//
// A server already answering on that port (an `npm start` is running) is used as it is: a second
// server cannot open the same data folder, which the running one locks. Otherwise the server is
// started here on that folder (initialised the first time) and stopped again by whoever opened it.
// Either way every command sees the same database, whatever order they run in.
import path from 'node:path';
import postgres from 'postgres';
import { answers, prepareDatabase, REPO_ROOT, type RunningServer, startEmbeddedPostgres } from './database';
import { seedDemoData } from './seed';

const DATABASE = 'aada_lms';
/** The superuser's password of the local server: it listens on loopback only and holds demo data. */
const SUPERUSER_PASSWORD = 'postgres-local-only';

export interface LocalDatabase {
  /** The port the server listens on (127.0.0.1). */
  port: number;
  /** Administrator URL of the database (owner of every table). */
  adminUrl: string;
  /** URL of the app's login role, which owns nothing. */
  appUrl: string;
  /** True when this process started the server; `stop` then stops it (else it leaves it running). */
  started: boolean;
  stop(): Promise<void>;
}

export interface LocalDatabaseOptions {
  /** The data folder; .data/postgres unless told (tests use their own). */
  dataDir?: string;
  /** The port; EMBEDDED_PG_PORT, else 54329. */
  port?: number;
  log?: (line: string) => void;
}

export async function openLocalDatabase(options: LocalDatabaseOptions = {}): Promise<LocalDatabase> {
  const port = options.port ?? Number(process.env.EMBEDDED_PG_PORT ?? 54329);
  const dataDir = options.dataDir ?? path.join(REPO_ROOT, '.data', 'postgres');
  const log = options.log ?? (() => {});
  let server: RunningServer;
  const started = !(await answers(port));
  if (started) {
    log(`Starting the embedded PostgreSQL on 127.0.0.1:${port} (data in ${path.relative(REPO_ROOT, dataDir)})…`);
    server = await startEmbeddedPostgres({
      dataDir,
      port,
      persistent: true,
      durable: true,
      password: SUPERUSER_PASSWORD,
      log,
    });
  } else {
    log(`Using the embedded PostgreSQL already running on 127.0.0.1:${port}`);
    server = {
      adminUrl: `postgres://postgres:${SUPERUSER_PASSWORD}@127.0.0.1:${port}/postgres`,
      stop: async () => {},
    };
  }
  try {
    const prepared = await prepareDatabase(server.adminUrl, DATABASE, (line) => log(`  ${line}`));
    // The seed encrypts through config(), which needs a database to be configured: this one, unless
    // the caller named another.
    process.env.DATABASE_URL ??= prepared.appUrl;
    const admin = postgres(prepared.adminUrl, { max: 1, onnotice: () => {} });
    try {
      if (await seedDemoData(admin)) log('  demo data loaded');
    } finally {
      await admin.end();
    }
    return { port, adminUrl: prepared.adminUrl, appUrl: prepared.appUrl, started, stop: server.stop };
  } catch (error) {
    await server.stop();
    if (!started && (error as { code?: string }).code === '28P01') {
      throw new Error(
        `A server answers on 127.0.0.1:${port} but it is not the embedded PostgreSQL of npm start: ` +
          'set EMBEDDED_PG_PORT to another port, or DATABASE_URL to that server',
      );
    }
    throw error;
  }
}
