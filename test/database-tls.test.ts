// TLS to PostgreSQL in production: the server's certificate is verified (verify-full), because the
// password sent after the handshake is the managed identity's Entra ID token. An impostor server with a
// certificate of its own (test/fixtures/impostor-tls, self-signed) shows the difference on the wire: with
// `require` it receives the password, with the production default the connection stops at the handshake.
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseConfig } from '../lib/config';
import { poolOptions } from '../lib/db';
import { productionSettings } from './helpers/production';

const FIXTURE = join(__dirname, 'fixtures', 'impostor-tls');
const STAND_IN_TOKEN = 'stand-in-for-the-entra-id-token';

const PRODUCTION = {
  ...productionSettings(),
  DB_HOST: 'psql-aada-lms-prod.postgres.database.azure.com',
  DB_NAME: 'aada_lms',
  DB_USER: 'id-aada-lms-prod',
  DB_PASSWORD: STAND_IN_TOKEN,
  TIMER_INSTANCES: '3',
  DB_CONNECT_TIMEOUT_SECONDS: '5',
};

describe('production configuration refuses unverified TLS', () => {
  test('verify-full is the default', () => {
    expect(parseConfig(PRODUCTION).DB_SSL).toBe('verify-full');
    expect(parseConfig({ ...PRODUCTION, DB_SSL: 'verify-full' }).DB_SSL).toBe('verify-full');
    expect(poolOptions(parseConfig(PRODUCTION)).ssl).toBe('verify-full');
  });

  test.each(['require', 'prefer', 'disable'])('DB_SSL=%s is refused, by name', (mode) => {
    expect(() => parseConfig({ ...PRODUCTION, DB_SSL: mode })).toThrow(
      new RegExp(`DB_SSL must be verify-full in production, not ${mode}`),
    );
  });

  test('a DATABASE_URL must ask for verify-full too', () => {
    const url = 'postgres://u:p@db.example.test:5432/aada_lms';
    expect(() => parseConfig({ ...PRODUCTION, DATABASE_URL: url })).toThrow(/DATABASE_URL needs sslmode=verify-full/);
    expect(() => parseConfig({ ...PRODUCTION, DATABASE_URL: `${url}?sslmode=require` })).toThrow(/verify-full/);
    expect(parseConfig({ ...PRODUCTION, DATABASE_URL: `${url}?sslmode=verify-full` }).DATABASE_URL).toContain(url);
    expect(parseConfig({ ...PRODUCTION, DATABASE_URL: `${url}?sslrootcert=system` }).DATABASE_URL).toContain(url);
  });

  test('a server on the loopback interface is exempt (nothing can sit in between)', () => {
    const local = 'postgres://u:p@127.0.0.1:5432/aada_lms';
    expect(parseConfig({ ...PRODUCTION, DATABASE_URL: local }).DATABASE_URL).toBe(local);
    expect(parseConfig({ ...PRODUCTION, DB_SSL: 'disable', DB_HOST: 'localhost' }).DB_SSL).toBe('disable');
    expect(() => parseConfig({ ...PRODUCTION, DB_SSL: 'disable', DB_HOST: '127.0.0.1.example.test' })).toThrow(
      /DB_SSL must be verify-full/,
    );
  });

  test('development keeps its default and may choose any mode', () => {
    const development = { ...PRODUCTION, APP_ENV: 'development' };
    expect(parseConfig(development).DB_SSL).toBe('prefer');
    expect(parseConfig({ ...development, DB_SSL: 'require' }).DB_SSL).toBe('require');
  });
});

/**
 * A server that speaks just enough of PostgreSQL's protocol to harvest a password: it accepts the
 * SSLRequest, completes TLS with its own certificate, asks for a cleartext password and records it.
 */
class Impostor {
  readonly passwords: string[] = [];
  readonly handshakes: string[] = [];
  private server: Server | undefined;

  async listen(): Promise<number> {
    const key = readFileSync(join(FIXTURE, 'key.pem'));
    const cert = readFileSync(join(FIXTURE, 'cert.pem'));
    this.server = createServer((raw) => raw.once('data', () => this.upgrade(raw, key, cert)));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return address.port;
  }

  private upgrade(raw: Socket, key: Buffer, cert: Buffer): void {
    raw.write('S'); // "go ahead with TLS"
    const tls = new TLSSocket(raw, { isServer: true, key, cert });
    tls.on('error', (error) => this.handshakes.push(`failed: ${error.message}`));
    tls.on('secure', () => this.handshakes.push('completed'));
    let buffered = Buffer.alloc(0);
    let startupSeen = false;
    tls.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!startupSeen && buffered.length >= 4 && buffered.length >= buffered.readInt32BE(0)) {
        startupSeen = true;
        buffered = buffered.subarray(buffered.readInt32BE(0));
        tls.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
      }
      if (
        startupSeen &&
        buffered.length >= 5 &&
        buffered[0] === 0x70 &&
        buffered.length >= 1 + buffered.readInt32BE(1)
      ) {
        const length = buffered.readInt32BE(1);
        this.passwords.push(buffered.subarray(5, 1 + length - 1).toString('utf8'));
        tls.end(errorResponse('impostor: thanks for the token'));
      }
    });
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

function errorResponse(message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0C28P01\0M${message}\0\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

describe('a server with a certificate that does not chain to a trusted root', () => {
  const impostor = new Impostor();
  let port = 0;
  beforeAll(async () => {
    port = await impostor.listen();
  });
  afterAll(() => impostor.close());

  async function connectWith(env: Record<string, string>): Promise<unknown> {
    const sql = postgres(poolOptions(parseConfig({ ...env, DB_HOST: '127.0.0.1', DB_PORT: String(port) })));
    try {
      await sql`select 1`;
      return undefined;
    } catch (error) {
      return error;
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  test('with require (encrypted, unverified) it receives the token', async () => {
    const error = await connectWith({ ...PRODUCTION, APP_ENV: 'development', DB_SSL: 'require' });
    expect(String(error)).toMatch(/impostor/);
    expect(impostor.passwords).toContain(STAND_IN_TOKEN); // postgres.js tries the connection again: once or twice
    expect(impostor.handshakes).toContain('completed');
  });

  test('with the production default the handshake fails and no token is sent', async () => {
    impostor.passwords.length = 0;
    impostor.handshakes.length = 0;
    const error = (await connectWith(PRODUCTION)) as NodeJS.ErrnoException;
    expect(error?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
    expect(impostor.passwords).toEqual([]);
    expect(impostor.handshakes).not.toContain('completed');
  });
});
