// `npm run keys:reindex`: moves every email blind index and name-token set made with an older
// people-index key (PII_BLIND_INDEX_KEY) to the current one (its first entry), so the older key can
// be removed from configuration. `npm run keys:reindex -- --retire` then checks that no row is left
// on any key but the current one, and refuses (exit 1, with the counts) while one is.
//
// Rotating the index key, step by step (README "Operator commands"):
//   1. PII_BLIND_INDEX_KEY=new:<base64>,<the previous value> on the app and deploy: new rows are
//      indexed with `new`, every lookup (sign-in, links, search, uniqueness) tries both keys;
//   2. DATABASE_URL=<owner connection> PII_BLIND_INDEX_KEY=<same value> npm run keys:reindex;
//      it may be stopped at any time (Ctrl-C, a kill) and run again: it continues where it stopped;
//   3. npm run keys:reindex -- --retire, and when it says so, keep only the `new` entry.
// The xAPI store's indexes are not re-indexed: they stay on PII_XAPI_INDEX_KEY (lib/config.ts).
//
// How: per table, batches of `--batch-size` rows in primary-key order, each batch one transaction that
// locks its rows with FOR UPDATE SKIP LOCKED and writes them back with one UPDATE. A row's key shows in
// its index (lib/crypto.ts indexPrefix), so the query selects only rows not on the current key: a run
// that was killed simply starts again and finds what is left. `--pause-ms` waits between batches to
// spare a busy server.
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type postgres from 'postgres';
import {
  decrypt,
  emailBlindIndex,
  type IndexKey,
  indexKeys,
  indexLengths,
  indexPrefix,
  nameSearchTokens,
} from '../lib/crypto';
import { BYTEA_ARRAY } from '../lib/db';
import { runAsCommand, withOwnerDatabase } from './key-command';

type AnySql = postgres.Sql | postgres.TransactionSql;

/** The tables holding people indexes: the email's, and for accounts the name tokens. */
interface IndexedTable {
  table: 'users' | 'registration_requests' | 'leads';
  emailField: string;
  /** The name columns the tokens are made of (users only). */
  names?: { first: string; last: string };
  /** A row whose address is already indexed under the current key is superseded (deleted) instead of moved. */
  supersededByNewer?: boolean;
}

const TABLES: IndexedTable[] = [
  { table: 'users', emailField: 'users.email', names: { first: 'users.first_name', last: 'users.last_name' } },
  // A request made during the rotation (under the new key) replaced the address's older one.
  { table: 'registration_requests', emailField: 'registration_requests.email', supersededByNewer: true },
  { table: 'leads', emailField: 'leads.email' },
];

/** SQL that is true when `value` (an index) was made with `key` (its length and `<id>:` prefix tell). */
function madeWith(sql: AnySql, value: postgres.Fragment, key: IndexKey, kind: 'email' | 'nameToken') {
  const length = indexLengths(key.id)[kind];
  const prefix = indexPrefix(key.id);
  if (prefix.length === 0) return sql`coalesce(octet_length(${value}) = ${length}, false)`;
  return sql`coalesce(octet_length(${value}) = ${length} and substr(${value}, 1, ${prefix.length}) = ${prefix}, false)`;
}

/** Rows with an index not made with `key` (for the tokens: the first token; all of a row's are made together). */
function notOn(sql: AnySql, table: IndexedTable, key: IndexKey) {
  const email = sql`not ${madeWith(sql, sql`email_blind_index`, key, 'email')}`;
  if (!table.names) return email;
  return sql`(${email} or (cardinality(name_search_tokens) > 0
                           and not ${madeWith(sql, sql`name_search_tokens[1]`, key, 'nameToken')}))`;
}

function onKey(sql: AnySql, table: IndexedTable, key: IndexKey) {
  const email = madeWith(sql, sql`email_blind_index`, key, 'email');
  if (!table.names) return email;
  return sql`(${email} or (cardinality(name_search_tokens) > 0
                          and ${madeWith(sql, sql`name_search_tokens[1]`, key, 'nameToken')}))`;
}

interface Row {
  id: string;
  email_ciphertext: string;
  first_name_ciphertext?: string;
  last_name_ciphertext?: string;
}

export interface ReindexOptions {
  batchSize?: number;
  /** Wait this long after each batch (a busy server; the tests use it to kill a run in the middle). */
  pauseMs?: number;
  log?: (line: string) => void;
  /** Stop after this many batches (to resume later). */
  maxBatches?: number;
}

