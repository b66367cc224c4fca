// `npm run keys:rotate`: re-encrypts every personal-data ciphertext still on an older key with the
// current key (the first of PII_ENCRYPTION_KEYS), so an old key can then be removed from configuration.
//
// Rotating a key, step by step:
//   1. PII_ENCRYPTION_KEYS=new:<base64>,old:<base64> on the app (it now writes with `new`, reads both);
//   2. DATABASE_URL=<owner connection> PII_ENCRYPTION_KEYS=<same value> npm run keys:rotate
//      (the owner, because the app role may not update append-only tables such as document_signatures);
//   3. when it reports "complete", remove `old` from PII_ENCRYPTION_KEYS.
// The blind-index key (PII_BLIND_INDEX_KEY) is rotated by `npm run keys:reindex` (dev/reindex-keys.ts).
// Files (lib/files.ts rotateFileKeys): every stored file whose object is under an older key is streamed
// into a new object under the current key and its row switched to it (BLOB_ENDPOINT as for the app).
//
// Which columns: those lib/personal-data.ts declares `encrypted`, each with the "field" name it is
// encrypted under (AES-GCM associated data, which must stay the same); text columns hold the text
// envelope, bytea columns the binary one (lib/crypto.ts encrypt / encryptBytes).
// Legacy plaintext: where a declared column replaced a plaintext one (`legacyPlaintext`, e.g.
// transcript_documents.content from before migration 0008), the command first encrypts every value
// still in the plaintext column into the ciphertext column and clears the plaintext, in the same
// batches. The app already writes only ciphertext, so this empties the plaintext columns for good.
//
// How: per table, batches of `batchSize` rows in primary-key order, each batch one transaction that
// locks its rows with FOR UPDATE SKIP LOCKED (a row a request is changing is skipped, never waited
// for) and writes them back with one UPDATE. Rows already on the current key are filtered out by the
// query, so an interrupted run simply starts again and continues where it stopped; rows skipped
// because they were locked are retried in a further pass. Rewriting a row moves its updated_at (the
// set_updated_at trigger): the stored bytes did change, the content did not.
import { setTimeout as sleep } from 'node:timers/promises';
import type postgres from 'postgres';
import {
  ciphertextPrefix,
  currentKeyId,
  decrypt,
  decryptBytes,
  encrypt,
  encryptBytes,
  type PiiField,
} from '../lib/crypto';
import { BYTEA_ARRAY, TEXT_ARRAY } from '../lib/db';
import { rotateFileKeys } from '../lib/files';
import { encryptedColumns } from '../lib/personal-data';
import { runAsCommand, withOwnerDatabase } from './key-command';

type AnySql = postgres.Sql | postgres.TransactionSql;

/** Name of the key column in a batch's VALUES (not a column name any table uses). */
const ROW_KEY = '__rotation_key';
/** PostgreSQL's type id of boolean[] (see lib/db.ts BYTEA_ARRAY for why arrays name their type). */
const BOOLEAN_ARRAY = 1000;
const MAX_PASSES = 3;
/** Pause before a further pass, so rows a request held a moment ago are free again. */
const PASS_PAUSE_MS = 250;

export interface CiphertextColumn {
  name: string;
  field: PiiField;
  /** bytea (the binary envelope) rather than text. */
  binary: boolean;
  /** The plaintext column this one replaced, still to be emptied; `json` when it is json/jsonb. */
  legacy?: { name: string; json: boolean };
}

export interface CiphertextTable {
  table: string;
  /** The single-column primary key batches are ordered by. */
  key: string;
  columns: CiphertextColumn[];
}

export interface RotateOptions {
  batchSize?: number;
  log?: (line: string) => void;
  /** Stop after this many batches (to resume later); tests use it to interrupt a run. */
  maxBatches?: number;
}

export interface RotateResult {
  /** Rows rewritten by this run. */
  rotated: number;
  /** True when no ciphertext on an older key and no legacy plaintext is left in any table. */
  complete: boolean;
}

