// `npm start`: the API on http://localhost:7071/api, as Azure Functions would serve it.
// Without DATABASE_URL it runs an embedded PostgreSQL (data kept in .data/postgres), migrates it,
// loads the demo data once and runs the app through a role that owns nothing. With DATABASE_URL
// it uses that server as it is (migrate it first with `npm run migrate`).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { prepareDatabase, REPO_ROOT, startEmbeddedPostgres } from './database';
import { installFunctionsCoreStandIn, loadFunctionModules, startHost } from './functions-host';
import { DEMO_DOMAIN, DEMO_PASSWORD, seedDemoData } from './seed';

const EMBEDDED_PORT = Number(process.env.EMBEDDED_PG_PORT ?? 54329);
const API_PORT = Number(process.env.PORT ?? 7071);
const DATABASE = 'aada_lms';

function functionModules(): string[] {
  // Compiled output runs the .js next to this file; tsx runs the TypeScript sources.
  const compiled = __filename.endsWith('.js');
  const dir = path.join(compiled ? path.resolve(__dirname, '..') : REPO_ROOT, 'functions');
  return readdirSync(dir)
    .filter((file) => file.endsWith(compiled ? '.js' : '.ts'))
    .sort()
    .map((file) => path.join(dir, file));
}

async function main() {
  const log = (line: string) => console.log(line);
  // Before anything reads the configuration (the seed encrypts with it): the app defaults to production.
  process.env.APP_ENV ??= 'development';
  let stopDatabase: (() => Promise<void>) | undefined;

  if (!process.env.DATABASE_URL) {
    log(`Starting the embedded PostgreSQL on 127.0.0.1:${EMBEDDED_PORT} (data in .data/postgres)…`);
    const server = await startEmbeddedPostgres({
      dataDir: path.join(REPO_ROOT, '.data', 'postgres'),
      port: EMBEDDED_PORT,
      persistent: true,
      password: 'postgres-local-only',
      log,
    });
    stopDatabase = server.stop;
    const prepared = await prepareDatabase(server.adminUrl, DATABASE, (line) => log(`  ${line}`));
    process.env.DATABASE_URL = prepared.appUrl;
    const admin = postgres(prepared.adminUrl, { max: 1, onnotice: () => {} });
    try {
      if (await seedDemoData(admin)) log('  demo data loaded');
    } finally {
      await admin.end();
    }
  }

  installFunctionsCoreStandIn();
  await loadFunctionModules(functionModules());
  const host = await startHost({ port: API_PORT, host: '127.0.0.1', printRoutes: true });
  const seconds = process.uptime().toFixed(1);
  log(`\nAADA LMS API ready on http://localhost:${host.port}/api in ${seconds} s`);
  if (stopDatabase) {
    log(
      `Demo sign-in: admin@${DEMO_DOMAIN} / ${DEMO_PASSWORD} (one account per role: staff@, instructor@, registrar@, finance@ …)`,
    );
  }
  log('Press Ctrl-C to stop.');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`\n${signal}: stopping the API…`);
    await host.close();
    if (stopDatabase) {
      log('stopping the embedded PostgreSQL…');
      await stopDatabase();
    }
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
