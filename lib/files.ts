// The files store: documents (PDFs, templates, later course content) in Azure Blob Storage, never in
// table rows or on an instance's disk. Every object is encrypted before upload as a stream of
// authenticated segments (lib/crypto.ts encryptingStream: the key id in its header, the file's purpose
// and id as associated data), so the storage account holds no readable personal data and a blob cannot
// be swapped for another. Each object is written once under a new name and never overwritten; the
// table `stored_files` keeps its name, key id, size, SHA-256 and content type. The object is written
// before the row that points to it, so a failed request leaves at most an orphan object, which
// sweepOrphanFiles removes (an object no row names is never read).
//
// Two containers ("shelves"): `files`, and `retained` for records the school must keep unchanged (in
// Azure a time-based immutability policy, WORM, covers it: infra/modules/files.bicep).
//
// Where: BLOB_ENDPOINT. In Azure the storage account, reached with the managed identity; locally and in
// tests Azurite (dev/azurite.ts), reached with the emulator's published development key. Production
// without BLOB_ENDPOINT does not start (lib/config.ts).
//
// Why one file over 350 lines: writing, reading (whole or a range), key rotation and the orphan sweep
// share the object naming, the encryption framing and the container clients: they are the one format
// of a stored object, and a change to it must be made in all of them at once.
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type postgres from 'postgres';
import { ConfigError, config } from './config';
import {
  currentKeyId,
  decryptingStream,
  encryptingStream,
  FILE_SEGMENT_BYTES,
  fileHeaderBytes,
  type PiiField,
  SEALED_FILE_SEGMENT_BYTES,
} from './crypto';
import { TEXT_ARRAY } from './db';
import { payloadTooLarge } from './errors';

type AnySql = postgres.Sql | postgres.TransactionSql;

export type FileShelf = 'files' | 'retained';
const SHELVES: readonly FileShelf[] = ['files', 'retained'];

/** Azurite's development account (published by Microsoft; it opens nothing but the local emulator). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
/** Upload in blocks of this size, two in flight: an upload holds at most ~3 blocks in memory. */
const UPLOAD_BLOCK_BYTES = 1024 * 1024;

export interface StoredFile {
  id: string;
  purpose: string;
  byteSize: number;
  sha256: Buffer;
  contentType: string;
}

export interface NewFile {
  /** What the file is, `[a-z][a-z0-9-]*` (`agreement-sealed`): the object's folder and part of its key binding. */
  purpose: string;
  shelf: FileShelf;
  contentType: string;
  /** Larger sources are refused with a 413 before anything is stored. */
  maxBytes: number;
  source: Readable | Uint8Array;
  createdBy?: string | null;
}

// Loaded lazily: the storage SDK is large and most requests never touch a file.
const loadSdk = () => import('@azure/storage-blob');
type BlobServiceClient = InstanceType<Awaited<ReturnType<typeof loadSdk>>['BlobServiceClient']>;
type ContainerClient = ReturnType<BlobServiceClient['getContainerClient']>;

let service: Promise<BlobServiceClient> | undefined;
const containers = new Map<FileShelf, Promise<ContainerClient>>();

async function connectService(): Promise<BlobServiceClient> {
  const { BLOB_ENDPOINT, APP_ENV } = config();
  if (!BLOB_ENDPOINT) {
    throw new ConfigError('BLOB_ENDPOINT is not set: npm start and the tests start Azurite and set it');
  }
  const blob = await loadSdk();
  const host = new URL(BLOB_ENDPOINT).hostname;
  if (APP_ENV !== 'production' && LOOPBACK.has(host)) {
    const credential = new blob.StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
    return new blob.BlobServiceClient(BLOB_ENDPOINT, credential);
  }
  const { DefaultAzureCredential } = await import('@azure/identity');
  return new blob.BlobServiceClient(BLOB_ENDPOINT, new DefaultAzureCredential());
}

/** The container of a shelf. Outside production it is created on first use; in Azure infra/ creates it. */
function container(shelf: FileShelf): Promise<ContainerClient> {
  let found = containers.get(shelf);
  if (!found) {
    found = (async () => {
      service ??= connectService();
      const client = (await service).getContainerClient(`${config().BLOB_CONTAINER_PREFIX}${shelf}`);
      if (config().APP_ENV !== 'production') await client.createIfNotExists();
      return client;
    })();
    found.catch(() => containers.delete(shelf));
    containers.set(shelf, found);
  }
  return found;
}

/** Forget clients (tests change BLOB_* between files). */
export function resetFilesForTests(): void {
  service = undefined;
  containers.clear();
}

/** The associated data a file is sealed under: a blob copied onto another row does not decrypt. */
const fileField = (purpose: string, id: string): PiiField => `stored_files/${purpose}/${id}`;
const objectName = (purpose: string, id: string, keyId: string) => `${purpose}/${id}.${keyId}`;

