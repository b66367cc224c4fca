// Content files of a module (PDFs, images, audio, video that lessons link to): what a file is, decided
// by its first bytes (never by its name or the declared type alone), the size allowed per kind, images
// stripped of their metadata, storage through the files store (lib/files.ts: encrypted, a stored_files
// row), the module's current file of each name, and single byte ranges for streaming media.
//
// A file is named within its module (`guide.pdf`); uploading a name again replaces the file (the old
// row is retired, never deleted, and its object stays until the sweep). Lessons link to files by name
// (lib/lesson-html.ts rewrites relative addresses to `/api/modules/{moduleId}/files/{name}`).
//
// Why one file over 350 lines: type sniffing, size limits, metadata stripping, storing and byte ranges
// are the rules of one record, a module's content file, and every upload passes them in that order.
import { Readable } from 'node:stream';
import type { AnySql } from './db';
import { badRequest, HttpError, payloadTooLarge } from './errors';
import { storeFile } from './files';

const MB = 1024 * 1024;

export type ContentKind = 'pdf' | 'image' | 'audio' | 'video';

export interface ContentType {
  kind: ContentKind;
  contentType: string;
  /** Extensions a name of this type may end with (lower case, without the dot). */
  extensions: readonly string[];
  maxBytes: number;
  /** Whether the first bytes are this type. */
  matches: (head: Buffer) => boolean;
}

const startsWith = (head: Buffer, bytes: number[] | string, offset = 0) => {
  const expected = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  return head.length >= offset + expected.length && head.subarray(offset, offset + expected.length).equals(expected);
};

/** An ISO base media file (MP4, M4A): a `ftyp` box first, whose major brand is one of `brands`. */
const isoMedia = (brands: readonly string[]) => (head: Buffer) =>
  startsWith(head, 'ftyp', 4) && brands.includes(head.subarray(8, 12).toString('latin1'));

/** An MPEG audio frame header: 11 sync bits, a valid version, layer and bitrate. */
const mpegAudioFrame = (head: Buffer) =>
  head.length >= 3 &&
  head[0] === 0xff &&
  ((head[1] as number) & 0xe0) === 0xe0 &&
  ((head[1] as number) & 0x18) !== 0x08 &&
  ((head[1] as number) & 0x06) !== 0x00 &&
  ((head[2] as number) & 0xf0) !== 0xf0;

/**
 * The types a module's files may be, by signature. Not SVG (script inside an image, served from the
 * API's origin: refused outright), not ZIP or HTML (H5P packages have their own route); GIF and WebP
 * are refused too, because their metadata is not stripped here (convert them to PNG or JPEG).
 */
export const CONTENT_TYPES: readonly ContentType[] = [
  {
    kind: 'pdf',
    contentType: 'application/pdf',
    extensions: ['pdf'],
    maxBytes: 25 * MB,
    matches: (head) => startsWith(head, '%PDF-'),
  },
  {
    kind: 'image',
    contentType: 'image/png',
    extensions: ['png'],
    maxBytes: 10 * MB,
    matches: (head) => startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  },
  {
    kind: 'image',
    contentType: 'image/jpeg',
    extensions: ['jpg', 'jpeg'],
    maxBytes: 10 * MB,
    matches: (head) => startsWith(head, [0xff, 0xd8, 0xff]),
  },
  {
    kind: 'audio',
    contentType: 'audio/mpeg',
    extensions: ['mp3'],
    maxBytes: 50 * MB,
    matches: (head) => startsWith(head, 'ID3') || mpegAudioFrame(head),
  },
  {
    kind: 'audio',
    contentType: 'audio/mp4',
    extensions: ['m4a'],
    maxBytes: 50 * MB,
    matches: isoMedia(['M4A ', 'M4B ']),
  },
  {
    kind: 'audio',
    contentType: 'audio/ogg',
    extensions: ['ogg', 'oga'],
    maxBytes: 50 * MB,
    matches: (head) => startsWith(head, 'OggS'),
  },
  {
    kind: 'audio',
    contentType: 'audio/wav',
    extensions: ['wav'],
    maxBytes: 50 * MB,
    matches: (head) => startsWith(head, 'RIFF') && startsWith(head, 'WAVE', 8),
  },
  {
    kind: 'video',
    contentType: 'video/mp4',
    extensions: ['mp4', 'm4v'],
    maxBytes: 200 * MB,
    matches: isoMedia(['isom', 'iso2', 'iso4', 'iso5', 'iso6', 'mp41', 'mp42', 'avc1', 'M4V ', 'dash']),
  },
  {
    kind: 'video',
    contentType: 'video/webm',
    extensions: ['webm'],
    maxBytes: 200 * MB,
    matches: (head) => startsWith(head, [0x1a, 0x45, 0xdf, 0xa3]),
  },
];

