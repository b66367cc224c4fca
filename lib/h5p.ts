// H5P activities of a module: a .h5p package (a ZIP) validated and unpacked once, at upload, into the
// files store (lib/files.ts: each file of the package encrypted, a stored_files row), never on a request;
// the module's current activity of each key (the id lessons name in `(H5P: id)`); and short-lived signed
// addresses for its files, so a sandboxed frame (an opaque origin, which sends no cookie) can load them.
//
// Validation happens on the ZIP's central directory and its JSON before a single file is stored, so a
// refused package stores nothing: at most MAX_ENTRIES entries and MAX_UNPACKED_BYTES unpacked (sizes as
// the directory declares them; yauzl fails an entry that inflates past its declared size, so a zip bomb
// cannot lie), no absolute path, `..`, backslash or control character, no symlink, no encrypted entry,
// only the three places H5P puts files (h5p.json, content/, a library folder `Name-1.2/`), extensions from
// an allowlist (scripts and styles only inside library folders; archives, executables, HTML and SVG
// nowhere), an h5p.json that parses with a title and a main library the package carries, and
// content/content.json and every library.json parsing. The package is spooled to a temporary file
// (the ZIP directory is at its end) and never held whole in memory.
//
// Why one file over 350 lines: its four sections (the package check, storing and finding, lesson embeds,
// signed asset addresses) serve one record, an activity and its files. The package check is the bulk and
// must be read whole: its rules together are what stands between an upload and the files store.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { config } from './config';
import type { AnySql } from './db';
import { HttpError, payloadTooLarge } from './errors';
import { storeFile } from './files';

const MB = 1024 * 1024;
/** The largest package accepted (the upload route's body limit). */
export const MAX_PACKAGE_BYTES = 100 * MB;
/** Entries (files and folders) a package may hold: a large interactive video carries some 600. */
export const MAX_ENTRIES = 2_000;
/** The package unpacked, all files together, as its directory declares them. */
export const MAX_UNPACKED_BYTES = 250 * MB;
/** One file unpacked (a video inside an interactive video). */
const MAX_ENTRY_BYTES = 100 * MB;
/** h5p.json, content.json, a library.json: read into memory to parse. */
const MAX_JSON_BYTES = 1 * MB;

/** The id of an activity within its module: what a lesson's `(H5P: id)` marker names. */
export const ACTIVITY_KEY = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** A library folder at the top of a package: `H5P.MultiChoice-1.16`. */
const LIBRARY_FOLDER = /^[A-Za-z0-9_.]{1,100}-\d{1,5}\.\d{1,5}$/;

/** Extensions of files served as they are, with their type (H5P's own allowlist, less what can run as a page). */
const MEDIA_TYPES: Record<string, string> = {
  json: 'application/json',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  bmp: 'image/bmp',
  mp4: 'video/mp4',
  webm: 'video/webm',
  ogg: 'audio/ogg',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  wav: 'audio/wav',
  vtt: 'text/vtt',
  webvtt: 'text/vtt',
  txt: 'text/plain; charset=utf-8',
  md: 'text/plain; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  pdf: 'application/pdf',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  eot: 'application/vnd.ms-fontobject',
};
/** Only inside a library folder: the player's own code. */
const LIBRARY_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
/** Named in the refusal, so an author knows why: nothing here is ever stored. */
const ARCHIVES_AND_EXECUTABLES = new Set(
  'zip h5p jar war rar 7z gz tgz bz2 xz tar exe dll so dylib com bat cmd ps1 sh bash php phtml phar py pl rb cgi asp aspx jsp msi apk wasm'.split(
    ' ',
  ),
);
const PAGES = new Set(['html', 'htm', 'xhtml', 'shtml', 'svg', 'svgz', 'xml', 'xsl', 'swf']);

export const invalidPackage = (detail: string, status = 400) =>
  new HttpError({
    status,
    slug: status === 415 ? 'unsupported-file-type' : 'invalid-h5p-package',
    title: 'This H5P package is not accepted',
    detail,
    errors: [{ field: 'body', message: detail }],
  });

