import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { startAzurite } from '../dev/azurite';
import { freePort, prepareDatabase, REPO_ROOT, startThrowawayPostgres } from '../dev/database';
import { patchPostgres } from '../dev/patch-postgres.cjs';

export const TEMPLATE_DATABASE = 'aada_test_template';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDatabase: string;
    blobEndpoint: string;
  }
}

export default async function setup(project: TestProject) {
  // What `npm install` does (postinstall), for a node_modules installed before the guard existed: the suite
  // kills servers under transactions, which the unguarded postgres.js answers by ending the process.
  patchPostgres(REPO_ROOT);
  let adminUrl = process.env.DATABASE_URL;
  let stopServer: (() => Promise<void>) | undefined;
  if (!adminUrl) {
    // Throw-away data: commits need not wait for the disk (npm start and the bench keep fsync on).
    const server = await startThrowawayPostgres('test-postgres');
    adminUrl = server.adminUrl;
    stopServer = server.stop;
  }
  // A stale template from an interrupted run on a shared server is rebuilt from scratch.
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${TEMPLATE_DATABASE} with (force)`);
  await admin.end();
  await prepareDatabase(adminUrl, TEMPLATE_DATABASE);

  project.provide('adminUrl', adminUrl);
  project.provide('templateDatabase', TEMPLATE_DATABASE);
  // The files store: Azurite in memory, each test file on containers of its own (test/helpers/app.ts).
  const azurite = await startAzurite({ port: await freePort() });
  project.provide('blobEndpoint', azurite.endpoint);

  return async () => {
    await azurite.stop();
    if (stopServer) await stopServer();
  };
}
