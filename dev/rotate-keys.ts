// `npm run keys:rotate`: re-encrypts every personal-data ciphertext still on an older key with the
// current key (the first of PII_ENCRYPTION_KEYS), so an old key can then be removed from configuration.
//
// Rotating a key, step by step:
//   1. PII_ENCRYPTION_KEYS=new:<base64>,old:<base64> on the app (it now writes with `new`, reads both);
//   2. DATABASE_URL=<owner connection> PII_ENCRYPTION_KEYS=<same value> npm run keys:rotate
//      (the owner, because the app role may not update append-only tables such as document_signatures);
//   3. when it reports "complete", remove `old` from PII_ENCRYPTION_KEYS.
// The blind-index key (PII_BLIND_INDEX_KEY) is not rotated by this command.
//
// Which columns: every column named `*_ciphertext` of a table in schema public, found in the catalogue
// at run time, so a migration that adds one is covered without editing this file.
// Associated data: a value is encrypted with its "field" name as AES-GCM associated data, and must be
// re-encrypted under the same name. The convention is `<table>.<column without _ciphertext>`
// (`users.email`, `leads.phone`, `externships.supervisor_name`); the exceptions are in FIELD_OVERRIDES
// and must match what the code that writes those columns passes to encrypt() (lib/crypto.ts PiiField).
//
// How: per table, batches of `batchSize` rows in primary-key order, each batch one transaction that
// locks its rows with FOR UPDATE SKIP LOCKED (a row a request is changing is skipped, never waited
// for) and writes them back with one UPDATE. Rows already on the current key are filtered out by the
// query, so an interrupted run simply starts again and continues where it stopped; rows skipped
// because they were locked are retried in a further pass. Rewriting a row moves its updated_at (the
// set_updated_at trigger): the stored bytes did change, the content did not.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { currentKeyId, decrypt, encrypt, type PiiField } from '../lib/crypto';

type AnySql = postgres.Sql | postgres.TransactionSql;

/** Fields whose associated-data name is not `<table>.<column>` (see lib/crypto.ts PiiField). */
const FIELD_OVERRIDES: Readonly<Record<string, PiiField>> = {
  'outbox_messages.recipient_ciphertext': 'outbox.recipient',
  'outbox_messages.body_ciphertext': 'outbox.body',
};

const FORMAT_VERSION = 'v1';
/** Name of the key column in a batch's VALUES (not a column name any table uses). */
const ROW_KEY = '__rotation_key';
const MAX_PASSES = 3;
/** Pause before a further pass, so rows a request held a moment ago are free again. */
const PASS_PAUSE_MS = 250;

export interface CiphertextTable {
  table: string;
  /** The single-column primary key batches are ordered by. */
  key: string;
  columns: { name: string; field: PiiField }[];
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
  /** True when no ciphertext on an older key is left in any table. */
  complete: boolean;
}

export function fieldOf(table: string, column: string): PiiField {
  return FIELD_OVERRIDES[`${table}.${column}`] ?? `${table}.${column.replace(/_ciphertext$/, '')}`;
}

/** Every table of schema public with `*_ciphertext` columns, and its primary key. */
export async function ciphertextTables(sql: AnySql): Promise<CiphertextTable[]> {
  const rows = await sql<{ table: string; columns: string[]; key: { name: string; type: string }[] | null }[]>`
    select c.table_name as table,
           array_agg(c.column_name::text order by c.ordinal_position) as columns,
           (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)))
              from pg_index i
              join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = format('%I.%I', 'public', c.table_name)::regclass and i.indisprimary) as key
      from information_schema.columns c
      join information_schema.tables t
        on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
     where c.table_schema = 'public' and c.column_name like '%\\_ciphertext'
     group by c.table_name
     order by c.table_name`;
  return rows.map((row) => {
    // Every table with personal data has a uuid `id`; a batch is updated in one statement joined on it.
    const key = row.key?.length === 1 ? row.key[0] : undefined;
    if (key?.type !== 'uuid') {
      throw new Error(`${row.table}: key rotation needs a single-column uuid primary key to page by`);
    }
    return {
      table: row.table,
      key: key.name,
      columns: row.columns.map((name) => ({ name, field: fieldOf(row.table, name) })),
    };
  });
}