// ---------------------------------------------------------------------------------------------------
// Spooling the upload
// ---------------------------------------------------------------------------------------------------

/** Writes the body to a temporary file, refusing more than MAX_PACKAGE_BYTES and anything not a ZIP. */
async function spool(body: AsyncIterable<Uint8Array>): Promise<{ path: string; size: number }> {
  const path = join(tmpdir(), `aada-h5p-${randomUUID()}.zip`);
  let size = 0;
  let head = Buffer.alloc(0);
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > MAX_PACKAGE_BYTES) return callback(payloadTooLarge(MAX_PACKAGE_BYTES));
      if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4)]);
      if (head.length >= 4 && !head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) {
        return callback(invalidPackage('Not a ZIP archive: an .h5p package is a ZIP (judged by its first bytes)', 415));
      }
      callback(null, chunk);
    },
  });
  try {
    await pipeline(Readable.from(body), bounded, createWriteStream(path, { mode: 0o600 }));
  } catch (error) {
    await unlink(path).catch(() => undefined);
    throw error;
  }
  if (size < 4) {
    await unlink(path).catch(() => undefined);
    throw invalidPackage('Not a ZIP archive: an .h5p package is a ZIP (judged by its first bytes)', 415);
  }
  return { path, size };
}

// ---------------------------------------------------------------------------------------------------
// The ZIP directory
// ---------------------------------------------------------------------------------------------------

const openZip = (path: string) =>
  new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false, strictFileNames: true }, (error, zip) =>
      error ? reject(zipProblem(error)) : resolve(zip as yauzl.ZipFile),
    ),
  );

/** yauzl's refusals, in words an author can act on. */
function zipProblem(error: Error): HttpError {
  const message = error.message;
  if (/^absolute path/.test(message))
    return invalidPackage(`A file in the package has an absolute path (${quote(message)})`);
  if (/^invalid relative path/.test(message)) {
    return invalidPackage(`A file in the package has a path leaving the package (${quote(message)})`);
  }
  if (/^invalid characters in fileName/.test(message)) {
    return invalidPackage(
      `A file name in the package holds a backslash or another invalid character (${quote(message)})`,
    );
  }
  return invalidPackage('Not a readable ZIP archive: it is truncated or corrupt');
}
const quote = (message: string) =>
  JSON.stringify(
    message
      .slice(message.indexOf(':') + 1)
      .trim()
      .slice(0, 120),
  );

