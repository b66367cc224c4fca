// Exports: one resource's records as CSV or NDJSON streamed while they are read, or as a PDF of at most
// PDF_ROW_CAP rows. A stream reads through a server-side cursor EXPORT_BATCH rows at a time, decrypts each
// batch's personal values in one in-process pass and writes it (csv-stringify, or one JSON object a line)
// before the next is fetched, so memory stays flat whatever the row count. The resources (the compliance
// records and the student roster), their columns and filters are lib/report-resources.ts; the route is
// functions/reports.ts.
import { stringify } from 'csv-stringify/sync';
import type postgres from 'postgres';
import { config } from './config';
import { decryptRows, type PiiField } from './crypto';
import type { AnySql, Sql } from './db';
import { badRequest } from './errors';
import { bytes, type Reply, streamed } from './http';
import { renderPdf } from './pdf';
import { SCHOOL, schoolDate } from './school';

/** Rows fetched, decrypted and written per round trip of the cursor. */
export const EXPORT_BATCH = 1000;
/** A PDF is built whole in memory (lib/pdf.ts): past this many rows an export must be CSV. */
export const PDF_ROW_CAP = 2000;
/** The longest an export may read (a million rows take seconds; a loaded server, minutes). */
export const EXPORT_TIMEOUT_MS = 10 * 60_000;

export interface ExportFilter {
  /** School days (America/New_York), inclusive. */
  from?: string | undefined;
  to?: string | undefined;
  programId?: string | undefined;
  status?: string | undefined;
}

export type Cell = string | number | boolean | Date | null;

/** One exportable resource: its columns, statuses, query (in a stable order) and how a row prints. */
export interface ExportResource<R extends object = Record<string, unknown>> {
  title: string;
  /** The values `status` may filter by. */
  statuses: readonly string[];
  columns: readonly { title: string; width: number }[];
  query(sql: AnySql, filter: ExportFilter): postgres.PendingQuery<R[]>;
  count(sql: AnySql, filter: ExportFilter): postgres.PendingQuery<{ rows: number }[]>;
  /** The encrypted columns of a row and their fields: decrypted per batch. */
  encrypted: Readonly<Partial<Record<keyof R & string, PiiField>>>;
  cells(row: R): Cell[];
  /** Set where the records belong to no programme (complaints): a programme filter is then a 400. */
  noProgramme?: string;
}

/** `instant >= from 00:00 and < the day after to, at the school`: an index on the column still serves it. */
export function withinDays(sql: AnySql, column: postgres.Fragment, filter: ExportFilter): postgres.Fragment {
  const from = filter.from
    ? sql`${column} >= (${filter.from}::date)::timestamp at time zone ${SCHOOL.timeZone}`
    : sql`true`;
  const to = filter.to
    ? sql`${column} < (${filter.to}::date + 1)::timestamp at time zone ${SCHOOL.timeZone}`
    : sql`true`;
  return sql`${from} and ${to}`;
}

const decryptBatch = <R extends object>(resource: ExportResource<R>, rows: readonly R[]): R[] =>
  decryptRows(rows, resource.encrypted as Record<keyof R & string, PiiField>) as unknown as R[];

/** Postgres gives dates and instants as Date; the export writes them as ISO text (UTC). */
const printable = (cell: Cell | Date): Cell => (cell instanceof Date ? cell.toISOString() : cell);

/**
 * The resource's rows, decrypted, batch by batch from a server-side cursor. The cursor is one statement
 * for PostgreSQL from its first row to its last, so it runs on a connection of its own whose
 * statement_timeout is EXPORT_TIMEOUT_MS instead of the pool's DB_STATEMENT_TIMEOUT_MS; the connection
 * goes back to the pool, with the pool's timeout, when the export ends or the client goes away.
 */
