// The development and test blob store: Azurite (the `azurite` npm package, Microsoft's Azure Storage
// emulator) run as a child process of `npm start` and of the test run, the way the embedded PostgreSQL
// is, so a fresh clone needs no other command. lib/files.ts talks to it with the emulator's published
// development account; in Azure it talks to the real account with the managed identity.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { AZURITE_ACCOUNT } from '../lib/files';
import { answers } from './database';

export interface RunningAzurite {
  /** The blob service URL to give BLOB_ENDPOINT: `http://127.0.0.1:<port>/devstoreaccount1`. */
  endpoint: string;
  /** True when this process started it; `stop` then stops it. */
  started: boolean;
  stop(): Promise<void>;
}

async function waitUntilListening(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Azurite exited with code ${child.exitCode} before listening`);
    if (await answers(port, 1_000)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`Azurite did not listen on 127.0.0.1:${port} within 120 s`);
}

/**
 * Starts Azurite's blob service on 127.0.0.1:port, its data in `location` (npm start: .data/azurite),
 * or in memory (tests). A blob service already answering on that port (another `npm start`) is used as
 * it is. Telemetry is off: nothing leaves the machine.
 */
export async function startAzurite(opts: {
  port: number;
  location?: string;
  log?: (line: string) => void;
  /** Serve HTTPS with this certificate and key (PEM files): production refuses an http endpoint. */
  tls?: { certPath: string; keyPath: string };
}): Promise<RunningAzurite> {
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${opts.port}/${AZURITE_ACCOUNT}`;
  if (await answers(opts.port, 1_000)) {
    opts.log?.(`Using the blob store (Azurite) already running on 127.0.0.1:${opts.port}`);
    return { endpoint, started: false, stop: async () => {} };
  }
  const storage = opts.location
    ? ['--location', opts.location]
    : ['--inMemoryPersistence', '--extentMemoryLimit', '256'];
  if (opts.location) await mkdir(opts.location, { recursive: true });
  opts.log?.(
    `Starting the blob store (Azurite) on 127.0.0.1:${opts.port}${opts.location ? ` (data in ${path.basename(path.dirname(opts.location))}/${path.basename(opts.location)})` : ''}…`,
  );
  const main = require.resolve('azurite/dist/src/blob/main.js');
  const args = ['--blobHost', '127.0.0.1', '--blobPort', String(opts.port), '--silent', '--disableTelemetry'];
  if (opts.tls) args.push('--cert', opts.tls.certPath, '--key', opts.tls.keyPath);
  const child = spawn(process.execPath, [main, ...args, '--skipApiVersionCheck', ...storage], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitUntilListening(child, opts.port);
  return {
    endpoint,
    started: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
