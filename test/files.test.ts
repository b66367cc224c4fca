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
