// Configuration an operator gets wrong must stop the app with a message naming the variable,
// and the pool size must keep every instance inside the server's connection budget.
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { derivePoolMax, POOL_MAX_CEILING, parseConfig } from '../lib/config';
import { productionSettings } from './helpers/production';

const base = { APP_ENV: 'development', DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };

describe('configuration', () => {
  test('names the malformed variable', () => {
    expect(() => parseConfig({ ...base, DB_POOL_MAX: 'lots' })).toThrow(/DB_POOL_MAX/);
    expect(() => parseConfig({ ...base, MAX_INSTANCES: '0' })).toThrow(/MAX_INSTANCES/);
    expect(() => parseConfig({ ...base, DB_SSL: 'sometimes' })).toThrow(/DB_SSL/);
    expect(() => parseConfig({ DATABASE_URL: 'not a url' })).toThrow(/DATABASE_URL/);
  });

  test('agreement reminders: ascending whole days before the link expires, or none', () => {
    expect(parseConfig(base).AGREEMENT_REMINDER_DAYS).toEqual([3, 7]);
    expect(parseConfig({ ...base, AGREEMENT_REMINDER_DAYS: '' }).AGREEMENT_REMINDER_DAYS).toEqual([]);
    expect(parseConfig({ ...base, AGREEMENT_REMINDER_DAYS: ' 1, 5 ,13' }).AGREEMENT_REMINDER_DAYS).toEqual([1, 5, 13]);
    for (const bad of ['7,3', '3,3', '0', '-1', '2.5', 'three', '0x3', '1,2,3,4,5,6,7,8,9,10,11']) {
      expect(() => parseConfig({ ...base, AGREEMENT_REMINDER_DAYS: bad }), bad).toThrow(/AGREEMENT_REMINDER_DAYS/);
    }
    expect(() => parseConfig({ ...base, AGREEMENT_REMINDER_DAYS: '3,14' })).toThrow(/AGREEMENT_LINK_DAYS 14/);
    expect(
      parseConfig({ ...base, AGREEMENT_REMINDER_DAYS: '3,14', AGREEMENT_LINK_DAYS: '21' }).AGREEMENT_LINK_DAYS,
    ).toBe(21);
  });

  test('without DATABASE_URL the discrete settings are required, by name', () => {
    expect(() => parseConfig({ DB_HOST: 'server' })).toThrow(/DB_NAME, DB_USER/);
  });

  test('production requires its settings and secrets, by name', () => {
    expect(() => parseConfig({ ...base, APP_ENV: 'production' })).toThrow(/PII_ENCRYPTION_KEYS/);
  });

  test('production refuses to start without the key of the H5P asset addresses, and takes a good one', () => {
    const { H5P_ASSET_KEY: _, ...production } = productionSettings();
    expect(() => parseConfig(production)).toThrow(/H5P_ASSET_KEY required in production/);
    expect(() => parseConfig({ ...production, H5P_ASSET_KEY: 'c2hvcnQ=' })).toThrow(/H5P_ASSET_KEY/);
    const key = randomBytes(32).toString('base64');
    expect(parseConfig({ ...production, H5P_ASSET_KEY: key }).H5P_ASSET_KEY).toBe(key);
  });

  test('production wants the files store over https: without BLOB_ENDPOINT, or with http, it refuses', () => {
    expect(() => parseConfig({ ...base, APP_ENV: 'production' })).toThrow(/BLOB_ENDPOINT/);
    expect(() => parseConfig({ ...base, BLOB_ENDPOINT: 'ftp://files.example' })).toThrow(/BLOB_ENDPOINT/);
    expect(() => parseConfig({ ...base, BLOB_CONTAINER_PREFIX: 'Upper_Case' })).toThrow(/BLOB_CONTAINER_PREFIX/);
  });

  test('without APP_ENV it is production: no demo keys, and the refusal names what is missing', () => {
    const { APP_ENV: _, ...unset } = base;
    const refusal = (() => {
      try {
        parseConfig(unset);
      } catch (error) {
        return (error as Error).message;
      }
      return 'started';
    })();
    for (const name of ['APP_ENV', 'PII_ENCRYPTION_KEYS', 'PII_BLIND_INDEX_KEY', 'JWT_SIGNING_KEY']) {
      expect(refusal).toContain(name);
    }
    expect(refusal).toMatch(/required in production/);
  });

  test('the derived pool keeps all instances within the server limit', () => {
    for (const [maxConnections, reserved, instances] of [
      [50, 20, 30],
      [429, 25, 100],
      [859, 25, 100],
      [1718, 25, 40],
      [100, 20, 1],
    ]) {
      const pool = derivePoolMax({
        DB_MAX_CONNECTIONS: maxConnections as number,
        DB_RESERVED_CONNECTIONS: reserved as number,
        MAX_INSTANCES: instances as number,
      });
      expect(pool).toBeGreaterThanOrEqual(1);
      expect(pool).toBeLessThanOrEqual(POOL_MAX_CEILING);
      expect(pool * (instances as number) + (reserved as number)).toBeLessThanOrEqual(maxConnections as number);
    }
    expect(parseConfig({ ...base, DB_POOL_MAX: '4' }).poolMax).toBe(4);
  });

  test('a budget that cannot give every instance a connection is refused', () => {
    expect(() => parseConfig({ ...base, DB_MAX_CONNECTIONS: '50', MAX_INSTANCES: '100' })).toThrow(/MAX_INSTANCES/);
  });
  // Keys are checked when the configuration is read, not on the first request that needs them: a
  // mistyped key must stop the app before it writes a single value nobody can decrypt later.
  const KEY_32 = Buffer.alloc(32, 7).toString('base64');
  const refusalOf = (env: Record<string, string>): string => {
    try {
      parseConfig({ ...base, ...env });
    } catch (error) {
      return (error as Error).message;
    }
    return 'started';
  };

  test.each([
    ['a 31-byte AES key', `k1:${Buffer.alloc(31, 7).toString('base64')}`, /key k1 is not base64 of exactly 32 bytes/],
    ['a 33-byte AES key', `k1:${Buffer.alloc(33, 7).toString('base64')}`, /key k1 is not base64 of exactly 32 bytes/],
    ['a key with characters outside base64', `k1:${KEY_32.slice(0, 10)}!${KEY_32.slice(10)}`, /key k1 is not base64/],
    ['a key with its padding cut', `k1:${KEY_32.replace(/=+$/, '')}`, /key k1 is not base64/],
    ['an entry without a key id', KEY_32, /expected keyId:base64key/],
    ['an empty entry', `k1:${KEY_32},`, /expected keyId:base64key/],
    ['a key id with a dot', `k.1:${KEY_32}`, /expected keyId:base64key/],
    ['a key id used twice', `k1:${KEY_32},k1:${Buffer.alloc(32, 8).toString('base64')}`, /key id k1 appears twice/],
  ])('PII_ENCRYPTION_KEYS with %s is refused by name', (_, value, reason) => {
    const refusal = refusalOf({ PII_ENCRYPTION_KEYS: value });
    expect(refusal).toMatch(/PII_ENCRYPTION_KEYS/);
    expect(refusal).toMatch(reason);
    expect(refusal).not.toContain(value);
  });

  test.each(['PII_BLIND_INDEX_KEY', 'JWT_SIGNING_KEY'])('%s must be base64 of at least 32 bytes', (name) => {
    for (const value of [
      Buffer.alloc(31, 7).toString('base64'),
      `${KEY_32.slice(0, 10)}*${KEY_32.slice(10)}`,
      'a-passphrase-someone-typed-instead-of-a-key',
      ...(name === 'JWT_SIGNING_KEY' ? [`k1:${KEY_32}`] : [`k1:${KEY_32.slice(4)}`, `k1:${KEY_32}:x`]),
    ]) {
      const refusal = refusalOf({ [name]: value });
      expect(refusal, value).toMatch(new RegExp(`${name}: expected base64 of at least 32 bytes`));
      expect(refusal, value).not.toContain(value);
    }
    expect(refusalOf({ [name]: Buffer.alloc(48, 7).toString('base64') })).toBe('started');
  });

  const OTHER_32 = Buffer.alloc(32, 9).toString('base64');
  test.each([
    ['a key id used twice', `k2:${KEY_32},k2:${OTHER_32}`, /key id k2 appears twice/],
    ['two keys without a key id', `${KEY_32},${OTHER_32}`, /only one key may be given without a key id/],
    ['the same key under two ids', `k2:${KEY_32},k3:${KEY_32}`, /the same key appears twice/],
    ['the same key with and without an id', `k2:${KEY_32},${KEY_32}`, /the same key appears twice/],
    ['a short key under an id', `k2:${Buffer.alloc(31, 7).toString('base64')},${KEY_32}`, /expected base64/],
    ['a key id with a dot', `k.2:${OTHER_32},${KEY_32}`, /expected base64/],
    ['an empty entry', `k2:${OTHER_32},`, /expected base64/],
  ])('PII_BLIND_INDEX_KEY with %s is refused by name, without the key', (_, value, reason) => {
    const refusal = refusalOf({ PII_BLIND_INDEX_KEY: value });
    expect(refusal).toMatch(/PII_BLIND_INDEX_KEY/);
    expect(refusal).toMatch(reason);
    expect(refusal).not.toContain(KEY_32);
  });

  test('a rotation of the index key starts; without the key that has no id the xAPI key must be named', () => {
    expect(refusalOf({ PII_BLIND_INDEX_KEY: `k2:${OTHER_32},${KEY_32}` })).toBe('started');
    const alone = refusalOf({ PII_BLIND_INDEX_KEY: `k2:${OTHER_32}` });
    expect(alone).toMatch(/PII_XAPI_INDEX_KEY is required/);
    expect(alone).not.toContain(OTHER_32);
    expect(refusalOf({ PII_BLIND_INDEX_KEY: `k2:${OTHER_32}`, PII_XAPI_INDEX_KEY: KEY_32 })).toBe('started');
    expect(refusalOf({ PII_BLIND_INDEX_KEY: `k2:${OTHER_32}`, PII_XAPI_INDEX_KEY: 'short' })).toMatch(
      /PII_XAPI_INDEX_KEY: expected base64 of at least 32 bytes/,
    );
  });

  test('well-formed keys start, rotated key lists included', () => {
    const other = Buffer.alloc(32, 8).toString('base64');
    const cfg = parseConfig({
      ...base,
      PII_ENCRYPTION_KEYS: `new_2:${KEY_32}, old-1:${other}`,
      PII_BLIND_INDEX_KEY: KEY_32,
      JWT_SIGNING_KEY: KEY_32,
    });
    expect(cfg.PII_ENCRYPTION_KEYS).toBe(`new_2:${KEY_32}, old-1:${other}`);
  });

  test('every other malformed setting is refused by name', () => {
    for (const [name, value] of [
      ['APP_ENV', 'staging'],
      ['DB_PORT', '70000'],
      ['DB_PREPARE_STATEMENTS', 'yes'],
      ['DB_MAX_CONNECTIONS', '4'],
      ['DB_STATEMENT_TIMEOUT_MS', '1.5'],
      ['MAX_REQUEST_BODY_BYTES', '10'],
      ['LOG_REQUESTS', 'maybe'],
      ['APP_PUBLIC_URL', 'ftp://portal.example'],
      ['ACS_EMAIL_ENDPOINT', 'http://acs.example'],
      ['LOGIN_MAX_FAILURES', '0'],
      ['SESSION_REVOCATION_POLL_SECONDS', '301'],
    ] as const) {
      expect(refusalOf({ [name]: value }), name).toMatch(new RegExp(`Invalid configuration: .*${name}`));
    }
    expect(refusalOf({ ACS_EMAIL_ENDPOINT: 'https://acs.example' })).toMatch(/ACS_EMAIL_ENDPOINT and ACS_EMAIL_SENDER/);
  });
});
