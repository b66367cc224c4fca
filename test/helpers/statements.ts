// Counting the SQL statements the app sends, on the wire: a TCP proxy between the app's pool and the
// server reads the PostgreSQL protocol's frontend messages and counts every Execute ('E') and simple
// Query ('Q'). The type lookup postgres.js runs once per new connection is not the request's and is
// ignored. A test proves "a constant number of statements per request" with it, without trusting
// the code under test to report on itself.
import net from 'node:net';
import { afterAll, beforeAll } from 'vitest';
import { resetConfigForTests } from '../../lib/config';
import { closePool } from '../../lib/db';

export interface StatementCounter {
  /** Statements the app has sent so far (compare before and after a request). */
  readonly count: number;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

function countStatements(client: net.Socket, onStatement: () => void): void {
  let pending = Buffer.alloc(0);
  let startup = true;
  let ignoreNextExecute = false;
  client.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      if (startup) {
        // Untyped messages until the startup packet (SSLRequest and GSSENCRequest come before it).
        if (pending.length < 8 || pending.length < pending.readInt32BE(0)) break;
        const code = pending.readInt32BE(4);
        pending = pending.subarray(pending.readInt32BE(0));
        if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) startup = false;
        continue;
      }
      if (pending.length < 5 || pending.length < 1 + pending.readInt32BE(1)) break;
      const type = String.fromCharCode(pending[0] as number);
      const body = pending.subarray(5, 1 + pending.readInt32BE(1));
      pending = pending.subarray(1 + pending.readInt32BE(1));
      if (type === 'P' && body.includes('pg_catalog.pg_type')) ignoreNextExecute = true;
      else if (type === 'E' && ignoreNextExecute) ignoreNextExecute = false;
      else if (type === 'E' || type === 'Q') onStatement();
    }
  });
}

async function startProxy(
  server: { host: string; port: number },
  onStatement: () => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(server.port, server.host);
    sockets.add(client).add(upstream);
    countStatements(client, onStatement);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    port: (proxy.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

/**
 * Routes this test file's app through the counting proxy for all its tests. Call at the top level,
 * after useTestApp() (its hooks must run after the app has booted and set DATABASE_URL).
 */
export function useStatementCounter(): StatementCounter {
  let count = 0;
  let proxy: { port: number; close(): Promise<void> } | undefined;
  beforeAll(async () => {
    // The app's pool connects lazily: point it at the proxy before its first query.
    const appUrl = new URL(process.env.DATABASE_URL as string);
    proxy = await startProxy({ host: appUrl.hostname, port: Number(appUrl.port) }, () => count++);
    appUrl.hostname = '127.0.0.1';
    appUrl.port = String(proxy.port);
    process.env.DATABASE_URL = appUrl.toString();
    resetConfigForTests();
    await closePool();
  });
  afterAll(async () => {
    await closePool();
    await proxy?.close();
  });
  return {
    get count() {
      return count;
    },
  };
}