/** Counts and hashes the plaintext on its way through; stops at `maxBytes`. */
function meter(maxBytes: number) {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > maxBytes) return callback(payloadTooLarge(maxBytes));
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  return { stream, result: () => ({ size, sha256: hash.digest() }) };
}

const asStream = (source: Readable | Uint8Array) =>
  source instanceof Uint8Array ? Readable.from([Buffer.from(source)]) : source;

/** Encrypts and uploads `source` under a new object name (never overwriting one). */
async function upload(shelf: FileShelf, name: string, field: PiiField, source: Readable, maxBytes: number) {
  const client = (await container(shelf)).getBlockBlobClient(name);
  const measured = meter(maxBytes);
  const sealed = new PassThrough();
  const piping = pipeline(source, measured.stream, encryptingStream(field), sealed);
  const uploading = client.uploadStream(sealed, UPLOAD_BLOCK_BYTES, 2, {
    blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
    conditions: { ifNoneMatch: '*' },
  });
  // An upload whose source failed is never committed: its staged blocks expire unread.
  const [piped] = await Promise.allSettled([piping, uploading]);
  if (piped.status === 'rejected') throw piped.reason;
  await uploading;
  return measured.result();
}

/** Stores a file and its row (in `sql`, the caller's transaction): the object first, then the row. */
export async function storeFile(sql: AnySql, file: NewFile): Promise<StoredFile> {
  if (!/^[a-z][a-z0-9-]{0,39}$/.test(file.purpose)) throw new Error(`bad file purpose ${file.purpose}`);
  const id = randomUUID();
  const keyId = currentKeyId();
  const name = objectName(file.purpose, id, keyId);
  const { size, sha256 } = await upload(
    file.shelf,
    name,
    fileField(file.purpose, id),
    asStream(file.source),
    file.maxBytes,
  );
  await sql`
    insert into stored_files (id, purpose, shelf, object_name, key_id, byte_size, sha256, content_type, created_by)
    values (${id}, ${file.purpose}, ${file.shelf}, ${name}, ${keyId}, ${size}, ${sha256}, ${file.contentType},
            ${file.createdBy ?? null})`;
  return { id, purpose: file.purpose, byteSize: size, sha256, contentType: file.contentType };
}

interface FileRow {
  id: string;
  purpose: string;
  shelf: FileShelf;
  object_name: string;
  key_id: string;
  byte_size: string;
  sha256: Buffer;
  content_type: string;
}

const findFileRow = async (sql: AnySql, id: string) =>
  (
    await sql<FileRow[]>`
      select id, purpose, shelf, object_name, key_id, byte_size, sha256, content_type
        from stored_files where id = ${id}`
  )[0];

/** Fails the stream at its end when the plaintext is not the file whose SHA-256 the row recorded. */
function verifyDigest(expected: Buffer): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      callback(hash.digest().equals(expected) ? null : new Error('stored file does not match its SHA-256'));
    },
  });
}

async function decryptedStream(row: FileRow): Promise<Readable> {
  const download = await (await container(row.shelf)).getBlobClient(row.object_name).download();
  const body = download.readableStreamBody as NodeJS.ReadableStream;
  const out = new PassThrough();
  pipeline(body, decryptingStream(fileField(row.purpose, row.id)), verifyDigest(row.sha256), out).catch((error) =>
    out.destroy(error),
  );
  return out;
}

const toStoredFile = (row: FileRow): StoredFile => ({
  id: row.id,
  purpose: row.purpose,
  byteSize: Number(row.byte_size),
  sha256: row.sha256,
  contentType: row.content_type,
});

/** A file's description and its decrypted content as a stream (authenticated segment by segment). */
export async function openFile(sql: AnySql, id: string): Promise<{ file: StoredFile; content: Readable } | null> {
  const row = await findFileRow(sql, id);
  if (!row) return null;
  return { file: toStoredFile(row), content: await decryptedStream(row) };
}

/** The plaintext bytes `start..end` (inclusive) of a stream that begins at plaintext byte `from`. */
function trimTo(from: number, start: number, end: number): Transform {
  let offset = from;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const chunkEnd = offset + chunk.length;
      const part = chunk.subarray(Math.max(0, start - offset), Math.max(0, Math.min(chunk.length, end + 1 - offset)));
      offset = chunkEnd;
      callback(null, part.length > 0 ? part : undefined);
    },
  });
}

/**
 * The bytes `start..end` of a file, decrypting only the segments that hold them: the object's header
 * (its key id and nonce prefix) and those segments are downloaded as two blob ranges. Each segment is
 * authenticated under its own index, the last flag where the file ends and the row's binding, so a
 * changed, moved or cut-off segment still fails; the whole file's SHA-256 is not checked (it is not read).
 */