/** Every entry of the directory, read without inflating anything. */
function readDirectory(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  if (zip.entryCount > MAX_ENTRIES) {
    return Promise.reject(invalidPackage(`The package holds ${zip.entryCount} entries; at most ${MAX_ENTRIES}`));
  }
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.on('end', () => resolve(entries));
    zip.on('error', (error: Error) => reject(zipProblem(error)));
    zip.readEntry();
  });
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const isSymlink = (entry: yauzl.Entry) => ((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK;
const extensionOf = (path: string) => {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.includes('.') ? name.slice(name.lastIndexOf('.') + 1).toLowerCase() : '';
};

/** The type a package file is served with, or a refusal naming the file. */
function typeOfEntry(path: string): string {
  const top = path.split('/')[0] as string;
  const inLibrary = path.includes('/') && LIBRARY_FOLDER.test(top);
  if (path !== 'h5p.json' && !path.startsWith('content/') && !inLibrary) {
    throw invalidPackage(`${path}: an H5P package holds only h5p.json, content/ and library folders (Name-1.2/)`);
  }
  const extension = extensionOf(path);
  if (ARCHIVES_AND_EXECUTABLES.has(extension)) {
    throw invalidPackage(`${path}: archives and executables are not accepted inside a package`);
  }
  if (PAGES.has(extension)) throw invalidPackage(`${path}: HTML, XML, SVG and Flash files are not accepted`);
  const type = MEDIA_TYPES[extension] ?? (inLibrary ? LIBRARY_TYPES[extension] : undefined);
  if (!type) {
    throw invalidPackage(
      LIBRARY_TYPES[extension]
        ? `${path}: scripts and styles are accepted only inside a library folder`
        : `${path}: files ending in .${extension || '(nothing)'} are not accepted`,
    );
  }
  return type;
}

export interface PackageFile {
  path: string;
  contentType: string;
  entry: yauzl.Entry;
}

/** The files of a package, checked one by one and as a whole (count, sizes, duplicates). */
export function checkEntries(entries: readonly yauzl.Entry[]): PackageFile[] {
  const files: PackageFile[] = [];
  const seen = new Set<string>();
  let unpacked = 0;
  for (const entry of entries) {
    const path = entry.fileName;
    if (isSymlink(entry)) throw invalidPackage(`${path}: symbolic links are not accepted`);
    if (entry.isEncrypted()) throw invalidPackage(`${path}: encrypted entries are not accepted`);
    if (/[\p{Cc}\p{Cf}]/u.test(path) || path.length > 255)
      throw invalidPackage(`A file name in the package is not acceptable`);
    if (path.endsWith('/')) continue; // a folder: nothing to store
    if (seen.has(path.toLowerCase())) throw invalidPackage(`${path}: appears twice in the package`);
    seen.add(path.toLowerCase());
    if (entry.uncompressedSize > MAX_ENTRY_BYTES) {
      throw invalidPackage(
        `${path}: unpacks to ${entry.uncompressedSize} bytes; one file may be at most ${MAX_ENTRY_BYTES}`,
        413,
      );
    }
    unpacked += entry.uncompressedSize;
    if (unpacked > MAX_UNPACKED_BYTES) {
      throw invalidPackage(
        `The package unpacks to more than ${MAX_UNPACKED_BYTES} bytes (a zip bomb or too large)`,
        413,
      );
    }
    files.push({ path, contentType: typeOfEntry(path), entry });
  }
  return files;
}

const openEntry = (zip: yauzl.ZipFile, entry: yauzl.Entry) =>
  new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(entry, (error, stream) => (error ? reject(zipProblem(error)) : resolve(stream as Readable))),
  );

async function readJson(zip: yauzl.ZipFile, file: PackageFile): Promise<unknown> {
  if (file.entry.uncompressedSize > MAX_JSON_BYTES)
    throw invalidPackage(`${file.path}: larger than ${MAX_JSON_BYTES} bytes`);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of await openEntry(zip, file.entry)) chunks.push(chunk as Buffer);
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw invalidPackage(`${file.path}: cannot be unpacked (the archive is corrupt)`);
  }
  try {
    return JSON.parse(
      Buffer.concat(chunks)
        .toString('utf8')
        .replace(/^\uFEFF/, ''),
    );
  } catch {
    throw invalidPackage(`${file.path}: not valid JSON`);
  }
}

export interface H5pManifest {
  title: string;
  mainLibrary: string;
  json: Record<string, unknown>;
}

interface Dependency {
  machineName: string;
  majorVersion: number;
  minorVersion: number;
}
const isDependency = (value: unknown): value is Dependency =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Dependency).machineName === 'string' &&
  Number.isInteger((value as Dependency).majorVersion) &&
  Number.isInteger((value as Dependency).minorVersion);

