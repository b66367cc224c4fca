// lib/crypto.ts on its own, without the app: the key ring refuses what it cannot use, naming the variable
// (the operator reads it at start), and the helpers around the envelope and the name index behave as the
// stored data needs — a value under an unknown key or too short to be one is refused, a key id is read from
// text and bytes alike, index lengths tell a key without an id from one with, name tokens are per distinct
// prefix and words too short to search by are left out.
import { beforeAll, describe, expect, test } from 'vitest';
import { resetConfigForTests } from '../lib/config';
import {
  decrypt,
  decryptBytes,
  decryptRows,
  encrypt,
  encryptBytes,
  indexLengths,
  keyIdOf,
  nameSearchTokenSets,
  nameSearchTokens,
  normalizeName,
  parseKeyRing,
  resetKeysForTests,
} from '../lib/crypto';

const KEY_32 = Buffer.alloc(32, 7).toString('base64');
const OTHER_32 = Buffer.alloc(32, 9).toString('base64');
const INDEX_32 = Buffer.alloc(32, 3).toString('base64');

beforeAll(() => {
  process.env.PII_ENCRYPTION_KEYS = `k1:${KEY_32}`;
  process.env.PII_BLIND_INDEX_KEY = INDEX_32;
  process.env.DATABASE_URL ??= 'postgres://unused:unused@127.0.0.1:5432/unused';
  resetConfigForTests();
  resetKeysForTests();
});

const ring = (overrides: Record<string, string | undefined>, env = 'test') =>
  parseKeyRing({
    APP_ENV: env,
    PII_ENCRYPTION_KEYS: `k1:${KEY_32}`,
    PII_BLIND_INDEX_KEY: INDEX_32,
    ...overrides,
  } as Parameters<typeof parseKeyRing>[0]);

describe('the key ring refuses what it cannot use, naming the variable', () => {
  test('production without keys is refused; development and tests fall back to the demo keys', () => {
    for (const missing of ['PII_ENCRYPTION_KEYS', 'PII_BLIND_INDEX_KEY']) {
      expect(() => ring({ [missing]: undefined }, 'production')).toThrow(
        'PII_ENCRYPTION_KEYS and PII_BLIND_INDEX_KEY are required in production',
      );
      expect(ring({ [missing]: undefined }, 'development').current.id).toMatch(/^(k1|demo1)$/);
    }
    expect(ring({ PII_ENCRYPTION_KEYS: undefined }, 'test').current.id).toBe('demo1');
    expect(ring({}, 'production').current.id).toBe('k1');
  });

  test('encryption keys: keyId:base64 entries, trimmed; anything else is refused by name', () => {
    const parsed = ring({ PII_ENCRYPTION_KEYS: ` k2:${OTHER_32} , k1:${KEY_32}` });
    expect(parsed.current.id).toBe('k2');
    expect(parsed.current.key.equals(Buffer.alloc(32, 9))).toBe(true);
    expect([...parsed.byId.keys()]).toEqual(['k2', 'k1']);
    for (const value of [KEY_32, `bad id!:${KEY_32}`, `k1:`, `x${'k'.repeat(32)}:${KEY_32}`]) {
      expect(() => ring({ PII_ENCRYPTION_KEYS: value }), value).toThrow(
        'PII_ENCRYPTION_KEYS: expected keyId:base64key[,keyId:base64key…]',
      );
    }
    expect(() => ring({ PII_ENCRYPTION_KEYS: `k1:${Buffer.alloc(16).toString('base64')}` })).toThrow(
      'PII_ENCRYPTION_KEYS: a key must be at least 32 bytes (base64 encoded)',
    );
    expect(() => ring({ PII_ENCRYPTION_KEYS: `k1:${Buffer.alloc(48).toString('base64')}` })).toThrow(
      'PII_ENCRYPTION_KEYS: AES-256 keys are exactly 32 bytes',
    );
  });

  test('index keys: bare or keyId:base64; a short one is refused by name; the xAPI key needs an id-less key or its own', () => {
    expect(() => ring({ PII_BLIND_INDEX_KEY: Buffer.alloc(31).toString('base64') })).toThrow(
      'PII_BLIND_INDEX_KEY: a key must be at least 32 bytes (base64 encoded)',
    );
    expect(() => ring({ PII_BLIND_INDEX_KEY: `a:b:${INDEX_32}` })).toThrow(
      'PII_BLIND_INDEX_KEY: expected base64 or keyId:base64[,…]',
    );
    expect(() => ring({ PII_BLIND_INDEX_KEY: `i2:${INDEX_32}` })).toThrow(
      'PII_XAPI_INDEX_KEY is required when every PII_BLIND_INDEX_KEY entry has a key id',
    );
    const own = ring({ PII_BLIND_INDEX_KEY: `i2:${INDEX_32}`, PII_XAPI_INDEX_KEY: OTHER_32 });
    expect(own.xapiIndexKey.equals(Buffer.alloc(32, 9))).toBe(true);
    expect(() => ring({ PII_XAPI_INDEX_KEY: Buffer.alloc(8).toString('base64') })).toThrow(
      'PII_XAPI_INDEX_KEY: a key must be at least 32 bytes (base64 encoded)',
    );
    const mixed = ring({ PII_BLIND_INDEX_KEY: ` i2:${OTHER_32} , ${INDEX_32}` });
    expect(mixed.indexKeys.map((entry) => entry.id)).toEqual(['i2', null]);
    expect(mixed.xapiIndexKey.equals(Buffer.alloc(32, 3))).toBe(true);
  });
});

