// The files store (lib/files.ts) against a real Azurite: what lands in the blob is ciphertext, a file
// reads back exactly, a changed or moved blob is refused, a source over its bound stores nothing,
// orphans are swept and referenced objects kept, and keys:rotate moves files to the current key.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { describe, expect, test } from 'vitest';
import { config, resetConfigForTests } from '../lib/config';
import { resetKeysForTests } from '../lib/crypto';
import { HttpError } from '../lib/errors';
import {
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  openFile,
  openFileRange,
  readFile,
  rotateFileKeys,
  storeFile,
  sweepOrphanFiles,
} from '../lib/files';
import { useTestApp } from './helpers/app';

const app = useTestApp();

function blobs(shelf = 'files') {
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  const service = new BlobServiceClient(config().BLOB_ENDPOINT as string, credential);
  return service.getContainerClient(`${config().BLOB_CONTAINER_PREFIX}${shelf}`);
}

const objectName = async (id: string) =>
  (await app.db.sql<{ object_name: string }[]>`select object_name from stored_files where id = ${id}`)[0]!.object_name;

async function rawBlob(id: string): Promise<Buffer> {
  return blobs()
    .getBlobClient(await objectName(id))
    .downloadToBuffer();
}

/** A recognisable plaintext of `bytes` bytes: a marker repeated over random filler. */
function document(bytes: number): Buffer {
  const content = randomBytes(bytes);
  for (let at = 0; at + 40 < bytes; at += 10_000) content.write('Jordan Example, SSN last four 4321', at);
  return content;
}

const store = (content: Buffer | Readable, maxBytes = 10_000_000) =>
  storeFile(app.db.sql, {
    purpose: 'test-doc',
    shelf: 'files',
    contentType: 'application/pdf',
    maxBytes,
    source: content,
  });

