// Fixed vectors of the stored file format (lib/crypto.ts encryptingStream / decryptingStream), without the
// app or the blob store: every file already in the store was written this way, so a change to the layout
// (header, nonce prefix, segment size, the last-segment flag, the tag after each segment) orphans them all.
// The expected bytes are made here with node:crypto by hand, from the documented construction, never by
// the code under test; the 7-byte nonce prefix is fixed by replacing randomBytes for 7-byte requests while
// a test asks for it. Then the refusals a reader depends on: a changed, cut, reordered or moved file fails.
import { createCipheriv } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { resetConfigForTests } from '../lib/config';
import {
  decryptingStream,
  encryptingStream,
  FILE_SEGMENT_BYTES,
  fileHeaderBytes,
  resetKeysForTests,
  SEALED_FILE_SEGMENT_BYTES,
} from '../lib/crypto';

const prefix = vi.hoisted(() => ({ fixed: undefined as Buffer | undefined }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((size: number, ...rest: unknown[]) =>
    prefix.fixed && size === 7 && rest.length === 0
      ? Buffer.from(prefix.fixed)
      : (actual.randomBytes as (...args: unknown[]) => Buffer)(size, ...rest)) as typeof actual.randomBytes;
  return { ...actual, default: { ...actual, randomBytes }, randomBytes };
});

const STORED = 'stored files depend on this format: changing it orphans every file already written';

/** Key k1 is bytes 0x00..0x1f, k2 bytes 0x40..0x5f; the nonce prefix is b0..b6. */
const K1 = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const K2 = Buffer.from('404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f', 'hex');
const PREFIX = Buffer.from('b0b1b2b3b4b5b6', 'hex');
const FIELD = 'stored_files.test-doc:0b6e3a52-1111-4222-8333-944445555666';

function useKeys(encryptionKeys: string): void {
  process.env.PII_ENCRYPTION_KEYS = encryptionKeys;
  process.env.PII_BLIND_INDEX_KEY = 'ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=';
  process.env.DATABASE_URL ??= 'postgres://unused:unused@127.0.0.1:5432/unused';
  resetConfigForTests();
  resetKeysForTests();
}
const ONLY_K1 = `k1:${K1.toString('base64')}`;
const K2_THEN_K1 = `k2:${K2.toString('base64')},k1:${K1.toString('base64')}`;

beforeAll(() => useKeys(ONLY_K1));

/** One segment as the format says: AES-256-GCM, nonce = prefix ‖ index (uint32 BE) ‖ 1 if last else 0. */
function sealSegment(key: Buffer, plaintext: Buffer, index: number, last: boolean, field = FIELD): Buffer {
  const nonce = Buffer.alloc(12);
  PREFIX.copy(nonce, 0);
  nonce.writeUInt32BE(index, 7);
  nonce[11] = last ? 1 : 0;
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(field));
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** What a file of `plaintext` must be on disk under key `k1`. */
function expectedFile(plaintext: Buffer, key = K1, keyId = 'k1'): Buffer {
  const parts: Buffer[] = [Buffer.from(`v1.${keyId}.`, 'ascii'), PREFIX];
  let index = 0;
  let rest: Buffer = plaintext;
  while (rest.length > FILE_SEGMENT_BYTES) {
    parts.push(sealSegment(key, rest.subarray(0, FILE_SEGMENT_BYTES), index++, false));
    rest = rest.subarray(FILE_SEGMENT_BYTES);
  }
  parts.push(sealSegment(key, rest, index, true));
  return Buffer.concat(parts);
}

/** Runs bytes through a stream in chunks of `chunk` bytes. */
const through = (stream: Transform, bytes: Buffer, chunk = 10_000) => {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunk) chunks.push(bytes.subarray(at, at + chunk));
  return buffer(Readable.from(chunks).pipe(stream));
};

const sealed = async (plaintext: Buffer, chunk?: number) => {
  prefix.fixed = PREFIX;
  try {
    return await through(encryptingStream(FIELD), plaintext, chunk);
  } finally {
    prefix.fixed = undefined;
  }
};