/** The largest file any type allows: the upload route's body limit. */
export const MAX_CONTENT_FILE_BYTES = Math.max(...CONTENT_TYPES.map((type) => type.maxBytes));
/** How many first bytes decide the type (the longest signature reads 12). */
const HEAD_BYTES = 64;

/** A file name within a module: one segment, letters, digits, spaces and `._()-`, with an extension. */
export const CONTENT_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,115}\.[A-Za-z0-9]{1,5}$/;

const unsupported = (detail: string, field = 'body') =>
  new HttpError({
    status: 415,
    slug: 'unsupported-file-type',
    title: 'This kind of file is not accepted',
    detail,
    errors: [{ field, message: detail }],
  });

/** What the bytes say they are, when it is something else we know to refuse by name. */
function refusedKind(head: Buffer): string | null {
  const text = head
    .toString('latin1')
    .replace(/^\uFEFF/, '')
    .trimStart()
    .toLowerCase();
  if (text.startsWith('<svg') || (text.startsWith('<?xml') && text.includes('<svg'))) {
    return 'SVG images are not accepted (they can carry script): upload a PNG or JPEG';
  }
  if (text.startsWith('<')) return 'HTML and XML are not accepted';
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]))
    return 'ZIP archives are not accepted here (H5P packages have their own route)';
  if (startsWith(head, 'GIF8') || (startsWith(head, 'RIFF') && startsWith(head, 'WEBP', 8))) {
    return 'GIF and WebP images are not accepted: upload a PNG or JPEG';
  }
  return null;
}

/**
 * The type of a file from its first bytes, checked against its name's extension and the declared
 * Content-Type (`application/octet-stream` or none declares nothing). A refusal is a 415 naming why.
 */
export function typeOf(head: Buffer, name: string, declared: string | null): ContentType {
  const refused = refusedKind(head);
  if (refused) throw unsupported(refused);
  const type = CONTENT_TYPES.find((candidate) => candidate.matches(head));
  if (!type) {
    throw unsupported('Not a PDF, PNG, JPEG, MP3, M4A, OGG, WAV, MP4 or WebM file (judged by its content)');
  }
  const extension = name.slice(name.lastIndexOf('.') + 1).toLowerCase();
  if (!type.extensions.includes(extension)) {
    throw unsupported(
      `The file is ${type.contentType} but its name ends in .${extension}; name it .${type.extensions[0]}`,
      'params.name',
    );
  }
  const declaredType = declared?.split(';')[0]?.trim().toLowerCase();
  if (declaredType && declaredType !== 'application/octet-stream' && declaredType !== type.contentType) {
    throw unsupported(`The file is ${type.contentType}, not ${declaredType} as declared`, 'headers.content-type');
  }
  return type;
}

// ---------------------------------------------------------------------------------------------------
// Reading an upload: the first bytes, then the rest, bounded
// ---------------------------------------------------------------------------------------------------

/** Reads the first `HEAD_BYTES` (fewer when the body is shorter) and gives back a stream of the whole body. */
export async function peek(body: AsyncIterable<Uint8Array>): Promise<{ head: Buffer; whole: Readable }> {
  const iterator = body[Symbol.asyncIterator]();
  const first: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < HEAD_BYTES) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    first.push(Buffer.from(next.value));
    size += next.value.byteLength;
  }
  const head = Buffer.concat(first);
  async function* rest() {
    yield head;
    if (done) return;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield Buffer.from(next.value);
  }
  return { head: head.subarray(0, HEAD_BYTES), whole: Readable.from(rest()) };
}