async function decryptedRange(row: FileRow, start: number, end: number): Promise<Readable> {
  const size = Number(row.byte_size);
  const segments = Math.max(1, Math.ceil(size / FILE_SEGMENT_BYTES));
  const first = Math.floor(start / FILE_SEGMENT_BYTES);
  const last = Math.floor(end / FILE_SEGMENT_BYTES);
  const toEnd = last === segments - 1;
  const headerBytes = fileHeaderBytes(row.key_id);
  const blob = (await container(row.shelf)).getBlobClient(row.object_name);
  const header = await blob.downloadToBuffer(0, headerBytes);
  const offset = headerBytes + first * SEALED_FILE_SEGMENT_BYTES;
  // To the file's end, the download runs to the blob's end (the last segment is shorter).
  const count = toEnd ? undefined : (last - first + 1) * SEALED_FILE_SEGMENT_BYTES;
  const download = await blob.download(offset, count);
  const body = download.readableStreamBody as NodeJS.ReadableStream;
  const sealed = Readable.from(
    (async function* () {
      yield header;
      for await (const chunk of body) yield chunk as Buffer;
    })(),
  );
  const out = new PassThrough();
  pipeline(
    sealed,
    decryptingStream(fileField(row.purpose, row.id), { segment: first, toEnd }),
    trimTo(first * FILE_SEGMENT_BYTES, start, end),
    out,
  ).catch((error) => out.destroy(error));
  return out;
}

/**
 * Bytes `start..end` (inclusive, within the file) of a file and its description: for a `Range` request,
 * reading from the segment that holds `start`, never from the file's first byte.
 */
export async function openFileRange(
  sql: AnySql,
  id: string,
  start: number,
  end: number,
): Promise<{ file: StoredFile; content: Readable } | null> {
  const row = await findFileRow(sql, id);
  if (!row) return null;
  const size = Number(row.byte_size);
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end < size)) {
    throw new RangeError(`bytes ${start}-${end} are not within a file of ${size} bytes`);
  }
  return { file: toStoredFile(row), content: await decryptedRange(row, start, end) };
}

/** A whole file in memory, for the few callers that must parse it (a PDF to seal); bounded by its row. */
export async function readFile(sql: AnySql, id: string): Promise<{ file: StoredFile; content: Buffer } | null> {
  const opened = await openFile(sql, id);
  if (!opened) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of opened.content) chunks.push(chunk as Buffer);
  return { file: opened.file, content: Buffer.concat(chunks) };
}

/**
 * Re-encrypts files still under an older key (keys:rotate): each is streamed into a new object under the
 * current key, its row switched to it, and the old object deleted (on the retained shelf the WORM policy
 * keeps it until its period ends; the orphan sweep removes it then). A file that no longer decrypts (it
 * was changed in the storage account) is reported by id and left as it is.
 */
export async function rotateFileKeys(
  sql: postgres.Sql,
  batchSize = 50,
): Promise<{ rotated: number; unreadable: string[] }> {
  const keyId = currentKeyId();
  const unreadable: string[] = [];
  let rotated = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await sql<FileRow[]>`
      select id, purpose, shelf, object_name, key_id, byte_size, sha256, content_type from stored_files
       where key_id <> ${keyId} and id > ${after} order by id limit ${batchSize}`;
    if (rows.length === 0) return { rotated, unreadable };
    for (const row of rows) {
      after = row.id;
      const name = objectName(row.purpose, row.id, keyId);
      try {
        await upload(
          row.shelf,
          name,
          fileField(row.purpose, row.id),
          await decryptedStream(row),
          Number(row.byte_size),
        );
      } catch {
        unreadable.push(row.id);
        continue;
      }
      await sql`update stored_files set object_name = ${name}, key_id = ${keyId}
                 where id = ${row.id} and object_name = ${row.object_name}`;
      await deleteObject(row.shelf, row.object_name);
      rotated++;
    }
  }
}

async function deleteObject(shelf: FileShelf, name: string): Promise<boolean> {
  try {
    await (await container(shelf)).deleteBlob(name);
    return true;
  } catch {
    return false; // already gone, or under the immutability policy: the next sweep tries again
  }
}

/**
 * Deletes objects that no `stored_files` row names and that are older than `graceSeconds` (younger ones
 * may belong to a request whose row is not committed yet). Returns what it deleted and what it could not.
 */
export async function sweepOrphanFiles(sql: AnySql, graceSeconds = 3_600): Promise<{ deleted: number; kept: number }> {
  const cutoff = Date.now() - graceSeconds * 1000;
  let deleted = 0;
  let kept = 0;
  for (const shelf of SHELVES) {
    const client = await container(shelf);
    for await (const page of client.listBlobsFlat().byPage({ maxPageSize: 500 })) {
      const old = page.segment.blobItems.filter((item) => item.properties.createdOn!.getTime() < cutoff);
      if (old.length === 0) continue;
      const names = old.map((item) => item.name);
      const known = await sql<{ object_name: string }[]>`
        select object_name from stored_files where object_name = any(${sql.array(names, TEXT_ARRAY)}::text[])`;
      const referenced = new Set(known.map((row) => row.object_name));
      for (const name of names.filter((candidate) => !referenced.has(candidate))) {
        if (await deleteObject(shelf, name)) deleted++;
        else kept++;
      }
    }
  }
  return { deleted, kept };
}
