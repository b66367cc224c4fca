// Personal data at rest: AES-256-GCM in the application (a fresh 96-bit nonce per value, the key id
// inside the ciphertext so keys can rotate, the column as associated data so a value cannot be
// moved to another column), and keyed HMAC blind indexes so lookups never decrypt a table.
//
// Why one file over 350 lines: the value format, the key ring (which key encrypts, which ids decrypt,
// rotation), the segmented stream format of files and the blind indexes all rest on the same parsed
// keys; a second module would have to hold the key material too.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import { type Config, ConfigError, config } from './config';

const FORMAT_VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Demo keys for development and tests only; production refuses to start without real ones. */
const DEMO_ENCRYPTION_KEYS = 'demo1:ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q=';
const DEMO_BLIND_INDEX_KEY = 'ZGVtby1vbmx5LWJsaW5kLWluZGV4LWtleS0zMi1ieXRlcw==';

/** Where an encrypted value lives; bound into the ciphertext as associated data. */
export type PiiField =
  | 'users.email'
  | 'users.first_name'
  | 'users.last_name'
  | 'registration_requests.email'
  | 'outbox.recipient'
  | 'outbox.body'
  | 'transcript_documents.content'
  | 'scorm_records.suspend_data'
  | 'scorm_records.interactions'
  | 'h5p_user_states.state'
  | 'credentials.revoke_reason'
  | (string & {});

/**
 * A key of the people indexes (email blind index, name tokens). `id` null is the key of the indexes
 * written before key ids existed: its indexes are the bare HMAC. Every other key's indexes start with
 * `<id>:` in ASCII, so a row says which key made it and a re-index can find what is left.
 */
export interface IndexKey {
  id: string | null;
  key: Buffer;
}

interface KeyRing {
  current: { id: string; key: Buffer };
  byId: Map<string, Buffer>;
  /** The first indexes new values; every one is looked up by (PII_BLIND_INDEX_KEY). */
  indexKeys: IndexKey[];
  /** The xAPI record store's indexes (PII_XAPI_INDEX_KEY, else the key without an id). */
  xapiIndexKey: Buffer;
}

let ring: KeyRing | undefined;

function decodeKey(name: string, base64: string): Buffer {
  const key = Buffer.from(base64, 'base64');
  if (key.length < 32) throw new ConfigError(`${name}: a key must be at least 32 bytes (base64 encoded)`);
  return key;
}

/** `keyId:base64` or bare base64 entries (lib/config.ts checks them; this reads them). */
function parseIndexKeys(value: string): IndexKey[] {
  return value.split(',').map((entry) => {
    const match = /^(?:([A-Za-z0-9_-]{1,32}):)?([^:]+)$/.exec(entry.trim());
    if (!match) throw new ConfigError('PII_BLIND_INDEX_KEY: expected base64 or keyId:base64[,…]');
    return { id: match[1] ?? null, key: decodeKey('PII_BLIND_INDEX_KEY', match[2] as string) };
  });
}