/** Rows of `table` with at least one value not on the current key (`prefix` = `v1.<currentId>.`). */
function onOldKey(sql: AnySql, table: CiphertextTable, prefix: string) {
  return table.columns
    .map(({ name }) => sql`not starts_with(coalesce(${sql(name)}, ${prefix}), ${prefix})`)
    .reduce((all, condition) => sql`${all} or ${condition}`);
}

function reencrypt(table: CiphertextTable, row: Record<string, unknown>, prefix: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const { name, field } of table.columns) {
    const value = row[name];
    if (typeof value !== 'string' || value.startsWith(prefix)) continue;
    try {
      values[name] = encrypt(decrypt(value, field), field);
    } catch (error) {
      // Never the value itself: only where it is and why it cannot be read.
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${table.table}.${name} (${table.key} ${String(row[table.key])}): ${reason}`);
    }
  }
  return values;
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
    const rows = await tx<Record<string, unknown>[]>`
      select ${tx([table.key, ...table.columns.map((column) => column.name)])}
        from ${tx(table.table)}
       where (${onOldKey(tx, table, prefix)})
         ${after === undefined ? tx`` : tx`and ${tx(table.key)} > ${after as string}`}
       order by ${tx(table.key)}
       limit ${batchSize}
         for update skip locked`;
    // Decrypt and encrypt the whole batch first (a bad value aborts before anything is written),
    // then write it back in one statement; NULL in a column's array means "leave it as it is".
    const fresh = rows.map((row) => reencrypt(table, row, prefix));
    if (rows.length > 0) {
      const names = table.columns.map((column) => column.name);
      const assignments = names
        .map((name) => tx`${tx(name)} = coalesce(v.${tx(name)}, t.${tx(name)})`)
        .reduce((all, assignment) => tx`${all}, ${assignment}`);
      const arrays = names
        .map((name) => tx`${fresh.map((values) => values[name] ?? null)}::text[]`)
        .reduce((all, array) => tx`${all}, ${array}`);
      await tx`
        update ${tx(table.table)} as t set ${assignments}
          from unnest(${rows.map((row) => row[table.key] as string)}::uuid[], ${arrays}) as v(${tx([ROW_KEY, ...names])})
         where t.${tx(table.key)} = v.${tx(ROW_KEY)}`;
    }
    return { rotated: rows.length, lastKey: rows[rows.length - 1]?.[table.key] };
  });
}

async function countOnOldKey(sql: postgres.Sql, table: CiphertextTable, prefix: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from ${sql(table.table)} where ${onOldKey(sql, table, prefix)}`;
  return row?.count ?? 0;
}

/** Re-encrypts every ciphertext not on the current key. Safe to interrupt and to run again. */
export async function rotateKeys(sql: postgres.Sql, options: RotateOptions = {}): Promise<RotateResult> {
  const batchSize = options.batchSize ?? 500;
  const log = options.log ?? (() => {});
  const prefix = `${FORMAT_VERSION}.${currentKeyId()}.`;
  let rotated = 0;
  let batches = 0;
  let complete = true;
  log(`Re-encrypting with key "${currentKeyId()}" in batches of ${batchSize}`);
  for (const table of await ciphertextTables(sql)) {
    let left = await countOnOldKey(sql, table, prefix);
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
      left = await countOnOldKey(sql, table, prefix);
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
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error(
      'DATABASE_URL is required: the connection string of the database to re-encrypt (as its owner), e.g.\n' +
        '  DATABASE_URL=postgres://owner@host:5432/aada_lms PII_ENCRYPTION_KEYS=new:…,old:… npm run keys:rotate',
    );
    process.exit(2);
  }
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  try {
    const result = await rotateKeys(sql, { log: (line) => console.log(line) });
    process.exitCode = result.complete ? 0 : 1;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// Run as a command (tsx dev/rotate-keys.ts), not when a test imports rotateKeys.
if (process.argv[1] && path.resolve(process.argv[1]) === __filename) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
