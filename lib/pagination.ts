// Keyset pagination shared by every list: `?limit=` (bounded) and an opaque `?cursor=` holding the
// sort key of the last row read. Page N costs what page 1 costs, and rows inserted while a client
// pages never make it skip or repeat one.
//
// A list declares its order once with keyset(): the columns and their kinds. From that one
// declaration come the key column it selects, the "after this cursor" condition, the ORDER BY, the
// cursor's zod schema and the page. Every cursor of every list is parsed here, so a cursor that was
// not handed out (random text, tampered JSON, a value the database would choke on) is always a 400
// naming the cursor field, never a database error.
import type postgres from 'postgres';
import { type ZodType, z } from 'zod';
import { decrypt, encrypt, type PiiField } from './crypto';
import type { AnySql } from './db';

type Db = AnySql;
type Fragment = postgres.Fragment;

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/**
 * `?limit=`: decimal digits only in a query string (`0x10`, `1e2`, ` 5` and `+5` are refused, where
 * a plain number coercion would read them as numbers), or a JSON integer in a search body. The
 * OpenAPI document shows it as the integer it is.
 */
export const limitSchema = z
  .preprocess(
    (value) => (typeof value === 'string' && /^[0-9]{1,6}$/.test(value) ? Number(value) : value),
    z.int({ error: 'Use a whole number written in decimal digits' }).min(1).max(MAX_PAGE_SIZE),
  )
  .default(DEFAULT_PAGE_SIZE);

export const CURSOR_MAX_LENGTH = 512;
const CURSOR_REFUSED = 'Not a cursor this list gave out';
const BASE64URL = /^[A-Za-z0-9_-]+$/;

// ---------------------------------------------------------------------------------------------------
// Kinds of key column: how each is selected as text, compared, and checked when it comes back
// ---------------------------------------------------------------------------------------------------

const MICROSECOND_UTC = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.(\d{6})Z$/;

/** A real instant of years 1..9999: the calendar checked here, not by the database. */
function isMicrosecondInstant(value: string): boolean {
  const match = MICROSECOND_UTC.exec(value);
  if (!match || Number(match[1]) < 1) return false;
  const milliseconds = `${value.slice(0, 23)}Z`;
  const parsed = new Date(milliseconds);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString() === milliseconds;
}

const BIGINT_MAX = 2n ** 63n - 1n;

/** A timestamptz as UTC text to the microsecond (`2026-01-02T03:04:05.123456Z`): sorts as time does. */
export function utcMicroseconds(sql: Db, column: Fragment): Fragment {
  return sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

interface KeyKind {
  /** The column as the text the cursor carries. */
  select: (sql: Db, column: Fragment) => Fragment;
  /** A cursor value as the column's type. */
  value: (sql: Db, text: string) => Fragment;
  /** What a value of this kind may be inside a cursor. */
  schema: ZodType<string>;
}

export const KEY_KINDS = {
  /**
   * A timestamptz to the microsecond, as UTC text. It stays text all the way into SQL
   * (`::text::timestamptz`): a JS Date, or a parameter postgres.js sees as a timestamp, keeps only
   * milliseconds, and rows sharing one would be skipped or served twice.
   */
  time: {
    select: utcMicroseconds,
    value: (sql, text) => sql`${text}::text::timestamptz`,
    schema: z.string().refine(isMicrosecondInstant),
  },
  uuid: {
    select: (sql, column) => sql`${column}::text`,
    value: (sql, text) => sql`${text}::uuid`,
    schema: z.uuid(),
  },
  /** A bigint id, as decimal text (JSON numbers lose precision past 2^53). */
  bigint: {
    select: (sql, column) => sql`${column}::text`,
    value: (sql, text) => sql`${text}::text::bigint`,
    // One total check: zod runs every check even after one failed, and BigInt() throws on non-digits.
    schema: z.string().refine((text) => /^[1-9][0-9]{0,18}$/.test(text) && BigInt(text) <= BIGINT_MAX),
  },
  /** Short text such as a programme code: no control characters (PostgreSQL text holds no NUL). */
  text: {
    select: (sql, column) => sql`${column}::text`,
    value: (sql, text) => sql`${text}::text`,
    schema: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[^\p{Cc}\p{Cs}]+$/u),
  },
} satisfies Record<string, KeyKind>;

export type KeyKindName = keyof typeof KEY_KINDS;

// ---------------------------------------------------------------------------------------------------
// Cursors: base64url JSON of the key, or sealed (encrypted) when the key holds personal data
// ---------------------------------------------------------------------------------------------------

/** A cursor is base64url JSON of the last row's sort key; clients treat it as opaque. */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/**
 * The key inside a base64url cursor, or undefined. Only the exact encoding encodeCursor gives is
 * read: Node's decoder skips characters outside the alphabet and ignores trailing bits, which would
 * let many strings stand for one cursor.
 */
function openCursor(raw: string): unknown {
  if (!BASE64URL.test(raw)) return undefined;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(raw, 'base64url'));
    const parsed: unknown = JSON.parse(text);
    return Buffer.from(JSON.stringify(parsed)).toString('base64url') === raw ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** A cursor holding personal data (names), encrypted like a stored value so none reaches a URL or a log. */
export function sealCursor(key: readonly string[], field: PiiField): string {
  return encrypt(JSON.stringify(key), field);
}