export function parseKeyRing(
  cfg: Pick<Config, 'APP_ENV' | 'PII_ENCRYPTION_KEYS' | 'PII_BLIND_INDEX_KEY'> & {
    PII_XAPI_INDEX_KEY?: string | undefined;
  },
): KeyRing {
  const production = cfg.APP_ENV === 'production';
  const encryptionKeys = cfg.PII_ENCRYPTION_KEYS ?? (production ? undefined : DEMO_ENCRYPTION_KEYS);
  const blindIndexKey = cfg.PII_BLIND_INDEX_KEY ?? (production ? undefined : DEMO_BLIND_INDEX_KEY);
  if (!encryptionKeys || !blindIndexKey) {
    throw new ConfigError('PII_ENCRYPTION_KEYS and PII_BLIND_INDEX_KEY are required in production');
  }
  const byId = new Map<string, Buffer>();
  const entries = encryptionKeys.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const match = /^([A-Za-z0-9_-]{1,32}):(.+)$/.exec(entry);
    if (!match) throw new ConfigError('PII_ENCRYPTION_KEYS: expected keyId:base64key[,keyId:base64key…]');
    const [, id, base64] = match as unknown as [string, string, string];
    const key = decodeKey('PII_ENCRYPTION_KEYS', base64);
    if (key.length !== 32) throw new ConfigError('PII_ENCRYPTION_KEYS: AES-256 keys are exactly 32 bytes');
    byId.set(id, key);
  }
  const firstId = /^([^:]+):/.exec(entries[0] ?? '')?.[1] as string;
  const indexKeys = parseIndexKeys(blindIndexKey);
  const xapi = cfg.PII_XAPI_INDEX_KEY
    ? decodeKey('PII_XAPI_INDEX_KEY', cfg.PII_XAPI_INDEX_KEY)
    : indexKeys.find((entry) => entry.id === null)?.key;
  if (!xapi) throw new ConfigError('PII_XAPI_INDEX_KEY is required when every PII_BLIND_INDEX_KEY entry has a key id');
  return {
    current: { id: firstId, key: byId.get(firstId) as Buffer },
    byId,
    indexKeys,
    xapiIndexKey: xapi,
  };
}

function keys(): KeyRing {
  ring ??= parseKeyRing(config());
  return ring;
}

/** Forget the parsed keys (tests and the rotation command change them). */
export function resetKeysForTests(): void {
  ring = undefined;
}

export function currentKeyId(): string {
  return keys().current.id;
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** AES-256-GCM with the current key: `nonce ‖ ciphertext ‖ tag`, and the id of the key used. */
function seal(plaintext: Buffer, field: PiiField): { keyId: string; sealed: Buffer } {
  const { id, key } = keys().current;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(field));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId: id, sealed: Buffer.concat([nonce, body, cipher.getAuthTag()]) };
}

function open(keyId: string, sealed: Buffer, field: PiiField): Buffer {
  const key = keys().byId.get(keyId);
  if (!key) throw new Error(`no key ${keyId} configured to decrypt this value`);
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new Error('not a ciphertext of this application');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(Buffer.from(field));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
}

/** The envelope's header, `v1.<keyId>.`: the same in text and in bytes, so rotation can test a prefix. */
export const ciphertextPrefix = (keyId: string) => `${FORMAT_VERSION}.${keyId}.`;

/** Encrypts one value: `v1.<keyId>.<base64url(nonce ‖ ciphertext ‖ tag)>`. */
export function encrypt(plaintext: string, field: PiiField): string {
  // Stryker disable next-line StringLiteral: UTF-8 is Buffer.from's default encoding; the vectors pin the bytes
  const { keyId, sealed } = seal(Buffer.from(plaintext, 'utf8'), field);
  return `${ciphertextPrefix(keyId)}${sealed.toString('base64url')}`;
}

/**
 * Encrypts a document (a PDF, a file): the same envelope with the sealed bytes raw instead of
 * base64url, `v1.<keyId>.` ‖ nonce ‖ ciphertext ‖ tag, for bytea columns (a third smaller than text).
 */
export function encryptBytes(plaintext: Uint8Array, field: PiiField): Buffer {
  const { keyId, sealed } = seal(asBuffer(plaintext), field);
  // Stryker disable next-line StringLiteral: the header is ASCII (key ids are [A-Za-z0-9_-]), so UTF-8, the default, writes the same bytes
  return Buffer.concat([Buffer.from(ciphertextPrefix(keyId), 'ascii'), sealed]);
}

const HEADER = new RegExp(`^${FORMAT_VERSION}\\.([A-Za-z0-9_-]{1,32})\\.`);
/** Longest header: the version, two dots and a 32-character key id. */
const HEADER_MAX = FORMAT_VERSION.length + 34;

/** The key id in a ciphertext's header, and where the sealed part after it starts. */
function header(start: string): { keyId: string; end: number } {
  const match = HEADER.exec(start);
  if (!match) throw new Error('not a ciphertext of this application');
  return { keyId: match[1] as string, end: match[0].length };
}