/** Deterministic bytes 0, 1, 2, … 250, 0, 1, … */
const pattern = (length: number) => Buffer.from(Array.from({ length }, (_, at) => at % 251));

describe('the stored file format', () => {
  test('sizes: the header is v1.<keyId>. and a 7-byte nonce prefix; a segment is 64 KiB of plaintext and its 16-byte tag', () => {
    expect(FILE_SEGMENT_BYTES, STORED).toBe(65_536);
    expect(SEALED_FILE_SEGMENT_BYTES, STORED).toBe(65_552);
    expect(fileHeaderBytes('k1'), STORED).toBe(13);
    expect(fileHeaderBytes('a-32-character-key-id-0123456789'), STORED).toBe(43);
  });

  test('a short file is the header, then one segment flagged last', async () => {
    const plaintext = Buffer.from('Jordan Example, externship log\n', 'utf8');
    const file = await sealed(plaintext);
    expect(file.subarray(0, 13).toString('latin1'), STORED).toBe('v1.k1.\xb0\xb1\xb2\xb3\xb4\xb5\xb6');
    expect(file.length, STORED).toBe(13 + plaintext.length + 16);
    expect(file.equals(expectedFile(plaintext)), STORED).toBe(true);
  });

  test('an empty file is the header and one empty last segment (its tag alone)', async () => {
    const file = await sealed(Buffer.alloc(0));
    expect(file.equals(expectedFile(Buffer.alloc(0))), STORED).toBe(true);
    expect(file.length, STORED).toBe(13 + 16);
  });

  test('a file of exactly one segment is one segment flagged last, not a full one and an empty last', async () => {
    const plaintext = pattern(FILE_SEGMENT_BYTES);
    const file = await sealed(plaintext, 4096);
    expect(file.length, STORED).toBe(13 + SEALED_FILE_SEGMENT_BYTES);
    expect(file.equals(expectedFile(plaintext)), STORED).toBe(true);
  });

  test('a longer file: full segments numbered from 0, the last flagged, whatever the chunks it arrives in', async () => {
    const plaintext = pattern(2 * FILE_SEGMENT_BYTES + 1000);
    const expected = expectedFile(plaintext);
    expect(expected.length).toBe(13 + 2 * SEALED_FILE_SEGMENT_BYTES + 1000 + 16);
    expect((await sealed(plaintext, 7_777)).equals(expected), STORED).toBe(true);
    expect((await sealed(plaintext, 200_000)).equals(expected), STORED).toBe(true);
  });
});