async function* decryptedBatches<R extends object>(
  sql: Sql,
  resource: ExportResource<R>,
  filter: ExportFilter,
): AsyncGenerator<R[]> {
  const connection = await sql.reserve();
  let failed = false;
  try {
    await connection`select set_config('statement_timeout', ${String(EXPORT_TIMEOUT_MS)}, false)`;
    for await (const rows of resource.query(connection, filter).cursor(EXPORT_BATCH)) {
      yield decryptBatch(resource, rows);
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // After a failure the connection may be dead, and a query on a dead reserved connection waits
    // forever (seen with the server killing it mid-export): the export would never end. A connection
    // the pool opens again starts with the pool's own timeout, so there is nothing to reset then.
    if (!failed) {
      await connection`select set_config('statement_timeout', ${String(config().DB_STATEMENT_TIMEOUT_MS)}, false)`.catch(
        () => undefined,
      );
    }
    connection.release();
  }
}

/** The CSV, header first (with a BOM, for spreadsheets), then the rows batch by batch. */
export async function* csvExport<R extends object>(
  sql: Sql,
  resource: ExportResource<R>,
  filter: ExportFilter,
): AsyncGenerator<string> {
  yield stringify([resource.columns.map((column) => column.title)], { bom: true });
  for await (const rows of decryptedBatches(sql, resource, filter)) {
    const cells = rows.map((row) => resource.cells(row).map(printable));
    yield stringify(cells, { cast: { boolean: (value) => (value ? 'true' : 'false') } });
  }
}

/** NDJSON media type: one JSON object a line, each line ending in \n. */
export const NDJSON = 'application/x-ndjson';

/**
 * NDJSON: one object a row, keyed by the CSV's column titles, in the same order; numbers, booleans and nulls
 * stay JSON's own, instants are ISO text as in the CSV. Nothing before the first row (no header to skip).
 */
export async function* ndjsonExport<R extends object>(
  sql: Sql,
  resource: ExportResource<R>,
  filter: ExportFilter,
): AsyncGenerator<string> {
  const titles = resource.columns.map((column) => column.title);
  for await (const rows of decryptedBatches(sql, resource, filter)) {
    let lines = '';
    for (const row of rows) {
      const cells = resource.cells(row);
      lines += `${JSON.stringify(Object.fromEntries(titles.map((title, i) => [title, printable(cells[i] ?? null)])))}\n`;
    }
    yield lines;
  }
}

/** How many rows the filter selects (a PDF is refused past PDF_ROW_CAP before anything is read). */
export async function exportSize(sql: AnySql, resource: ExportResource, filter: ExportFilter): Promise<number> {
  const [row] = await resource.count(sql, filter);
  return row?.rows ?? 0;
}

/** The PDF of at most PDF_ROW_CAP rows: a heading naming the export and its filters, then one table. */
export async function pdfExport<R extends object>(
  sql: AnySql,
  resource: ExportResource<R>,
  filter: ExportFilter,
  now: Date,
): Promise<Uint8Array> {
  const rows = decryptBatch(resource, await resource.query(sql, filter));
  const filters = [
    filter.from ? `from ${filter.from}` : null,
    filter.to ? `to ${filter.to}` : null,
    filter.programId ? `programme ${filter.programId}` : null,
    filter.status ? `status ${filter.status}` : null,
  ].filter(Boolean);
  return renderPdf({
    title: `${resource.title} export`,
    author: SCHOOL.name,
    createdAt: now,
    footer: `${SCHOOL.name} — ${resource.title}, exported ${schoolDate(now)}`,
    blocks: [
      { kind: 'heading', text: `${resource.title}`, level: 1 },
      { kind: 'text', text: `${rows.length} records${filters.length ? `, ${filters.join(', ')}` : ''}.` },
      {
        kind: 'table',
        columns: resource.columns,
        rows: rows.map((row) => resource.cells(row).map((cell) => String(printable(cell) ?? ''))),
      },
    ],
  });
}

export type ExportFormat = 'csv' | 'ndjson' | 'pdf';
/** The media types an export answers with, one per format (the routes declare them). */
export const EXPORT_MEDIA = ['text/csv; charset=utf-8', NDJSON, 'application/pdf'] as const;

/**
 * The answer to `GET reports/…/{name}?format=…`: the filters checked against the resource (400s naming the
 * field), then the attachment: a PDF under its row cap (counted first, a 400 past it), or a stream.
 */
export async function exportReply(
  sql: Sql,
  name: string,
  resource: ExportResource,
  query: ExportFilter & { format: ExportFormat },
): Promise<Reply> {
  if (query.status && !resource.statuses.includes(query.status)) {
    const message = `One of ${resource.statuses.join(', ')}`;
    throw badRequest(message, [{ field: 'query.status', message }]);
  }
  if (query.programId && resource.noProgramme) {
    throw badRequest(resource.noProgramme, [{ field: 'query.programId', message: resource.noProgramme }]);
  }
  const stamp = new Date();
  const file = `${name}-${stamp.toISOString().slice(0, 10)}`;
  const attachment = (extension: string) => ({ 'Content-Disposition': `attachment; filename="${file}.${extension}"` });
  if (query.format === 'pdf') {
    const rows = await exportSize(sql, resource, query);
    if (rows > PDF_ROW_CAP) {
      const message = `A PDF export holds at most ${PDF_ROW_CAP} rows (this one has ${rows}): narrow the dates or use format=csv`;
      throw badRequest(message, [{ field: 'query.format', message }]);
    }
    return bytes(await pdfExport(sql, resource, query, stamp), 'application/pdf', attachment('pdf'));
  }
  if (query.format === 'ndjson') return streamed(ndjsonExport(sql, resource, query), NDJSON, attachment('ndjson'));
  return streamed(csvExport(sql, resource, query), 'text/csv; charset=utf-8', attachment('csv'));
}
