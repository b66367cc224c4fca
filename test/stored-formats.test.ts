// Fixed vectors for everything the API persists or puts on the wire: ciphertexts, blind indexes, name
// search tokens, cursors, access-token claims and session cookies. Every expected value is a literal,
// computed once outside the code under test (node:crypto primitives by hand), so a change to any
// format — a nonce length, a normalisation rule, a cookie attribute — fails here: rows already stored
// and clients already deployed would stop working with it. The nonce is fixed by replacing
// node:crypto's randomBytes for 12-byte requests only while a test asks for it. The session cookies
// need a real sign-in over HTTP: test/cookie-formats.test.ts. Nothing here starts the app, so mutation
// testing (npm run test:mutation) runs these in a second or two per mutant.
import { createDecipheriv } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { z } from 'zod';
import { issueAccessToken } from '../lib/auth';
import { resetConfigForTests } from '../lib/config';
import {
  blindIndex,
  decrypt,
  decryptBytes,
  emailBlindIndex,
  emailBlindIndexes,
  encrypt,
  encryptBytes,
  nameSearchToken,
  nameSearchTokenSets,
  nameSearchTokens,
  resetKeysForTests,
} from '../lib/crypto';
import { encodeCursor, keyset, sealCursor, sealedCursorSchema } from '../lib/pagination';

const nonce = vi.hoisted(() => ({ fixed: undefined as Buffer | undefined }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number, ...rest: unknown[]) =>
    nonce.fixed && size === 12 && rest.length === 0
      ? Buffer.from(nonce.fixed)
      : (actual.randomBytes as (...args: unknown[]) => Buffer)(size, ...rest)) as typeof actual.randomBytes;
  return { ...actual, default: { ...actual, randomBytes }, randomBytes };
});

const STORED = 'stored data depends on this format: changing it orphans every value already written';
const CLIENTS = 'clients depend on this: changing it breaks every deployed portal and tool';

/** Key bytes 0x00..0x1f (id k1), blind-index key bytes 0x20..0x3f, nonce bytes 0xa0..0xab. */
const ENCRYPTION_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const KEYS = {
  PII_ENCRYPTION_KEYS: 'k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
  PII_BLIND_INDEX_KEY: 'ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=',
  JWT_SIGNING_KEY: 'c3RvcmVkLWZvcm1hdHMtdGVzdC1qd3Qtc2lnbmluZy1rZXktMzJiIQ==',
};
const JWT_KEY = Buffer.from('stored-formats-test-jwt-signing-key-32b!');
const NONCE = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaab', 'hex');

function withNonce<T>(make: () => T): T {
  nonce.fixed = NONCE;
  try {
    return make();
  } finally {
    nonce.fixed = undefined;
  }
}

beforeAll(() => {
  Object.assign(process.env, KEYS);
  process.env.DATABASE_URL ??= 'postgres://unused:unused@127.0.0.1:5432/unused';
  resetConfigForTests();
  resetKeysForTests();
});