// The header is ASCII, so its length in characters is its length in bytes.
const headerOfBytes = (bytes: Buffer) => header(bytes.subarray(0, HEADER_MAX).toString('latin1'));

/** The key id a ciphertext (text or bytes) was made with (for rotation). */
export function keyIdOf(ciphertext: string | Uint8Array): string {
  return (typeof ciphertext === 'string' ? header(ciphertext) : headerOfBytes(asBuffer(ciphertext))).keyId;
}

export function decrypt(ciphertext: string, field: PiiField): string {
  const { keyId, end } = header(ciphertext);
  return open(keyId, Buffer.from(ciphertext.slice(end), 'base64url'), field).toString('utf8');
}

export function decryptBytes(ciphertext: Uint8Array, field: PiiField): Buffer {
  const bytes = asBuffer(ciphertext);
  const { keyId, end } = headerOfBytes(bytes);
  return open(keyId, bytes.subarray(end), field);
}

/**
 * Decrypts the named fields of many rows at once, in-process: one pass over a page that one query
 * fetched, never a database round trip per value. Returns new objects with plaintext fields.
 */
export function decryptRows<R extends object, K extends keyof R & string>(
  rows: readonly R[],
  fields: Readonly<Record<K, PiiField>>,
): (Omit<R, K> & Record<K, string>)[] {
  const names = Object.keys(fields) as K[];
  return rows.map((row) => {
    const out = { ...row } as Record<string, unknown>;
    for (const name of names) {
      const value = (row as Record<string, unknown>)[name];
      out[name] = typeof value === 'string' ? decrypt(value, fields[name]) : value;
    }
    return out as Omit<R, K> & Record<K, string>;
  });
}

/** Email as compared everywhere: Unicode-normalised, trimmed, lower-cased. */
export function normalizeEmail(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase();
}

function hmacWith(key: Buffer, purpose: string, value: string): Buffer {
  return createHmac('sha256', key).update(`${purpose}\u0000${value}`).digest();
}

/** The people-index keys, the current one (which indexes new values) first. */
export function indexKeys(): readonly IndexKey[] {
  return keys().indexKeys;
}

/** What the indexes made with a key start with: nothing for the key without an id, else `<id>:`. */
export function indexPrefix(id: string | null): Buffer {
  // Stryker disable next-line StringLiteral: the header is ASCII (key ids are [A-Za-z0-9_-]), so UTF-8, the default, writes the same bytes
  return id === null ? Buffer.alloc(0) : Buffer.from(`${id}:`, 'ascii');
}

const withPrefix = (index: IndexKey, hmac: Buffer) =>
  index.id === null ? hmac : Buffer.concat([indexPrefix(index.id), hmac]);

const EMAIL_INDEX_BYTES = 32;

function emailIndexWith(index: IndexKey, email: string): Buffer {
  return withPrefix(index, hmacWith(index.key, 'email', normalizeEmail(email)));
}

/** Keyed blind index of an email under the current index key: what a row stores, uniqueness without decrypting. */
export function emailBlindIndex(email: string): Buffer {
  return emailIndexWith(keys().indexKeys[0] as IndexKey, email);
}

/** The email's blind index under every configured index key, current first: what a lookup compares. */
export function emailBlindIndexes(email: string): Buffer[] {
  return keys().indexKeys.map((index) => emailIndexWith(index, email));
}

/**
 * Keyed blind index of a value for one purpose (`xapi-agent`, …), truncated to `bytes`: equality lookups
 * without the value. Purposes keep the indexes of different things apart. Under the xAPI index key,
 * which does not rotate (PII_XAPI_INDEX_KEY).
 */
export function blindIndex(purpose: string, value: string, bytes = 32): Buffer {
  return hmacWith(keys().xapiIndexKey, purpose, value).subarray(0, bytes);
}

/** Longest name prefix that gets its own search token; longer searches filter after decryption. */
export const NAME_PREFIX_MAX = 8;
const NAME_PREFIX_MIN = 2;
const NAME_TOKEN_BYTES = 12;