describe('files store on Azurite', () => {
  test('a multi-segment file reads back byte for byte; the blob holds none of it in the clear', async () => {
    const content = document(1_500_000);
    const stored = await store(content);
    expect(stored.byteSize).toBe(content.length);
    const read = await readFile(app.db.sql, stored.id);
    expect(read?.content.equals(content)).toBe(true);
    expect(read?.file.sha256.toString('hex')).toBe(
      (await import('node:crypto')).createHash('sha256').update(content).digest('hex'),
    );
    const raw = await rawBlob(stored.id);
    expect(raw.subarray(0, 9).toString('latin1')).toMatch(/^v1\.[^.]+\./);
    expect(raw.includes('Jordan Example')).toBe(false);
    expect(raw.includes(content.subarray(100, 140))).toBe(false);
  });

  test('an empty file and a streamed source of exactly one segment both round-trip', async () => {
    for (const content of [Buffer.alloc(0), document(64 * 1024)]) {
      const stored = await store(Readable.from([content.subarray(0, 1000), content.subarray(1000)]));
      expect((await readFile(app.db.sql, stored.id))?.content.equals(content)).toBe(true);
    }
  });

  test('a source over its bound is refused with a 413 and leaves neither row nor object', async () => {
    const before = await app.db.sql`select count(*)::int as n from stored_files`;
    const error = await store(document(300_000), 200_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(413);
    const after = await app.db.sql`select count(*)::int as n from stored_files`;
    expect(after[0]!.n).toBe(before[0]!.n);
    const names: string[] = [];
    for await (const item of blobs().listBlobsFlat()) names.push(item.name);
    const rows = await app.db.sql<{ object_name: string }[]>`select object_name from stored_files`;
    expect(names.sort()).toEqual(rows.map((row) => row.object_name).sort());
  });

  test('one changed byte in the blob, or a blob moved onto another row, fails the read', async () => {
    const stored = await store(document(200_000));
    const raw = await rawBlob(stored.id);
    const tampered = Buffer.from(raw);
    tampered[150_000] = (tampered[150_000] ?? 0) ^ 1;
    const other = await store(document(1_000));
    // Overwriting stands in for someone with write access to the storage account.
    await blobs()
      .getBlockBlobClient(await objectName(stored.id))
      .uploadData(tampered);
    await expect(readFile(app.db.sql, stored.id)).rejects.toThrow();
    await blobs()
      .getBlockBlobClient(await objectName(other.id))
      .uploadData(raw);
    await expect(readFile(app.db.sql, other.id)).rejects.toThrow();
    // Cut off after the first segment: the last-segment flag is missing.
    await blobs()
      .getBlockBlobClient(await objectName(stored.id))
      .uploadData(raw.subarray(0, 9 + 7 + 65_536 + 16));
    await expect(readFile(app.db.sql, stored.id)).rejects.toThrow();
  });

  test('a missing file is null; the sweep deletes orphans and keeps objects a row names', async () => {
    expect(await openFile(app.db.sql, '00000000-0000-4000-8000-000000000000')).toBeNull();
    const kept = await store(document(5_000));
    await blobs().getBlockBlobClient('test-doc/orphan.demo1').uploadData(Buffer.from('left by a failed request'));
    const report = await sweepOrphanFiles(app.db.sql, 0);
    expect(report.deleted).toBeGreaterThanOrEqual(1);
    expect(await blobs().getBlobClient('test-doc/orphan.demo1').exists()).toBe(false);
    expect((await readFile(app.db.sql, kept.id))?.content.length).toBe(5_000);
  });

  test('keys:rotate re-encrypts files under the new key and deletes the old objects', async () => {
    const content = document(150_000);
    const stored = await store(content);
    const oldName = await objectName(stored.id);
    const previous = process.env.PII_ENCRYPTION_KEYS;
    process.env.PII_ENCRYPTION_KEYS = `fresh:${randomBytes(32).toString('base64')},demo1:${'ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q='}`;
    resetConfigForTests();
    resetKeysForTests();
    try {
      const report = await rotateFileKeys(app.db.sql);
      expect(report.rotated).toBeGreaterThanOrEqual(1);
      expect(report.unreadable.length).toBe(2); // the two blobs changed by the tampering test
      const newName = await objectName(stored.id);
      expect(newName).toBe(`test-doc/${stored.id}.fresh`);
      expect(await blobs().getBlobClient(oldName).exists()).toBe(false);
      expect((await readFile(app.db.sql, stored.id))?.content.equals(content)).toBe(true);
      expect((await rotateFileKeys(app.db.sql)).rotated).toBe(0);
    } finally {
      if (previous === undefined) delete process.env.PII_ENCRYPTION_KEYS;
      else process.env.PII_ENCRYPTION_KEYS = previous;
      resetConfigForTests();
      resetKeysForTests();
    }
  });
});

describe('byte ranges read from the segment holding their first byte', () => {
  const SEGMENT = 64 * 1024;
  const SEALED = SEGMENT + 16;
  const HEADER = 'v1.demo1.'.length + 7;

  async function range(id: string, start: number, end: number): Promise<Buffer> {
    const opened = await openFileRange(app.db.sql, id, start, end);
    const chunks: Buffer[] = [];
    for await (const chunk of opened!.content) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  test.each([
    ['the last byte', -1, -1],
    ['the last 100 bytes', -100, -1],
    ['inside one late segment', 20 * SEGMENT + 5, 20 * SEGMENT + 900],
    ['exactly one segment', 7 * SEGMENT, 8 * SEGMENT - 1],
    ['across three segment boundaries', 3 * SEGMENT - 1, 6 * SEGMENT],
    ['from the first byte', 0, 10],
  ])('%s of a 1.5 MB file reads exactly those bytes', async (_label, from, to) => {
    const content = document(1_500_000);
    const stored = await store(content);
    const start = from < 0 ? content.length + from : from;
    const end = to < 0 ? content.length + to : to;
    expect((await range(stored.id, start, end)).equals(content.subarray(start, end + 1))).toBe(true);
  });

  test('a file of whole segments (its last segment full) reads its last segment and one before it', async () => {
    const content = document(4 * SEGMENT);
    const stored = await store(content);
    expect((await range(stored.id, 3 * SEGMENT, 4 * SEGMENT - 1)).equals(content.subarray(3 * SEGMENT))).toBe(true);
    const middle = await range(stored.id, 2 * SEGMENT + 1, 3 * SEGMENT - 2);
    expect(middle.equals(content.subarray(2 * SEGMENT + 1, 3 * SEGMENT - 1))).toBe(true);
  });

  test('a late range does not read segment 0 at all, and a changed byte in its own segment fails it', async () => {
    const content = document(1_500_000);
    const stored = await store(content);
    const name = await objectName(stored.id);
    const raw = await rawBlob(stored.id);
    const late = 20 * SEGMENT + 10;
    try {
      // A change in segment 0 goes unnoticed by a range that starts in segment 20: segment 0 is never read.
      const early = Buffer.from(raw);
      early[HEADER + 100] = (early[HEADER + 100] ?? 0) ^ 1;
      await blobs().getBlockBlobClient(name).uploadData(early);
      expect((await range(stored.id, late, late + 99)).equals(content.subarray(late, late + 100))).toBe(true);
      await expect(range(stored.id, 0, 99)).rejects.toThrow();

      const inRange = Buffer.from(raw);
      const at = HEADER + 20 * SEALED + 50;
      inRange[at] = (inRange[at] ?? 0) ^ 1;
      await blobs().getBlockBlobClient(name).uploadData(inRange);
      await expect(range(stored.id, late, late + 99)).rejects.toThrow();

      // Segment 21 copied over segment 20 (both authentic, wrong place): its index in the nonce fails it.
      const moved = Buffer.from(raw);
      raw.copy(moved, HEADER + 20 * SEALED, HEADER + 21 * SEALED, HEADER + 22 * SEALED);
      await blobs().getBlockBlobClient(name).uploadData(moved);
      await expect(range(stored.id, late, late + 99)).rejects.toThrow();

      // Cut off after a full segment: a range to the end misses the last flag (or the bytes).
      await blobs()
        .getBlockBlobClient(name)
        .uploadData(raw.subarray(0, HEADER + 22 * SEALED));
      await expect(range(stored.id, content.length - 10, content.length - 1)).rejects.toThrow();
      await expect(range(stored.id, 21 * SEGMENT, 21 * SEGMENT + 5)).resolves.toBeInstanceOf(Buffer);

      // The segments of another row, at the same place, do not decrypt under this row's binding.
      const other = await store(document(1_500_000));
      await blobs()
        .getBlockBlobClient(name)
        .uploadData(await rawBlob(other.id));
      await expect(range(stored.id, late, late + 99)).rejects.toThrow();
    } finally {
      await blobs().getBlockBlobClient(name).uploadData(raw);
    }
    expect((await range(stored.id, late, late + 99)).equals(content.subarray(late, late + 100))).toBe(true);
  });

  test('a range outside the file is refused before anything is read', async () => {
    const stored = await store(document(1_000));
    for (const [start, end] of [
      [0, 1_000],
      [-1, 5],
      [10, 5],
      [0.5, 3],
    ] as const) {
      await expect(openFileRange(app.db.sql, stored.id, start, end)).rejects.toThrow(RangeError);
    }
    expect(await openFileRange(app.db.sql, '00000000-0000-4000-8000-000000000000', 0, 0)).toBeNull();
  });
});