describe('the envelope around a value', () => {
  test('a value under a key id that is not configured is refused, naming the id', () => {
    const text = encrypt('Zoë', 'users.first_name').replace(/^v1\.k1\./, 'v1.k9.');
    expect(() => decrypt(text, 'users.first_name')).toThrow('no key k9 configured to decrypt this value');
  });

  test('too short to hold a nonce and a tag, or without the header: not a ciphertext of this application', () => {
    const short = `v1.k1.${Buffer.alloc(27).toString('base64url')}`;
    expect(() => decrypt(short, 'users.first_name')).toThrow('not a ciphertext of this application');
    expect(() => decrypt('Zoë Ann', 'users.first_name')).toThrow('not a ciphertext of this application');
    expect(() => decryptBytes(Buffer.from('%PDF-1.7'), 'transcript_documents.content')).toThrow(
      'not a ciphertext of this application',
    );
    // Exactly a nonce and a tag is an empty value's ciphertext, and reads as one.
    expect(decrypt(encrypt('', 'users.first_name'), 'users.first_name')).toBe('');
  });

  test('the key id is read from text and from bytes alike', () => {
    expect(keyIdOf(encrypt('x', 'users.email'))).toBe('k1');
    expect(keyIdOf(encryptBytes(Buffer.from('x'), 'transcript_documents.content'))).toBe('k1');
    expect(keyIdOf(new Uint8Array(Buffer.from('v1.key_2-b.rest')))).toBe('key_2-b');
    expect(() => keyIdOf('v2.k1.abc')).toThrow('not a ciphertext of this application');
  });

  test('decryptRows decrypts the named fields of every row and leaves the rest (and nulls) as they are', () => {
    const rows = [
      { id: 1, first: encrypt('Ann', 'users.first_name'), last: encrypt('Lee', 'users.last_name') },
      { id: 2, first: encrypt('Bo', 'users.first_name'), last: null as unknown as string },
    ];
    expect(decryptRows(rows, { first: 'users.first_name', last: 'users.last_name' })).toEqual([
      { id: 1, first: 'Ann', last: 'Lee' },
      { id: 2, first: 'Bo', last: null },
    ]);
    expect(rows[0]?.first).toMatch(/^v1\.k1\./);
  });
});

describe('the people indexes', () => {
  test('stored index lengths: 32 and 12 bytes, plus "<id>:" for a key with an id', () => {
    expect(indexLengths(null)).toEqual({ email: 32, nameToken: 12 });
    expect(indexLengths('k2')).toEqual({ email: 35, nameToken: 15 });
  });

  test('names fold to lower-case letters and digits, one space between words, none around', () => {
    expect(normalizeName('  Zoë-Ann   O’Brien 3rd  ')).toBe('zoe ann o brien 3rd');
    expect(normalizeName('--')).toBe('');
  });

  test('one token per distinct prefix; empty words and repeated names add none', () => {
    expect(nameSearchTokens('Ann').length).toBe(2);
    expect(nameSearchTokens('Ann', 'ann', ' -- ', '').length).toBe(2);
    expect(nameSearchTokens('Ann Anna').length).toBe(3);
    expect(nameSearchTokens('').length).toBe(0);
  });

  test('typed words too short to search by are left out of each key’s list', () => {
    const [tokens] = nameSearchTokenSets(['a', 'Ann', '', 'Lee']);
    expect(tokens?.length).toBe(2);
    expect(tokens?.[0]?.equals(nameSearchTokens('Ann')[1] as Buffer)).toBe(true);
  });
});