/** h5p.json: a title, a main library among its dependencies, and that library in the package. */
async function readManifest(zip: yauzl.ZipFile, files: readonly PackageFile[]): Promise<H5pManifest> {
  const byPath = new Map(files.map((file) => [file.path, file]));
  const manifestFile = byPath.get('h5p.json');
  if (!manifestFile) throw invalidPackage('The package has no h5p.json at its top: not an H5P package');
  const json = await readJson(zip, manifestFile);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalidPackage('h5p.json: not an object');
  const manifest = json as Record<string, unknown>;
  const title = manifest.title;
  if (typeof title !== 'string' || title.trim() === '' || title.length > 255 || /\p{Cc}/u.test(title)) {
    throw invalidPackage('h5p.json: "title" must be a text of 1 to 255 characters');
  }
  const dependencies = manifest.preloadedDependencies;
  if (!Array.isArray(dependencies) || !dependencies.every(isDependency)) {
    throw invalidPackage(
      'h5p.json: "preloadedDependencies" must list libraries (machineName, majorVersion, minorVersion)',
    );
  }
  const main = dependencies.find((dependency) => dependency.machineName === manifest.mainLibrary);
  if (!main) throw invalidPackage('h5p.json: "mainLibrary" must be one of its preloadedDependencies');
  const folder = `${main.machineName}-${main.majorVersion}.${main.minorVersion}`;
  if (!byPath.has(`${folder}/library.json`)) {
    throw invalidPackage(`The package does not carry its main library (${folder}/library.json)`);
  }
  const content = byPath.get('content/content.json');
  if (!content) throw invalidPackage('The package has no content/content.json');
  await readJson(zip, content);
  for (const library of files.filter((file) => /^[^/]+\/library\.json$/.test(file.path))) {
    const parsed = await readJson(zip, library);
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as Dependency).machineName !== 'string') {
      throw invalidPackage(`${library.path}: has no machineName`);
    }
  }
  return { title: title.trim(), mainLibrary: main.machineName, json: manifest };
}

// ---------------------------------------------------------------------------------------------------
// Storing and finding
// ---------------------------------------------------------------------------------------------------

/**
 * Inflates every file once, keeping nothing, before any is stored: an entry that inflates past its
 * declared size (a zip bomb lying in its directory) or is corrupt is refused while nothing is stored.
 */
async function inflateAll(zip: yauzl.ZipFile, files: readonly PackageFile[]): Promise<void> {
  for (const file of files) {
    try {
      let size = 0;
      for await (const chunk of await openEntry(zip, file.entry)) size += (chunk as Buffer).length;
      if (size !== file.entry.uncompressedSize) throw new Error('size');
    } catch {
      throw invalidPackage(
        `${file.path}: does not unpack to the size its directory declares, or is corrupt (refused as a possible zip bomb)`,
      );
    }
  }
}

export interface H5pActivityRow {
  id: string;
  module_id: string;
  activity_key: string;
  title: string;
  main_library: string;
  h5p_json: Record<string, unknown>;
  file_count: number;
  byte_size: string;
  uploaded_by: string;
  uploaded_at: Date;
}

/**
 * Validates a package and stores it as the module's activity `activityKey`, replacing the current one of
 * that key (retired in the same transaction). Nothing is stored unless the whole directory and the JSON
 * files pass; the files are then unpacked one at a time into the files store.
 */
export async function storeH5pActivity(
  sql: AnySql,
  upload: { moduleId: string; activityKey: string; body: AsyncIterable<Uint8Array> },
  uploaderId: string,
): Promise<{ row: H5pActivityRow; replaced: boolean }> {
  const spooled = await spool(upload.body);
  let zip: yauzl.ZipFile | undefined;
  try {
    zip = await openZip(spooled.path);
    const files = checkEntries(await readDirectory(zip));
    const manifest = await readManifest(zip, files);
    await inflateAll(zip, files);
    const stored: { path: string; storedFileId: string; size: number }[] = [];
    for (const file of files) {
      const source = await openEntry(zip, file.entry);
      const saved = await storeFile(sql, {
        purpose: 'h5p-file',
        shelf: 'files',
        contentType: file.contentType,
        maxBytes: file.entry.uncompressedSize,
        source,
        createdBy: uploaderId,
      }).catch(() => {
        throw invalidPackage(`${file.path}: cannot be unpacked (the archive changed or is corrupt)`);
      });
      stored.push({ path: file.path, storedFileId: saved.id, size: saved.byteSize });
    }
    return await insertActivity(sql, upload, manifest, stored, uploaderId);
  } finally {
    zip?.close();
    await unlink(spooled.path).catch(() => undefined);
  }
}

