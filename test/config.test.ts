// Configuration an operator gets wrong must stop the app with a message naming the variable,
// and the pool size must keep every instance inside the server's connection budget.
import { describe, expect, test } from 'vitest';
import { derivePoolMax, POOL_MAX_CEILING, parseConfig } from '../lib/config';

const base = { APP_ENV: 'development', DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };

describe('configuration', () => {
  test('names the malformed variable', () => {
    expect(() => parseConfig({ ...base, DB_POOL_MAX: 'lots' })).toThrow(/DB_POOL_MAX/);
    expect(() => parseConfig({ ...base, MAX_INSTANCES: '0' })).toThrow(/MAX_INSTANCES/);
    expect(() => parseConfig({ ...base, DB_SSL: 'sometimes' })).toThrow(/DB_SSL/);
    expect(() => parseConfig({ DATABASE_URL: 'not a url' })).toThrow(/DATABASE_URL/);
  });

  test('without DATABASE_URL the discrete settings are required, by name', () => {
    expect(() => parseConfig({ DB_HOST: 'server' })).toThrow(/DB_NAME, DB_USER/);
  });

  test('production requires its settings and secrets, by name', () => {
    expect(() => parseConfig({ ...base, APP_ENV: 'production' })).toThrow(/PII_ENCRYPTION_KEYS/);
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
});