describe('reading a stored file', () => {
  const plaintext = pattern(2 * FILE_SEGMENT_BYTES + 1000);
  const file = () => expectedFile(plaintext);
  const read = (bytes: Buffer, chunk?: number, field = FIELD) => through(decryptingStream(field), bytes, chunk);

  test('a file written by hand in the format reads back, in any chunking (down to a few bytes)', async () => {
    expect((await read(file(), 5)).equals(plaintext)).toBe(true);
    expect((await read(file(), 70_000)).equals(plaintext)).toBe(true);
    expect((await read(expectedFile(Buffer.alloc(0)), 3)).length).toBe(0);
    const short = Buffer.from('one line');
    expect((await read(expectedFile(short), 1)).equals(short)).toBe(true);
  });

  test('a file sealed under an older key still reads once the key rotates (looked up by the id in its header)', async () => {
    const old = file();
    useKeys(K2_THEN_K1);
    try {
      expect((await read(old)).equals(plaintext)).toBe(true);
      const underK2 = expectedFile(plaintext, K2, 'k2');
      expect((await read(underK2)).equals(plaintext)).toBe(true);
      const fresh = await sealed(Buffer.from('new'));
      expect(fresh.subarray(0, 6).toString('ascii'), STORED).toBe('v1.k2.');
    } finally {
      useKeys(ONLY_K1);
    }
  });

  test('a file under a key that is not configured is refused, naming the key id', async () => {
    await expect(read(expectedFile(plaintext, K2, 'k2'))).rejects.toThrow('no key k2 configured to decrypt this file');
  });

  test('any changed byte (header prefix, body, tag) is refused', async () => {
    for (const at of [8, 13, 13 + 70_000, file().length - 1]) {
      const changed = file();
      changed[at] = (changed[at] as number) ^ 0x01;
      await expect(read(changed), `byte ${at}`).rejects.toThrow();
    }
  });

  test('a file moved to another record (other associated data) is refused', async () => {
    await expect(read(file(), undefined, `${FIELD}x`)).rejects.toThrow();
  });

  test('a file cut at a segment boundary, or with two segments swapped, is refused', async () => {
    const whole = file();
    const header = whole.subarray(0, 13);
    const first = whole.subarray(13, 13 + SEALED_FILE_SEGMENT_BYTES);
    const second = whole.subarray(13 + SEALED_FILE_SEGMENT_BYTES, 13 + 2 * SEALED_FILE_SEGMENT_BYTES);
    const last = whole.subarray(13 + 2 * SEALED_FILE_SEGMENT_BYTES);
    await expect(read(Buffer.concat([header, first, second]))).rejects.toThrow();
    await expect(read(Buffer.concat([header, second, first, last]))).rejects.toThrow();
    await expect(read(Buffer.concat([header, first, last]))).rejects.toThrow();
  });

  test('what is no file ciphertext is refused: another format, a bare header, a segment shorter than a tag', async () => {
    await expect(read(Buffer.from('%PDF-1.7 not encrypted at all'))).rejects.toThrow(
      'not a ciphertext of this application',
    );
    await expect(read(Buffer.from('v1.k1.'))).rejects.toThrow('not a file ciphertext of this application');
    await expect(read(Buffer.concat([file().subarray(0, 13), Buffer.alloc(15)]))).rejects.toThrow(
      'file ciphertext cut short',
    );
  });
});

describe('reading from a segment on (byte ranges)', () => {
  const plaintext = pattern(3 * FILE_SEGMENT_BYTES + 500);
  const whole = () => expectedFile(plaintext);
  const segment = (index: number) =>
    whole().subarray(13 + index * SEALED_FILE_SEGMENT_BYTES, 13 + (index + 1) * SEALED_FILE_SEGMENT_BYTES);
  const header = () => whole().subarray(0, 13);
  const readFrom = (bytes: Buffer, from: { segment: number; toEnd: boolean }) =>
    through(decryptingStream(FIELD, from), bytes, 30_000);

  test('the header and the segments from N to the end read as the plaintext from N × 64 KiB', async () => {
    const tail = Buffer.concat([header(), whole().subarray(13 + 2 * SEALED_FILE_SEGMENT_BYTES)]);
    const out = await readFrom(tail, { segment: 2, toEnd: true });
    expect(out.equals(plaintext.subarray(2 * FILE_SEGMENT_BYTES))).toBe(true);
  });

  test('full segments in the middle read when the range stops short of the end', async () => {
    const middle = Buffer.concat([header(), segment(1), segment(2)]);
    const out = await readFrom(middle, { segment: 1, toEnd: false });
    expect(out.equals(plaintext.subarray(FILE_SEGMENT_BYTES, 3 * FILE_SEGMENT_BYTES))).toBe(true);
  });

  test('a segment presented under another index, or a range cut inside a segment, is refused', async () => {
    await expect(readFrom(Buffer.concat([header(), segment(1)]), { segment: 2, toEnd: false })).rejects.toThrow();
    const cut = Buffer.concat([header(), segment(1), segment(2).subarray(0, 1000)]);
    await expect(readFrom(cut, { segment: 1, toEnd: false })).rejects.toThrow('file ciphertext cut short');
    // Stopping short of the end: the last full segment is not flagged last, and is not read as if it were.
    await expect(readFrom(Buffer.concat([header(), segment(1)]), { segment: 1, toEnd: true })).rejects.toThrow();
  });
});