async function insertActivity(
  sql: AnySql,
  upload: { moduleId: string; activityKey: string },
  manifest: H5pManifest,
  stored: readonly { path: string; storedFileId: string; size: number }[],
  uploaderId: string,
): Promise<{ row: H5pActivityRow; replaced: boolean }> {
  const retired = await sql`
    update h5p_activities set retired_at = now(), retired_by = ${uploaderId}
     where module_id = ${upload.moduleId} and activity_key = ${upload.activityKey} and retired_at is null`;
  const byteSize = stored.reduce((sum, file) => sum + file.size, 0);
  const [row] = await sql<H5pActivityRow[]>`
    insert into h5p_activities (module_id, activity_key, title, main_library, h5p_json, file_count, byte_size, uploaded_by)
    values (${upload.moduleId}, ${upload.activityKey}, ${manifest.title}, ${manifest.mainLibrary},
            ${sql.json(manifest.json as never)}, ${stored.length}, ${byteSize}, ${uploaderId})
    returning *`;
  const activity = row as H5pActivityRow;
  await sql`
    insert into h5p_activity_files (activity_id, path, stored_file_id)
    select ${activity.id}, path, stored_file_id
      from unnest(${stored.map((file) => file.path)}::text[], ${stored.map((file) => file.storedFileId)}::uuid[])
           as files(path, stored_file_id)`;
  return { row: activity, replaced: retired.count > 0 };
}

/** The module's current activity of that key. */
export async function findH5pActivity(sql: AnySql, moduleId: string, key: string): Promise<H5pActivityRow | null> {
  const [row] = await sql<H5pActivityRow[]>`
    select * from h5p_activities where module_id = ${moduleId} and activity_key = ${key} and retired_at is null`;
  return row ?? null;
}

/** The module's current activities of these keys (those a lesson names), by key: one query. */
export async function findH5pActivitiesByKey(
  sql: AnySql,
  moduleId: string,
  keys: readonly string[],
): Promise<Map<string, H5pActivityRow>> {
  if (keys.length === 0) return new Map();
  const rows = await sql<H5pActivityRow[]>`
    select * from h5p_activities
     where module_id = ${moduleId} and activity_key = any(${keys as string[]}::text[]) and retired_at is null`;
  return new Map(rows.map((row) => [row.activity_key, row]));
}

/** The module's current activities, by key (a module holds a handful: no paging). */
export function listH5pActivities(sql: AnySql, moduleId: string): Promise<H5pActivityRow[]> {
  return sql<H5pActivityRow[]>`
    select * from h5p_activities where module_id = ${moduleId} and retired_at is null
     order by activity_key limit 1000`;
}

/** Retires the module's current activity of that key; false when there is none. */
export async function retireH5pActivity(sql: AnySql, moduleId: string, key: string, by: string): Promise<boolean> {
  const retired = await sql`
    update h5p_activities set retired_at = now(), retired_by = ${by}
     where module_id = ${moduleId} and activity_key = ${key} and retired_at is null`;
  return retired.count > 0;
}

/** A current activity by its id (the player page's; a retired one is gone). */
export async function findCurrentH5pActivity(sql: AnySql, activityId: string): Promise<H5pActivityRow | null> {
  const [row] = await sql<H5pActivityRow[]>`
    select * from h5p_activities where id = ${activityId} and retired_at is null`;
  return row ?? null;
}

/** A file of a current activity (a retired activity's addresses stop working at once). */
export async function findH5pFile(
  sql: AnySql,
  activityId: string,
  path: string,
): Promise<{ stored_file_id: string; content_type: string; byte_size: string; sha256: Buffer } | null> {
  const [row] = await sql<{ stored_file_id: string; content_type: string; byte_size: string; sha256: Buffer }[]>`
    select f.stored_file_id, sf.content_type, sf.byte_size, sf.sha256
      from h5p_activity_files f
      join h5p_activities a on a.id = f.activity_id and a.retired_at is null
      join stored_files sf on sf.id = f.stored_file_id
     where f.activity_id = ${activityId} and f.path = ${path}`;
  return row ?? null;
}