/** Stored lengths of a key's indexes: what tells a key without an id from one with (lib/index-keys.ts). */
export const indexLengths = (id: string | null) => ({
  email: indexPrefix(id).length + EMAIL_INDEX_BYTES,
  nameToken: indexPrefix(id).length + NAME_TOKEN_BYTES,
});

export function normalizeName(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

const nameTokenWith = (index: IndexKey, prefix: string) =>
  withPrefix(index, hmacWith(index.key, 'name', prefix).subarray(0, NAME_TOKEN_BYTES));

/**
 * Search tokens for the prefixes (2..8 characters) of every word of a person's names, under the
 * current index key. What they reveal to someone holding the database but not the key: which rows
 * share a name prefix, and roughly how many words and characters a name has (up to 8) — no letters.
 */
export function nameSearchTokens(...names: string[]): Buffer[] {
  const index = keys().indexKeys[0] as IndexKey;
  const tokens = new Map<string, Buffer>();
  // Stryker disable next-line MethodExpression: an empty word has no prefix of 2 or more characters, so it adds no token either way
  for (const word of names.flatMap((name) => normalizeName(name).split(' ')).filter(Boolean)) {
    const chars = [...word];
    for (let length = NAME_PREFIX_MIN; length <= Math.min(chars.length, NAME_PREFIX_MAX); length++) {
      const prefix = chars.slice(0, length).join('');
      // Stryker disable next-line ConditionalExpression: the check only saves work; a token set again is the same HMAC
      if (!tokens.has(prefix)) tokens.set(prefix, nameTokenWith(index, prefix));
    }
  }
  return [...tokens.values()];
}

/** The prefix a typed word is searched by, or null when it is too short to search by. */
function searchedPrefix(prefix: string): string | null {
  const chars = [...normalizeName(prefix).split(' ')[0]!];
  return chars.length < NAME_PREFIX_MIN ? null : chars.slice(0, NAME_PREFIX_MAX).join('');
}

/** The token to look up for a typed prefix under the current key, or null when it is too short to search by. */
export function nameSearchToken(prefix: string): Buffer | null {
  const searched = searchedPrefix(prefix);
  return searched === null ? null : nameTokenWith(keys().indexKeys[0] as IndexKey, searched);
}

/**
 * The tokens of typed words under each index key (one list per key, current first; words too short to
 * search by left out): a row matches when its tokens hold every token of one list, since all of a
 * row's tokens are made with one key.
 */
export function nameSearchTokenSets(words: readonly string[]): Buffer[][] {
  const prefixes = words.map(searchedPrefix).filter((prefix): prefix is string => prefix !== null);
  return keys().indexKeys.map((index) => prefixes.map((prefix) => nameTokenWith(index, prefix)));
}

// Files (lib/files.ts) are encrypted as a stream of segments, so neither side ever holds a whole file
// and every byte handed on has been authenticated: `v1.<keyId>.` ‖ 7-byte nonce prefix, then segments
// of up to FILE_SEGMENT_BYTES plaintext, each AES-256-GCM sealed as ciphertext ‖ tag. A segment's nonce
// is the prefix ‖ its index (4 bytes) ‖ 1 for the last segment, else 0 (the STREAM construction), so
// segments cannot be reordered, dropped or cut off at a segment boundary without the tag failing.
export const FILE_SEGMENT_BYTES = 64 * 1024;
const FILE_NONCE_PREFIX_BYTES = 7;

function segmentNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, FILE_NONCE_PREFIX_BYTES);
  nonce[NONCE_BYTES - 1] = last ? 1 : 0;
  return nonce;
}