/** The declared encrypted columns (lib/personal-data.ts), per table, with their types and primary key. */
export async function ciphertextTables(sql: AnySql): Promise<CiphertextTable[]> {
  const declared = encryptedColumns();
  const tables = [...new Set(declared.map((column) => column.table))].sort();
  const catalogue = await sql<
    { table: string; columns: Record<string, string>; key: { name: string; type: string }[] | null }[]
  >`
    select c.table_name as table, json_object_agg(c.column_name, c.udt_name) as columns,
           (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)))
              from pg_index i
              join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = format('%I.%I', 'public', c.table_name)::regclass and i.indisprimary) as key
      from information_schema.columns c
     where c.table_schema = 'public' and c.table_name = any(${tables})
     group by c.table_name`;
  const byTable = new Map(catalogue.map((row) => [row.table, row]));
  return tables.map((table) => {
    const found = byTable.get(table);
    // Every table with personal data has a uuid `id`; a batch is updated in one statement joined on it.
    const key = found?.key?.length === 1 ? found.key[0] : undefined;
    if (!found || key?.type !== 'uuid') {
      throw new Error(`${table}: key rotation needs the table, with a single-column uuid primary key to page by`);
    }
    const typeOf = (column: string) => {
      const type = found.columns[column];
      if (!type) throw new Error(`${table}.${column} is declared in lib/personal-data.ts but does not exist`);
      return type;
    };
    const columns = declared
      .filter((column) => column.table === table)
      .map(({ column, field, legacyPlaintext }): CiphertextColumn => {
        const binary = typeOf(column) === 'bytea';
        if (!legacyPlaintext) return { name: column, field, binary };
        return {
          name: column,
          field,
          binary,
          legacy: { name: legacyPlaintext, json: typeOf(legacyPlaintext).startsWith('json') },
        };
      });
    return { table, key: key.name, columns };
  });
}

/** Rows of `table` with a value not on the current key (`prefix` = `v1.<currentId>.`) or legacy plaintext. */
function needsWork(sql: AnySql, table: CiphertextTable, prefix: string) {
  const prefixBytes = Buffer.from(prefix, 'ascii');
  return table.columns
    .flatMap(({ name, binary, legacy }) => [
      binary
        ? sql`coalesce(substr(${sql(name)}, 1, ${prefixBytes.length}) <> ${prefixBytes}, false)`
        : sql`not starts_with(coalesce(${sql(name)}, ${prefix}), ${prefix})`,
      ...(legacy ? [sql`${sql(legacy.name)} is not null`] : []),
    ])
    .reduce((all, condition) => sql`${all} or ${condition}`);
}

/** What to write for one row: fresh ciphertexts by column, and the legacy columns to clear. */
interface Rewrite {
  values: Record<string, string | Buffer>;
  clear: Set<string>;
}

function plaintextOf(column: CiphertextColumn, row: Record<string, unknown>, prefix: string): string | Buffer | null {
  const legacy = column.legacy ? row[column.legacy.name] : null;
  if (legacy !== null && legacy !== undefined) {
    // jsonb arrives parsed; its text is what the app encrypts (lib/scorm reads it back with JSON.parse).
    return column.legacy?.json ? JSON.stringify(legacy) : (legacy as string | Buffer);
  }
  const value = row[column.name];
  if (value === null || value === undefined) return null;
  if (column.binary) {
    const bytes = value as Buffer;
    return bytes.subarray(0, prefix.length).toString('latin1') === prefix ? null : decryptBytes(bytes, column.field);
  }
  return (value as string).startsWith(prefix) ? null : decrypt(value as string, column.field);
}