export const toH5pActivityView = (row: H5pActivityRow) => ({
  activityKey: row.activity_key,
  title: row.title,
  mainLibrary: row.main_library,
  fileCount: row.file_count,
  byteSize: Number(row.byte_size),
  uploadedBy: row.uploaded_by,
  uploadedAt: row.uploaded_at.toISOString(),
  href: `/api/modules/${row.module_id}/h5p/${row.activity_key}`,
});

// ---------------------------------------------------------------------------------------------------
// Embeds in a lesson
// ---------------------------------------------------------------------------------------------------

const escapeHtml = (text: string) =>
  text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');

/** How a lesson lists an activity it names: the module's current one of that key, or none. */
export type LessonActivity =
  | { activityKey: string; available: true; title: string; href: string; player: string }
  | { activityKey: string; available: false };

/** `readerId`: who reads the lesson; the player address is theirs (it saves their state in the activity). */
export function toLessonActivity(key: string, row: H5pActivityRow | undefined, readerId: string): LessonActivity {
  if (!row) return { activityKey: key, available: false };
  return {
    activityKey: key,
    available: true,
    title: row.title,
    href: toH5pActivityView(row).href,
    player: playerAddress(row.id, readerId),
  };
}

/**
 * What a lesson shows in place of `(H5P: key)`: the activity, or, when the module has no current activity
 * of that key (never uploaded, retired, a typo), a note saying so, so the page reads on. `key` is matched
 * by the placeholder's pattern and escaped anyway; the title is the package's and escaped.
 */
export function lessonEmbedHtml(activity: LessonActivity, inline: boolean): string {
  const tag = inline ? 'span' : 'div';
  const key = escapeHtml(activity.activityKey);
  if (!activity.available) {
    return `<${tag} class="h5p-embed h5p-unavailable" data-h5p-activity="${key}">The activity “${key}” is not available.</${tag}>`;
  }
  const title = escapeHtml(activity.title);
  // The player page in a sandboxed frame: scripts, but an opaque origin (no allow-same-origin).
  const frame = `<iframe class="h5p-player" src="${escapeHtml(activity.player)}" title="${title}" sandbox="allow-scripts" referrerpolicy="no-referrer" loading="lazy" width="100%" height="480"></iframe>`;
  return `<${tag} class="h5p-embed" data-h5p-activity="${key}" data-h5p-title="${title}" data-h5p-href="${escapeHtml(activity.href)}">${frame}</${tag}>`;
}

// ---------------------------------------------------------------------------------------------------
// Signed asset addresses
// ---------------------------------------------------------------------------------------------------

/** Development and tests only; production has no fallback. */
const DEMO_ASSET_KEY = 'ZGVtby1vbmx5LWg1cC1hc3NldC1rZXktZG8tbm90LXVzZQ==';

/** The key that signs asset addresses; none configured (production without H5P_ASSET_KEY): none issued or honoured. */
function signingKey(): Buffer | null {
  const { H5P_ASSET_KEY, APP_ENV } = config();
  const key = H5P_ASSET_KEY ?? (APP_ENV === 'production' ? undefined : DEMO_ASSET_KEY);
  return key ? Buffer.from(key, 'base64') : null;
}

export const assetsUnavailable = () =>
  new HttpError({
    status: 503,
    slug: 'h5p-assets-unavailable',
    title: 'H5P activities are not available',
    detail: 'No key for signing H5P asset addresses is configured (H5P_ASSET_KEY)',
  });

const signature = (key: Buffer, activityId: string, expires: number) =>
  createHmac('sha256', key).update(`h5p-assets\n${activityId}\n${expires}`).digest('base64url');

/** A player grant's signature: its own purpose, so an asset grant is never one, and the reader's id. */
const readerSignature = (key: Buffer, activityId: string, readerId: string, expires: number) =>
  createHmac('sha256', key).update(`h5p-player\n${activityId}\n${readerId}\n${expires}`).digest('base64url');