/** A Transform that encrypts a file with the current key, for the `field` (associated data) given. */
export function encryptingStream(field: PiiField): Transform {
  const { id, key } = keys().current;
  const prefix = randomBytes(FILE_NONCE_PREFIX_BYTES);
  let pending = Buffer.alloc(0);
  let index = 0;
  const segment = (plaintext: Buffer, last: boolean) => {
    const cipher = createCipheriv('aes-256-gcm', key, segmentNonce(prefix, index++, last));
    cipher.setAAD(Buffer.from(field));
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  };
  return new Transform({
    construct(callback) {
      // Stryker disable next-line StringLiteral: the header is ASCII (key ids are [A-Za-z0-9_-]), so UTF-8, the default, writes the same bytes
      this.push(Buffer.concat([Buffer.from(ciphertextPrefix(id), 'ascii'), prefix]));
      callback();
    },
    transform(chunk: Buffer, _encoding, callback) {
      pending = Buffer.concat([pending, chunk]);
      // A full segment is sealed only once more follows: the last one must carry the last flag.
      while (pending.length > FILE_SEGMENT_BYTES) {
        this.push(segment(pending.subarray(0, FILE_SEGMENT_BYTES), false));
        pending = pending.subarray(FILE_SEGMENT_BYTES);
      }
      callback();
    },
    flush(callback) {
      callback(null, segment(pending, true));
    },
  });
}

/** Bytes of a file ciphertext before its first segment, for a file sealed under `keyId`. */
export const fileHeaderBytes = (keyId: string) => ciphertextPrefix(keyId).length + FILE_NONCE_PREFIX_BYTES;
/** Bytes of one full sealed segment (FILE_SEGMENT_BYTES of plaintext and its tag). */
export const SEALED_FILE_SEGMENT_BYTES = FILE_SEGMENT_BYTES + TAG_BYTES;

/**
 * Where a decryption starts when not at the file's first byte (a byte range): the input is then the
 * header followed by the sealed segments from `segment` on, and `toEnd` says whether they run to the
 * file's end (the last one then carries the last flag) or stop after a full segment. Each segment is
 * opened with its own index in the nonce, so a segment moved, swapped or cut off still fails its tag.
 */
export interface SegmentStart {
  segment: number;
  toEnd: boolean;
}

/** A Transform that decrypts what encryptingStream wrote; it fails (an error event) on any change. */
export function decryptingStream(field: PiiField, from: SegmentStart = { segment: 0, toEnd: true }): Transform {
  let pending = Buffer.alloc(0);
  let state: { key: Buffer; prefix: Buffer } | undefined;
  let index = from.segment;
  const sealedSegment = FILE_SEGMENT_BYTES + TAG_BYTES;
  const open = (sealed: Buffer, last: boolean) => {
    const { key, prefix } = state as { key: Buffer; prefix: Buffer };
    if (sealed.length < TAG_BYTES) throw new Error('file ciphertext cut short');
    const decipher = createDecipheriv('aes-256-gcm', key, segmentNonce(prefix, index++, last));
    decipher.setAAD(Buffer.from(field));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
  };
  // The header is short and variable (the key id): wait for its longest form unless the file ends first.
  const readHeader = (ended: boolean) => {
    if (!ended && pending.length < HEADER_MAX + FILE_NONCE_PREFIX_BYTES) return;
    const { keyId, end } = headerOfBytes(pending);
    if (pending.length < end + FILE_NONCE_PREFIX_BYTES) return;
    const key = keys().byId.get(keyId);
    if (!key) throw new Error(`no key ${keyId} configured to decrypt this file`);
    state = { key, prefix: Buffer.from(pending.subarray(end, end + FILE_NONCE_PREFIX_BYTES)) };
    pending = pending.subarray(end + FILE_NONCE_PREFIX_BYTES);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        pending = Buffer.concat([pending, chunk]);
        if (!state) readHeader(false);
        while (state && pending.length > sealedSegment) {
          this.push(open(pending.subarray(0, sealedSegment), false));
          pending = pending.subarray(sealedSegment);
        }
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback) {
      try {
        if (!state) readHeader(true);
        if (!state) throw new Error('not a file ciphertext of this application');
        if (!from.toEnd && pending.length !== sealedSegment) throw new Error('file ciphertext cut short');
        callback(null, open(pending, from.toEnd));
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}
