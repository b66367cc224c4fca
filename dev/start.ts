// `npm start`: the API on http://localhost:7071/api, as Azure Functions would serve it.
// Without DATABASE_URL it runs the local database of dev/local-database.ts (an embedded PostgreSQL
// with its data in .data/postgres, migrated, demo data loaded once) and runs the app through a role
// that owns nothing. With DATABASE_URL it uses that server as it is (migrate it first with
// `npm run migrate`). Without BLOB_ENDPOINT it runs the blob store too: Azurite (dev/azurite.ts) with its
// data in .data/azurite.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { developmentSealCertificate } from '../lib/pdf-seal';
import { startAzurite } from './azurite';
import { REPO_ROOT } from './database';
import { installFunctionsCoreStandIn, loadFunctionModules, startHost } from './functions-host';
import { openLocalDatabase } from './local-database';
import { DEMO_DOMAIN, DEMO_PASSWORD } from './seed';

const API_PORT = Number(process.env.PORT ?? 7071);

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
  // The files store first: the demo seed uploads its H5P activities into it.
  let blobs: Awaited<ReturnType<typeof startAzurite>> | undefined;
  if (!process.env.BLOB_ENDPOINT) {
    const port = Number(process.env.AZURITE_BLOB_PORT ?? 10000);
    blobs = await startAzurite({ port, location: path.join(REPO_ROOT, '.data', 'azurite'), log });
    process.env.BLOB_ENDPOINT = blobs.endpoint;
  }
  let local: Awaited<ReturnType<typeof openLocalDatabase>> | undefined;
  if (!process.env.DATABASE_URL) {
    local = await openLocalDatabase({ log });
    process.env.DATABASE_URL = local.appUrl;
  }

  // The development certificate that seals agreements, made on the first start and kept, so PDFs sealed
  // yesterday still verify today.
  if (!process.env.PDF_SEAL_CERTIFICATE) {
    const file = path.join(REPO_ROOT, '.data', 'pdf-seal-development.p12');
    if (!existsSync(file)) writeFileSync(file, developmentSealCertificate(), { mode: 0o600 });
    process.env.PDF_SEAL_CERTIFICATE = readFileSync(file).toString('base64');
  }
  installFunctionsCoreStandIn();
  await loadFunctionModules(functionModules());
  const host = await startHost({ port: API_PORT, host: '127.0.0.1', printRoutes: true });
  const seconds = process.uptime().toFixed(1);
  log(`\nAADA LMS API ready on http://localhost:${host.port}/api in ${seconds} s`);
  if (local) {
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
    if (blobs?.started) {
      log('stopping the blob store (Azurite)…');
      await blobs.stop();
    }
    if (local?.started) {
      log('stopping the embedded PostgreSQL…');
      await local.stop();
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