/**
 * A grant for every file of one activity until `expires` (seconds since 1970): `<expires>.<HMAC>`,
 * the HMAC over the activity's id and the expiry. The player composes file paths itself (the libraries'
 * scripts, content/images/…), so the grant covers the activity's folder, not one file.
 */
export function assetBase(activityId: string, now = Date.now()): { base: string; expiresAt: Date } {
  const { grant, expires } = grantFor(activityId, now);
  return { base: `/api/h5p-assets/${activityId}/${grant}/`, expiresAt: new Date(expires * 1000) };
}

/** The asset grant alone (`<expires>.<HMAC>`), for the player page, which composes the base on its own path. */
export const assetGrant = (activityId: string, now = Date.now()): string => grantFor(activityId, now).grant;

/**
 * Grants expire on a multiple of this many seconds (and at least H5P_ASSET_URL_SECONDS from now): every
 * grant of an activity issued within the same few minutes is the same, so a lesson embedding it keeps its
 * ETag (a 304 on revalidation) until the next step.
 */
const GRANT_STEP_SECONDS = 300;

function grantFor(activityId: string, now: number): { grant: string; expires: number } {
  const key = signingKey();
  if (!key) throw assetsUnavailable();
  const expires = expiryOf(now);
  return { grant: `${expires}.${signature(key, activityId, expires)}`, expires };
}

function expiryOf(now: number): number {
  const earliest = Math.floor(now / 1000) + config().H5P_ASSET_URL_SECONDS;
  return Math.ceil(earliest / GRANT_STEP_SECONDS) * GRANT_STEP_SECONDS;
}

/**
 * The player page of an activity (lib/h5p-player.ts) for one reader: `<expires>.<reader id>.<HMAC>`, the
 * HMAC over the activity, the reader and the expiry. The page serves the activity's files under an asset
 * grant of its own, and saves and reads back the reader's state in the activity (lib/h5p-state.ts)
 * under this one: whoever holds the address acts as that reader in that activity, and in nothing else.
 */
export function playerAddress(activityId: string, readerId: string, now = Date.now()): string {
  const key = signingKey();
  if (!key) throw assetsUnavailable();
  const expires = expiryOf(now);
  return `/api/h5p-player/${activityId}/${expires}.${readerId}.${readerSignature(key, activityId, readerId, expires)}`;
}

/** The longest player grant: the expiry (at most 12 digits), a uuid and the HMAC, with their dots. */
export const PLAYER_GRANT_MAX = 12 + 1 + 36 + 1 + 43;

export type GrantCheck = 'valid' | 'invalid' | 'expired';

const READER_GRANT =
  /^(\d{1,12})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

/** Whether a player grant was signed by this application for that activity, and for whom; in force or not. */
export function checkReaderGrant(
  activityId: string,
  grant: string,
  now = Date.now(),
): { check: 'valid'; readerId: string } | { check: 'invalid' | 'expired' } {
  const key = signingKey();
  const match = READER_GRANT.exec(grant);
  if (!key || !match) return { check: 'invalid' };
  const expires = Number(match[1]);
  const readerId = match[2] as string;
  const expected = Buffer.from(readerSignature(key, activityId, readerId, expires), 'base64url');
  const given = Buffer.from(match[3] as string, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { check: 'invalid' };
  return expires * 1000 > now ? { check: 'valid', readerId } : { check: 'expired' };
}

/** Whether a grant was signed by this application for that activity, and is still in force. */
export function checkGrant(activityId: string, grant: string, now = Date.now()): GrantCheck {
  const key = signingKey();
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(grant);
  if (!key || !match) return 'invalid';
  const expires = Number(match[1]);
  const expected = Buffer.from(signature(key, activityId, expires), 'base64url');
  const given = Buffer.from(match[2] as string, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
  return expires * 1000 > now ? 'valid' : 'expired';
}