export interface ReindexResult {
  reindexed: number;
  /** True when every row of every table is on the current key. */
  complete: boolean;
}

function recompute(table: IndexedTable, row: Row): { email: Buffer; tokens: Buffer[] | null } {
  try {
    const email = emailBlindIndex(decrypt(row.email_ciphertext, table.emailField));
    if (!table.names) return { email, tokens: null };
    const first = decrypt(row.first_name_ciphertext as string, table.names.first);
    const last = decrypt(row.last_name_ciphertext as string, table.names.last);
    return { email, tokens: nameSearchTokens(first, last) };
  } catch (error) {
    // Never the value: only where it is and why it cannot be read.
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${table.table} (id ${row.id}): ${reason}`);
  }
}

/** One batch in one transaction: how many rows it moved (or removed as superseded) and the last id it saw. */
async function reindexBatch(
  sql: postgres.Sql,
  table: IndexedTable,
  after: string | undefined,
  batchSize: number,
): Promise<{ moved: number; lastId: string | undefined }> {
  const current = indexKeys()[0] as IndexKey;
  return sql.begin(async (tx) => {
    const rows = await tx<Row[]>`
      select id, email_ciphertext ${table.names ? tx`, first_name_ciphertext, last_name_ciphertext` : tx``}
        from ${tx(table.table)}
       where ${notOn(tx, table, current)} ${after === undefined ? tx`` : tx`and id > ${after}::uuid`}
       order by id
       limit ${batchSize}
         for update skip locked`;
    if (rows.length === 0) return { moved: 0, lastId: undefined };
    const fresh = rows.map((row) => recompute(table, row));
    let ids = rows.map((row) => row.id);
    if (table.supersededByNewer) {
      const superseded = await tx<{ id: string }[]>`
        delete from ${tx(table.table)} as t
         using unnest(${ids}::uuid[], ${tx.array(
           fresh.map((one) => one.email),
           BYTEA_ARRAY,
         )}::bytea[]) as v(id, email)
         where t.id = v.id and exists (select 1 from ${tx(table.table)} o where o.email_blind_index = v.email)
        returning t.id`;
      const gone = new Set(superseded.map((row) => row.id));
      ids = ids.filter((id) => !gone.has(id));
    }
    const kept = rows.flatMap((row, at) => (ids.includes(row.id) ? [fresh[at] as ReturnType<typeof recompute>] : []));
    if (ids.length > 0) {
      const emails = tx.array(
        kept.map((one) => one.email),
        BYTEA_ARRAY,
      );
      if (table.names) {
        // A bytea[][] cannot hold rows of different lengths: each row's tokens travel as one hex list.
        const tokens = kept.map((one) => (one.tokens ?? []).map((token) => token.toString('hex')).join(','));
        await tx`
          update ${tx(table.table)} as t
             set email_blind_index = v.email,
                 name_search_tokens = (select coalesce(array_agg(decode(h, 'hex')), '{}')
                                         from unnest(string_to_array(nullif(v.tokens, ''), ',')) h)
            from unnest(${ids}::uuid[], ${emails}::bytea[], ${tokens}::text[]) as v(id, email, tokens)
           where t.id = v.id`;
      } else {
        await tx`
          update ${tx(table.table)} as t set email_blind_index = v.email
            from unnest(${ids}::uuid[], ${emails}::bytea[]) as v(id, email)
           where t.id = v.id`;
      }
    }
    return { moved: rows.length, lastId: rows[rows.length - 1]?.id };
  });
}

/** Rows of each table on each configured key, and on none of them (a key already removed). */
export async function indexKeyUsage(sql: postgres.Sql): Promise<{ table: string; key: string; rows: number }[]> {
  const keys = indexKeys();
  const usage: { table: string; key: string; rows: number }[] = [];
  for (const table of TABLES) {
    const counts = keys.map((key) => sql`count(*) filter (where ${onKey(sql, table, key)})::int`);
    const anyKey = keys.map((key) => onKey(sql, table, key)).reduce((all, one) => sql`${all} or ${one}`);
    const [row] = await sql<{ counts: number[]; unknown: number }[]>`
      select array[${counts.reduce((all, one) => sql`${all}, ${one}`)}] as counts,
             count(*) filter (where not (${anyKey}))::int as unknown
        from ${sql(table.table)}`;
    keys.forEach((key, at) => {
      usage.push({ table: table.table, key: keyName(key), rows: row?.counts[at] ?? 0 });
    });
    usage.push({ table: table.table, key: '(a key not configured)', rows: row?.unknown ?? 0 });
  }
  return usage;
}

const keyName = (key: IndexKey) => (key.id === null ? '(the key without an id)' : key.id);

/** Moves every people index not on the current key to it. Safe to interrupt and to run again. */
export async function reindexPeople(sql: postgres.Sql, options: ReindexOptions = {}): Promise<ReindexResult> {
  const batchSize = options.batchSize ?? 500;
  const log = options.log ?? (() => {});
  const current = indexKeys()[0] as IndexKey;
  let reindexed = 0;
  let batches = 0;
  log(`Re-indexing with index key ${keyName(current)} in batches of ${batchSize}`);
  for (const table of TABLES) {
    let after: string | undefined;
    let done = 0;
    for (;;) {
      if (options.maxBatches !== undefined && batches >= options.maxBatches) {
        log(`Stopped after ${batches} batches (${reindexed} rows); run again to continue`);
        return { reindexed, complete: false };
      }
      const batch = await reindexBatch(sql, table, after, batchSize);
      batches++;
      if (batch.moved === 0) break;
      after = batch.lastId;
      done += batch.moved;
      reindexed += batch.moved;
      log(`  ${table.table}: ${done} rows re-indexed (batch committed)`);
      if (options.pauseMs) await sleep(options.pauseMs);
    }
  }
  const left = await rowsNotOnCurrent(sql);
  log(left === 0 ? `Complete: ${reindexed} rows re-indexed` : `Incomplete: ${left} rows were locked; run again`);
  return { reindexed, complete: left === 0 };
}

async function rowsNotOnCurrent(sql: postgres.Sql): Promise<number> {
  const current = indexKeys()[0] as IndexKey;
  let left = 0;
  for (const table of TABLES) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from ${sql(table.table)} where ${notOn(sql, table, current)}`;
    left += row?.n ?? 0;
  }
  return left;
}