describe('personal data at rest (AES-256-GCM envelope)', () => {
  const TEXT = 'Zoë Ann Müller';
  const TEXT_CIPHERTEXT = 'v1.k1.oKGio6SlpqeoqaqrvHe_hmWKbNFCKERvaxalrLWNsuvufAXscAt0AQxhNro';
  const PDF = Buffer.from('%PDF-1.7\n', 'latin1');
  const PDF_CIPHERTEXT = Buffer.from(
    '76312e6b312ea0a1a2a3a4a5a6a7a8a9aaabc348386b68fa2c886837cce4279639a2c654862d1588d85b24',
    'hex',
  );

  test('a stored text ciphertext decrypts to its value', () => {
    expect(decrypt(TEXT_CIPHERTEXT, 'users.first_name'), STORED).toBe(TEXT);
  });

  test('a value encrypts to exactly v1.<keyId>.base64url(nonce[12] ‖ ciphertext ‖ tag[16])', () => {
    expect(
      withNonce(() => encrypt(TEXT, 'users.first_name')),
      STORED,
    ).toBe(TEXT_CIPHERTEXT);
  });

  test('the layout of a fresh ciphertext, read with node:crypto alone', () => {
    const ciphertext = encrypt(TEXT, 'users.first_name');
    expect(ciphertext.startsWith('v1.k1.'), STORED).toBe(true);
    const sealed = Buffer.from(ciphertext.slice('v1.k1.'.length), 'base64url');
    const plaintext = Buffer.from(TEXT, 'utf8');
    expect(sealed.length, STORED).toBe(12 + plaintext.length + 16);
    const decipher = createDecipheriv('aes-256-gcm', ENCRYPTION_KEY, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from('users.first_name'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const opened = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    expect(opened.toString('utf8'), STORED).toBe(TEXT);
  });

  test('the column is the associated data: the same ciphertext under another column is refused', () => {
    expect(() => decrypt(TEXT_CIPHERTEXT, 'users.last_name'), STORED).toThrow();
  });

  test('a stored document (bytea) is the ASCII header then the raw sealed bytes', () => {
    expect(decryptBytes(PDF_CIPHERTEXT, 'transcript_documents.content').equals(PDF), STORED).toBe(true);
    const made = withNonce(() => encryptBytes(PDF, 'transcript_documents.content'));
    expect(made.toString('hex'), STORED).toBe(PDF_CIPHERTEXT.toString('hex'));
  });
});

describe('blind indexes and name search tokens (HMAC-SHA256)', () => {
  test('the email blind index: HMAC(key, "email\\0" + NFKC, trimmed, lower-cased email)', () => {
    const expected = 'dc3d26dffc17fab2c027131dd18e453bfbc5f068e200631cbfc78728f78c0c29';
    expect(emailBlindIndex('zoe.muller@example.edu').toString('hex'), STORED).toBe(expected);
    expect(emailBlindIndex('  ZOE.Muller@EXAMPLE.edu ').toString('hex'), STORED).toBe(expected);
  });

  // HMAC(key, "name\0" + prefix), first 12 bytes, for each prefix of 2..min(length, 8) characters of every
  // word after NFKD, accents dropped, lower-casing and splitting on anything but letters and digits.
  const NAME_TOKENS: [string, string][] = [
    ['zo', '3f1b5a01b5793892e152202b'],
    ['zoe', '7c58e56ecc7b06690efba59f'],
    ['an', '274b284e4b71362d0ce3ad97'],
    ['ann', 'd7a7c9b3e35323f352462e47'],
    ['mu', '41ac9713d58b8c88265611e0'],
    ['mul', '4189d4d054770194c9850bc8'],
    ['mull', 'ba9c6e387b433b6483f2de9b'],
    ['mulle', 'cf4132b77a3ee29c3ef61517'],
    ['muller', 'd39f36b16baf5d64c83b1a80'],
    ['mullers', '1a5648b0819ab7d0ae1069ca'],
    ['mullersb', '028171ac28baff0e270406b1'],
  ];
  const tokenOf = (prefix: string) => NAME_TOKENS.find(([p]) => p === prefix)?.[1];

  test('the stored tokens of a name: every prefix of 2..8 characters, accents and case folded', () => {
    const tokens = nameSearchTokens('Zoë-Ann', 'MÜLLERSBACH').map((token) => token.toString('hex'));
    expect(tokens, STORED).toEqual(NAME_TOKENS.map(([, hex]) => hex));
  });

  test('a short word gets tokens up to its own length only (min, not max: lengths stay hidden past 8)', () => {
    expect(
      nameSearchTokens('ZOE').map((token) => token.toString('hex')),
      STORED,
    ).toEqual([tokenOf('zo'), tokenOf('zoe')]);
  });

  test('the token searched for a typed prefix: its first word, folded, cut at 8 characters', () => {
    expect(nameSearchToken('Zo')?.toString('hex'), STORED).toBe(tokenOf('zo'));
    expect(nameSearchToken('zoë')?.toString('hex'), STORED).toBe(tokenOf('zoe'));
    expect(nameSearchToken('Müllersbacher')?.toString('hex'), STORED).toBe(tokenOf('mullersb'));
    expect(nameSearchToken('MULLERSB')?.toString('hex'), STORED).toBe(tokenOf('mullersb'));
    expect(nameSearchToken('m'), STORED).toBeNull();
  });
});

describe('blind indexes of a rotated index key (PII_BLIND_INDEX_KEY=k2:…,<the key without an id>)', () => {
  /** Index key bytes 0x40..0x5f under the id k2; the key without an id stays 0x20..0x3f. */
  const ROTATING = `k2:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=,${KEYS.PII_BLIND_INDEX_KEY}`;
  const rotating = <T>(make: () => T, extra: Record<string, string> = {}): T => {
    const saved = { ...process.env };
    Object.assign(process.env, { PII_BLIND_INDEX_KEY: ROTATING }, extra);
    resetConfigForTests();
    resetKeysForTests();
    try {
      return make();
    } finally {
      process.env = saved;
      resetConfigForTests();
      resetKeysForTests();
    }
  };

  test('an index under a key with an id is "<id>:" in ASCII, then the HMAC (the key without one: the bare HMAC)', () => {
    const [current, previous] = rotating(() => emailBlindIndexes('Zoe.Muller@example.edu'));
    expect(current?.toString('hex'), STORED).toBe(
      '6b323a5fc69f669f011fcb278c9c9a8fcf54d8dfa347a17563e6df3656c4d3d4d12e5e',
    );
    expect(previous?.toString('hex'), STORED).toBe('dc3d26dffc17fab2c027131dd18e453bfbc5f068e200631cbfc78728f78c0c29');
    expect(rotating(() => emailBlindIndex('zoe.muller@example.edu')).equals(current as Buffer)).toBe(true);
  });

  test('name tokens carry the same prefix; a search looks under every key', () => {
    const tokens = rotating(() => nameSearchTokens('Zoë').map((token) => token.toString('hex')));
    expect(tokens, STORED).toEqual(['6b323adb9dd1a32ff8529537e77521', '6b323a586a6d481af26e63345345dc']);
    const sets = rotating(() => nameSearchTokenSets(['zoe']).map((set) => set.map((token) => token.toString('hex'))));
    expect(sets, STORED).toEqual([['6b323a586a6d481af26e63345345dc'], ['7c58e56ecc7b06690efba59f']]);
  });

  test('the xAPI indexes stay on the key without an id, or on PII_XAPI_INDEX_KEY once that is set', () => {
    const verb = () => blindIndex('xapi-verb', 'http://adlnet.gov/expapi/verbs/completed', 16).toString('hex');
    expect(verb(), STORED).toBe('4ec54e5577e644c2ecbe7859a3c27285');
    expect(rotating(verb), STORED).toBe('4ec54e5577e644c2ecbe7859a3c27285');
    const retired = { PII_BLIND_INDEX_KEY: 'k2:QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=' };
    expect(rotating(verb, { ...retired, PII_XAPI_INDEX_KEY: KEYS.PII_BLIND_INDEX_KEY }), STORED).toBe(
      '4ec54e5577e644c2ecbe7859a3c27285',
    );
  });
});

describe('cursors', () => {
  const KEY = ['2026-01-02T03:04:05.123456Z', '0b7c5f2e-8d1a-4c3b-9e6f-1a2b3c4d5e6f'] as const;
  const CURSOR = 'WyIyMDI2LTAxLTAyVDAzOjA0OjA1LjEyMzQ1NloiLCIwYjdjNWYyZS04ZDFhLTRjM2ItOWU2Zi0xYTJiM2M0ZDVlNmYiXQ';

  test('a list cursor is base64url (no padding) of the JSON array of the last row’s key', () => {
    expect(encodeCursor(KEY), CLIENTS).toBe(CURSOR);
    const order = keyset(
      [
        ['created_at', 'time'],
        ['id', 'uuid'],
      ],
      'desc',
    );
    expect(order.cursor.parse(CURSOR), CLIENTS).toEqual([...KEY]);
  });

  test('a cursor holding names is sealed like a stored value, under students.cursor', () => {
    const key = ['muller', 'zoe', '0b7c5f2e-8d1a-4c3b-9e6f-1a2b3c4d5e6f'];
    const sealed =
      'v1.k1.oKGio6SlpqeoqaqrvToRWCmnZ81ASaWpaB_i8lKcOyfxgiRe-SMe4k7KWDWxRSXSlkdlW3KtZfprSeDNIy4jfgTyR977jCrd6Bj2zRkbwNDIvm0';
    expect(
      withNonce(() => sealCursor(key, 'students.cursor')),
      CLIENTS,
    ).toBe(sealed);
    expect(
      sealedCursorSchema(z.tuple([z.string(), z.string(), z.uuid()]), 'students.cursor').parse(sealed),
      CLIENTS,
    ).toEqual(key);
  });
});

describe('access tokens', () => {
  test('HS256, issuer aada-lms-api, audience aada-lms, 15 minutes, subject, roles, session and id', async () => {
    const userId = '4a0f3a4e-1d6b-4c8e-9a57-2f1e0c9b8d7a';
    const sessionId = '9b2c4d6e-8f0a-4b1c-8d3e-5f7a9b1c3d5e';
    const token = await issueAccessToken({ id: userId, roles: ['student', 'instructor'] }, sessionId);
    expect(decodeProtectedHeader(token), CLIENTS).toEqual({ alg: 'HS256', typ: 'JWT' });
    const { payload } = await jwtVerify(token, new Uint8Array(JWT_KEY), {
      issuer: 'aada-lms-api',
      audience: 'aada-lms',
      algorithms: ['HS256'],
    });
    expect(Object.keys(payload).sort(), CLIENTS).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'roles', 'sid', 'sub']);
    expect(payload.sub, CLIENTS).toBe(userId);
    expect(payload.sid, CLIENTS).toBe(sessionId);
    expect(payload.roles, CLIENTS).toEqual(['student', 'instructor']);
    expect(decodeJwt(token).exp! - decodeJwt(token).iat!, CLIENTS).toBe(15 * 60);
    expect(Math.abs((payload.iat as number) - Date.now() / 1000), CLIENTS).toBeLessThan(60);
  });
});