function openSealedCursor(raw: string, field: PiiField): unknown {
  try {
    return JSON.parse(decrypt(raw, field));
  } catch {
    return undefined;
  }
}

function cursorOf<K>(shape: ZodType<K>, open: (raw: string) => unknown) {
  return z
    .string()
    .max(CURSOR_MAX_LENGTH)
    .transform((raw, ctx) => {
      const parsed = shape.safeParse(open(raw));
      if (parsed.success) return parsed.data;
      ctx.addIssue({ code: 'custom', message: CURSOR_REFUSED });
      return z.NEVER;
    })
    .optional();
}

/** A zod schema for a sealed `?cursor=`, whose parsed value is the key checked against `shape`. */
export function sealedCursorSchema<K>(shape: ZodType<K>, field: PiiField) {
  return cursorOf(shape, (raw) => openSealedCursor(raw, field));
}

// ---------------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------------

export interface Page<T> {
  items: T[];
  /** Cursor of the next page, or null on the last page. */
  next: string | null;
}

/** The schema of a page of `item`s, for a list route's `responses` (the OpenAPI document). */
export function pageSchema<T extends ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    next: z.string().nullable().describe('The cursor of the next page (`?cursor=`), null on the last page'),
  });
}

/** Rows of a keyset query carry their key as `page_key` (see Keyset.key). */
export interface KeyedRow {
  page_key: string[];
}

/**
 * Builds a page from rows fetched with `limit + 1`: the extra row only tells whether a next page
 * exists, and the cursor is the key of the last row read. `toItems` converts the rows read in one
 * pass (one decryption pass for a page of people).
 *
 * Lists that filter after decryption (a name search settles, on the decrypted names, what the
 * prefix tokens could only narrow) pass `keep`: the page holds the matches among the rows read, so it
 * may be shorter than `limit`, even empty, while `next` goes on. One rule for every such list,
 * chosen over filling the page from further batches because a request then costs one statement
 * whatever the data: a selective search can never turn a request into a scan, and the rows the
 * tokens let through but the names reject are few (a shared 8-letter prefix, a token collision).
 * Clients follow `next` until it is null; a short page is not the end.
 */
export function pageOf<R extends KeyedRow, T>(
  rows: readonly R[],
  limit: number,
  toItems: (rows: readonly R[]) => T[],
  keep: (item: T) => boolean = () => true,
): Page<T> {
  const read = rows.slice(0, limit);
  const last = read[read.length - 1];
  return {
    items: toItems(read).filter(keep),
    next: rows.length > limit && last !== undefined ? encodeCursor(last.page_key) : null,
  };
}

export interface Keyset<K extends readonly string[]> {
  /** The select-list item of the row's key, `page_key`. */
  key(sql: Db): Fragment;
  /** The condition "after this cursor" in the list's order (`true` without a cursor). */
  after(sql: Db, cursor: K | undefined): Fragment;
  /** `order by …` of the list. */
  orderBy(sql: Db): Fragment;
  /** The zod schema of `?cursor=`: its parsed value is the key. */
  cursor: ReturnType<typeof cursorOf<K>>;
}

type KeyOf<P extends readonly (readonly [string, KeyKindName])[]> = { [I in keyof P]: string };

/**
 * Declares a list's order: its key columns, most significant first (`['u.created_at', 'time'],
 * ['u.id', 'uuid']`), the last one unique, and the direction. An index on those columns in that
 * order serves every page.
 */
export function keyset<const P extends readonly (readonly [column: string, kind: KeyKindName])[]>(
  parts: P,
  direction: 'asc' | 'desc',
): Keyset<KeyOf<P>> {
  const kinds = parts.map(([, kind]) => KEY_KINDS[kind] as KeyKind);
  const columns = (sql: Db) => parts.map(([column]) => sql`${sql(column)}`);
  const shape = z.tuple(kinds.map((kind) => kind.schema) as [ZodType<string>, ...ZodType<string>[]]);
  const joined = (sql: Db, fragments: Fragment[]) => fragments.reduce((all, one) => sql`${all}, ${one}`);
  return {
    key: (sql) =>
      sql`array[${joined(
        sql,
        columns(sql).map((column, i) => (kinds[i] as KeyKind).select(sql, column)),
      )}]::text[] as page_key`,
    after: (sql, cursor) => {
      if (cursor === undefined) return sql`true`;
      const values = joined(
        sql,
        cursor.map((text, i) => (kinds[i] as KeyKind).value(sql, text)),
      );
      const keyColumns = joined(sql, columns(sql));
      return direction === 'asc' ? sql`(${keyColumns}) > (${values})` : sql`(${keyColumns}) < (${values})`;
    },
    orderBy: (sql) =>
      sql`order by ${joined(
        sql,
        columns(sql).map((column) => (direction === 'asc' ? sql`${column} asc` : sql`${column} desc`)),
      )}`,
    cursor: cursorOf(shape as unknown as ZodType<KeyOf<P>>, openCursor),
  };
}

/** RFC 8288 `Link` header pointing at the next page, or undefined on the last page. */
export function nextLink(requestUrl: string, next: string | null): Record<string, string> | undefined {
  if (!next) return undefined;
  const url = new URL(requestUrl);
  url.searchParams.set('cursor', next);
  return { Link: `<${url.pathname}${url.search}>; rel="next"` };
}