/**
 * Whether the keys after the first may be removed from PII_BLIND_INDEX_KEY: only when no row of any
 * table is indexed under anything but the current key. Returns the lines to print and the verdict.
 */
export async function checkRetirement(sql: postgres.Sql): Promise<{ retirable: boolean; lines: string[] }> {
  const current = keyName(indexKeys()[0] as IndexKey);
  const blocking = (await indexKeyUsage(sql)).filter((use) => use.key !== current && use.rows > 0);
  if (blocking.length === 0) {
    return {
      retirable: true,
      lines: [`No row uses an index key other than ${current}: keep only that entry of PII_BLIND_INDEX_KEY.`],
    };
  }
  return {
    retirable: false,
    lines: [
      'Refused: rows still use an older index key; run npm run keys:reindex first.',
      ...blocking.map((use) => `  ${use.table}: ${use.rows} rows on ${use.key}`),
    ],
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      retire: { type: 'boolean', default: false },
      'batch-size': { type: 'string', default: '500' },
      'pause-ms': { type: 'string', default: '0' },
    },
  });
  await withOwnerDatabase(
    'the connection string of the database to re-index (as its owner), e.g.\n' +
      '  DATABASE_URL=postgres://owner@host:5432/aada_lms PII_BLIND_INDEX_KEY=new:…,… npm run keys:reindex',
    async (sql) => {
      const batchSize = Number(values['batch-size']);
      const pauseMs = Number(values['pause-ms']);
      if (!Number.isInteger(batchSize) || batchSize < 1 || !Number.isInteger(pauseMs) || pauseMs < 0) {
        console.error('--batch-size is a whole number of at least 1, --pause-ms a whole number of milliseconds');
        process.exit(2);
      }
      if (values.retire) {
        const verdict = await checkRetirement(sql);
        for (const line of verdict.lines) console.log(line);
        return verdict.retirable ? 0 : 1;
      }
      const result = await reindexPeople(sql, { batchSize, pauseMs, log: (line) => console.log(line) });
      return result.complete ? 0 : 1;
    },
  );
}

// Run as a command (tsx dev/reindex-keys.ts), not when a test imports it.
runAsCommand(__filename, main);
