// Keyset pagination shared by every list: `?limit=` (bounded) and an opaque `?cursor=` holding
// the sort key of the last row served. Page N costs what page 1 costs, and rows inserted while a
// client pages never make it skip or repeat one.
import { z } from 'zod';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

export const limitSchema = z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE);

/** A cursor is base64url JSON of the last row's sort key; clients treat it as opaque. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** A zod schema for `?cursor=` whose parsed value is the key, checked against `shape`. */
export function cursorSchema<T extends z.ZodTuple>(shape: T) {
  return z
    .string()
    .max(512)
    .transform((raw, ctx) => {
      try {
        const parsed = shape.safeParse(JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')));
        if (parsed.success) return parsed.data as z.infer<T>;
      } catch {
        // falls through to the issue below
      }
      ctx.addIssue({ code: 'custom', message: 'Not a cursor this list gave out' });
      return z.NEVER;
    })
    .optional();
}

export interface Page<T> {
  items: T[];
  /** Cursor of the next page, or null on the last page. */
  next: string | null;
}

/**
 * Builds a page from rows fetched with `limit + 1`: the extra row only tells whether a next page
 * exists, and the cursor is the sort key of the last row served.
 */
export function pageOf<R, T>(
  rows: readonly R[],
  limit: number,
  keyOf: (row: R) => readonly (string | number)[],
  toItem: (row: R) => T,
): Page<T> {
  const served = rows.slice(0, limit);
  const last = served[served.length - 1];
  return {
    items: served.map(toItem),
    next: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}

/** RFC 8288 `Link` header pointing at the next page, or undefined on the last page. */
export function nextLink(requestUrl: string, next: string | null): Record<string, string> | undefined {
  if (!next) return undefined;
  const url = new URL(requestUrl);
  url.searchParams.set('cursor', next);
  return { Link: `<${url.pathname}${url.search}>; rel="next"` };
}