/** The whole body in memory, refusing more than `maxBytes` (images only: 10 MB at most). */
async function readBounded(stream: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw payloadTooLarge(maxBytes);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------------
// Image metadata: EXIF (camera, GPS position, time), XMP, comments and text chunks are dropped
// ---------------------------------------------------------------------------------------------------

const invalidImage = (detail: string) => unsupported(`Not a valid image: ${detail}`);

/** PNG chunks kept: those needed to show the picture as drawn (colour, transparency, animation). */
const PNG_KEPT = new Set([
  ...['IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS', 'gAMA', 'cHRM', 'sRGB', 'iCCP', 'sBIT', 'pHYs', 'bKGD'],
  ...['acTL', 'fcTL', 'fdAT'],
]);

/** A PNG without its text, time, EXIF and private chunks (tEXt, zTXt, iTXt, tIME, eXIf, …). */
export function stripPng(png: Buffer): Buffer {
  const kept: Buffer[] = [png.subarray(0, 8)];
  let offset = 8;
  let ended = false;
  while (offset < png.length && !ended) {
    if (offset + 12 > png.length) throw invalidImage('a PNG chunk is cut short');
    const length = png.readUInt32BE(offset);
    const type = png.subarray(offset + 4, offset + 8).toString('latin1');
    const end = offset + 12 + length;
    if (end > png.length) throw invalidImage('a PNG chunk is cut short');
    if (PNG_KEPT.has(type)) kept.push(png.subarray(offset, end));
    ended = type === 'IEND';
    offset = end;
  }
  if (!ended) throw invalidImage('the PNG has no end');
  return Buffer.concat(kept);
}

/** JPEG segments kept before the image data: JFIF (APP0), the ICC colour profile (APP2), Adobe (APP14). */
function keepJpegSegment(marker: number, data: Buffer): boolean {
  if (marker === 0xfe) return false; // COM: a comment
  if (marker < 0xe0 || marker > 0xef) return true; // tables, frame headers: the picture itself
  if (marker === 0xe0 || marker === 0xee) return true;
  return marker === 0xe2 && data.subarray(0, 12).toString('latin1') === 'ICC_PROFILE\0';
}

/** A JPEG without EXIF, XMP (APP1), maker notes and other application segments, or comments. */
export function stripJpeg(jpeg: Buffer): Buffer {
  const kept: Buffer[] = [jpeg.subarray(0, 2)];
  let offset = 2;
  for (;;) {
    if (offset + 4 > jpeg.length || jpeg[offset] !== 0xff) throw invalidImage('a JPEG segment is malformed');
    const marker = jpeg[offset + 1] as number;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    const length = jpeg.readUInt16BE(offset + 2);
    const end = offset + 2 + length;
    if (length < 2 || end > jpeg.length) throw invalidImage('a JPEG segment is cut short');
    // Start of scan: the compressed picture follows, to the end of the file, kept as it is.
    if (marker === 0xda) {
      kept.push(jpeg.subarray(offset));
      return Buffer.concat(kept);
    }
    if (keepJpegSegment(marker, jpeg.subarray(offset + 4, end))) kept.push(jpeg.subarray(offset, end));
    offset = end;
  }
}

const STRIPPERS: Record<string, (image: Buffer) => Buffer> = { 'image/png': stripPng, 'image/jpeg': stripJpeg };

// ---------------------------------------------------------------------------------------------------
// Storing and finding
// ---------------------------------------------------------------------------------------------------

export interface ContentFileRow {
  id: string;
  module_id: string;
  name: string;
  kind: ContentKind;
  content_type: string;
  byte_size: string;
  sha256: Buffer;
  stored_file_id: string;
  uploaded_by: string;
  uploaded_at: Date;
}

const fileColumns = (sql: AnySql) => sql`
  cf.id, cf.module_id, cf.name, cf.kind, sf.content_type, sf.byte_size, sf.sha256, cf.stored_file_id,
  cf.uploaded_by, cf.uploaded_at`;

/**
 * Stores an upload as the module's file `name`, replacing the current one of that name (retired in the
 * same transaction). The type is decided by the first bytes; images are stripped of metadata first.
 */
export async function storeContentFile(
  sql: AnySql,
  upload: { moduleId: string; name: string; declaredType: string | null; body: AsyncIterable<Uint8Array> },
  uploaderId: string,
): Promise<{ row: ContentFileRow; replaced: boolean }> {
  const { head, whole } = await peek(upload.body);
  if (head.length === 0) throw badRequest('The file is empty', [{ field: 'body', message: 'The file is empty' }]);
  const type = typeOf(head, upload.name, upload.declaredType);
  const strip = STRIPPERS[type.contentType];
  const source = strip ? strip(await readBounded(whole, type.maxBytes)) : whole;
  const stored = await storeFile(sql, {
    purpose: 'content-file',
    shelf: 'files',
    contentType: type.contentType,
    maxBytes: type.maxBytes,
    source,
    createdBy: uploaderId,
  });
  const retired = await sql`
    update content_files set retired_at = now(), retired_by = ${uploaderId}
     where module_id = ${upload.moduleId} and name = ${upload.name} and retired_at is null`;
  const [row] = await sql<ContentFileRow[]>`
    with inserted as (
      insert into content_files (module_id, name, kind, stored_file_id, uploaded_by)
      values (${upload.moduleId}, ${upload.name}, ${type.kind}, ${stored.id}, ${uploaderId})
      returning *)
    select ${fileColumns(sql)} from inserted cf join stored_files sf on sf.id = cf.stored_file_id`;
  return { row: row as ContentFileRow, replaced: retired.count > 0 };
}

/** The module's current file of that name. */
export async function findContentFile(sql: AnySql, moduleId: string, name: string): Promise<ContentFileRow | null> {
  const [row] = await sql<ContentFileRow[]>`
    select ${fileColumns(sql)} from content_files cf join stored_files sf on sf.id = cf.stored_file_id
     where cf.module_id = ${moduleId} and cf.name = ${name} and cf.retired_at is null`;
  return row ?? null;
}

/** The module's current files, by name (a module holds tens of them: no paging). */
export async function listContentFiles(sql: AnySql, moduleId: string): Promise<ContentFileRow[]> {
  return sql<ContentFileRow[]>`
    select ${fileColumns(sql)} from content_files cf join stored_files sf on sf.id = cf.stored_file_id
     where cf.module_id = ${moduleId} and cf.retired_at is null
     order by cf.name limit 1000`;
}

/** Retires the module's current file of that name; false when there is none. */
export async function retireContentFile(sql: AnySql, moduleId: string, name: string, by: string): Promise<boolean> {
  const retired = await sql`
    update content_files set retired_at = now(), retired_by = ${by}
     where module_id = ${moduleId} and name = ${name} and retired_at is null`;
  return retired.count > 0;
}

export const toContentFileView = (row: ContentFileRow) => ({
  name: row.name,
  kind: row.kind,
  contentType: row.content_type,
  byteSize: Number(row.byte_size),
  sha256: row.sha256.toString('hex'),
  uploadedBy: row.uploaded_by,
  uploadedAt: row.uploaded_at.toISOString(),
  href: `/api/modules/${row.module_id}/files/${encodeURIComponent(row.name)}`,
});

// ---------------------------------------------------------------------------------------------------
// Byte ranges (RFC 9110 §14): one range per request
// ---------------------------------------------------------------------------------------------------

export type RangeRequest = { kind: 'whole' } | { kind: 'part'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * What a `Range` header asks of a file of `size` bytes. Anything but one `bytes=` range (several
 * ranges, another unit, a malformed value) is ignored and the whole file served, as RFC 9110 allows;
 * a range starting past the end is unsatisfiable (416).
 */
export function rangeOf(header: string | null, size: number): RangeRequest {
  const match = header === null ? null : /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return { kind: 'whole' };
  const [first, last] = [match[1] as string, match[2] as string];
  if (first === '') {
    // The last N bytes.
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'part', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size) return { kind: 'unsatisfiable' };
  if (end < start) return { kind: 'whole' };
  return { kind: 'part', start, end };
}