function rewrite(table: CiphertextTable, row: Record<string, unknown>, prefix: string): Rewrite {
  const out: Rewrite = { values: {}, clear: new Set() };
  for (const column of table.columns) {
    try {
      const plaintext = plaintextOf(column, row, prefix);
      if (plaintext === null) continue;
      out.values[column.name] = column.binary
        ? encryptBytes(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext, column.field)
        : encrypt(typeof plaintext === 'string' ? plaintext : plaintext.toString('utf8'), column.field);
      if (column.legacy && row[column.legacy.name] !== null) out.clear.add(column.legacy.name);
    } catch (error) {
      // Never the value itself: only where it is and why it cannot be read.
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${table.table}.${column.name} (${table.key} ${String(row[table.key])}): ${reason}`);
    }
  }
  return out;
}

/** One batch in one transaction; returns how many rows it rewrote and the last key it saw. */
async function rotateBatch(
  sql: postgres.Sql,
  table: CiphertextTable,
  prefix: string,
  after: unknown,
  batchSize: number,
): Promise<{ rotated: number; lastKey: unknown }> {
  return sql.begin(async (tx) => {
    const legacyNames = table.columns.flatMap((column) => (column.legacy ? [column.legacy.name] : []));
    const rows = await tx<Record<string, unknown>[]>`
      select ${tx([table.key, ...table.columns.map((column) => column.name), ...legacyNames])}
        from ${tx(table.table)}
       where (${needsWork(tx, table, prefix)})
         ${after === undefined ? tx`` : tx`and ${tx(table.key)} > ${after as string}`}
       order by ${tx(table.key)}
       limit ${batchSize}
         for update skip locked`;
    // Decrypt and encrypt the whole batch first (a bad value aborts before anything is written),
    // then write it back in one statement; NULL in a column's array means "leave it as it is".
    const fresh = rows.map((row) => rewrite(table, row, prefix));
    if (rows.length > 0) {
      const assignments = [
        ...table.columns.map(({ name }) => tx`${tx(name)} = coalesce(v.${tx(name)}, t.${tx(name)})`),
        ...legacyNames.map((name) => tx`${tx(name)} = case when v.${tx(name)} then null else t.${tx(name)} end`),
      ].reduce((all, assignment) => tx`${all}, ${assignment}`);
      const arrays = [
        ...table.columns.map(({ name, binary }) => {
          const values = fresh.map((one) => one.values[name] ?? null);
          return binary
            ? tx`${tx.array(values as Buffer[], BYTEA_ARRAY)}::bytea[]`
            : tx`${tx.array(values as string[], TEXT_ARRAY)}::text[]`;
        }),
        ...legacyNames.map(
          (name) =>
            tx`${tx.array(
              fresh.map((one) => one.clear.has(name)),
              BOOLEAN_ARRAY,
            )}::boolean[]`,
        ),
      ].reduce((all, array) => tx`${all}, ${array}`);
      const names = [...table.columns.map((column) => column.name), ...legacyNames];
      await tx`
        update ${tx(table.table)} as t set ${assignments}
          from unnest(${rows.map((row) => row[table.key] as string)}::uuid[], ${arrays}) as v(${tx([ROW_KEY, ...names])})
         where t.${tx(table.key)} = v.${tx(ROW_KEY)}`;
    }
    return { rotated: rows.length, lastKey: rows[rows.length - 1]?.[table.key] };
  });
}

async function countNeedingWork(sql: postgres.Sql, table: CiphertextTable, prefix: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from ${sql(table.table)} where ${needsWork(sql, table, prefix)}`;
  return row?.count ?? 0;
}

/** Re-encrypts every ciphertext not on the current key and encrypts legacy plaintext. Safe to interrupt and to run again. */
export async function rotateKeys(sql: postgres.Sql, options: RotateOptions = {}): Promise<RotateResult> {
  const batchSize = options.batchSize ?? 500;
  const log = options.log ?? (() => {});
  const prefix = ciphertextPrefix(currentKeyId());
  let rotated = 0;
  let batches = 0;
  let complete = true;
  log(`Re-encrypting with key "${currentKeyId()}" in batches of ${batchSize}`);
  for (const table of await ciphertextTables(sql)) {
    let left = await countNeedingWork(sql, table, prefix);
    for (let pass = 1; pass <= MAX_PASSES && left > 0; pass++) {
      if (pass > 1) await sleep(PASS_PAUSE_MS);
      let after: unknown;
      let tableRotated = 0;
      for (;;) {
        if (options.maxBatches !== undefined && batches >= options.maxBatches) {
          log(`Stopped after ${batches} batches (${rotated} rows); run again to continue`);
          return { rotated, complete: false };
        }
        const batch = await rotateBatch(sql, table, prefix, after, batchSize);
        batches++;
        if (batch.rotated === 0) break;
        after = batch.lastKey;
        tableRotated += batch.rotated;
        rotated += batch.rotated;
        log(`  ${table.table}: ${tableRotated} of ${left} rows re-encrypted`);
      }
      left = await countNeedingWork(sql, table, prefix);
    }
    if (left > 0) {
      complete = false;
      log(`  ${table.table}: ${left} rows were locked by other transactions; run again`);
    }
  }
  log(complete ? `Complete: ${rotated} rows re-encrypted` : `Incomplete: ${rotated} rows re-encrypted`);
  return { rotated, complete };
}

async function main(): Promise<void> {
  await withOwnerDatabase(
    'the connection string of the database to re-encrypt (as its owner), e.g.\n' +
      '  DATABASE_URL=postgres://owner@host:5432/aada_lms PII_ENCRYPTION_KEYS=new:…,old:… npm run keys:rotate',
    async (sql) => {
      const result = await rotateKeys(sql, { log: (line) => console.log(line) });
      const files = await rotateFileKeys(sql);
      console.log(
        `Files: ${files.rotated} re-encrypted, ${files.unreadable.length} unreadable ${files.unreadable.join(' ')}`,
      );
      return result.complete && files.unreadable.length === 0 ? 0 : 1;
    },
  );
}

// Run as a command (tsx dev/rotate-keys.ts), not when a test imports rotateKeys.
runAsCommand(__filename, main);
