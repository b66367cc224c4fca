// The benchmark's data: a school of N students with a realistic shape, written fast and reproducibly.
//
//   npm run bench:generate -- --students 10000 [--audit-per-student 100] [--seed 42] [--database-url URL]
//
// Deterministic: bench/school.ts decides every row from a seeded PRNG, ids included, and dates count
// back from the start of the current UTC day; only ciphertexts differ (AES-GCM draws a random nonce).
// Fast: every table is written with COPY, in chunks of a few thousand rows, while the next chunk is
// being built; the seed's indexes (0002) are dropped during the load and rebuilt once at the end,
// which is cheaper than maintaining them row by row. PII is encrypted in-process with lib/crypto,
// exactly as the API stores it. Encryption stays on the main thread: it costs ~0.12 ms per student
// (three AES-GCM values, an email HMAC and ~15 name-prefix HMACs), ~1 s per 10,000 students, and a
// CPU profile of a run shows this process idle three quarters of the time, waiting on the server's
// COPY: worker threads would only compete with PostgreSQL for the second core.
//
// Without --database-url it writes into the embedded PostgreSQL of bench/database.ts, database
// `aada_bench`, which it recreates from scratch. With --database-url it migrates that database (the
// URL must be its owner's) and fills it; it refuses a database that already has data.
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { prepareDatabase } from '../dev/database';
import { rollUpClosedAuditDays, SUMMARY_MAX_DAYS } from '../lib/audit-trail';
import { migrateUp } from '../lib/migrations';
import { hashPassword } from '../lib/passwords';
import { BENCH_DATABASE, BENCH_SECRETS, setSeedIndexes, startBenchPostgres } from './database';
import { BENCH_DOMAIN, BENCH_PASSWORD, makePlan, tableLoads } from './school';
import { type CopyValue, Json, startOfUtcDay, type TableLoad } from './school-plan';

export interface GenerateOptions {
  students: number;
  /** Audit rows per student (default 100), spread over the last two years. */
  auditPerStudent?: number;
  seed?: number;
  /** Dates count back from here; default: the start of the current UTC day. */
  now?: Date;
  /** Progress bar on stderr (default: off). */
  progress?: boolean;
}

export interface GenerateResult {
  rows: Record<string, number>;
  /** Seconds spent per table, and on the index build and vacuum (`indexes`, `vacuum`). */
  timings: Record<string, number>;
  totalRows: number;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------------
// COPY
// ---------------------------------------------------------------------------------------------------

const COPY_CHUNK_ROWS = 5_000;
const COPY_SPECIAL = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const escapeCopy = (text: string) => text.replace(COPY_SPECIAL, (char) => COPY_ESCAPES[char] as string);
const byteaText = (bytes: Buffer) => `\\x${bytes.toString('hex')}`;
const arrayLiteral = (items: readonly (string | Buffer)[]) =>
  `{${items
    .map((item) => `"${(Buffer.isBuffer(item) ? byteaText(item) : item).replace(/[\\"]/g, (char) => `\\${char}`)}"`)
    .join(',')}}`;

/** One value in COPY's text format. */
export function copyValue(value: CopyValue): string {
  if (value === null) return '\\N';
  if (typeof value === 'string') return escapeCopy(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return escapeCopy(byteaText(value));
  if (value instanceof Json) return escapeCopy(JSON.stringify(value.value));
  return escapeCopy(arrayLiteral(value));
}

/**
 * Starts `COPY … FROM STDIN` and returns its stream with a promise that rejects with the server's
 * error. postgres.js 3.4.9 never settles the stream when the server rejects the data after end()
 * (porsager/postgres#1173: foreign-key and constraint errors arrive then), but it does hand the
 * error to the query's reject(), which this wraps. Without it a bad row hangs the generator.
 */
async function copyIn(sql: postgres.Sql, statement: string): Promise<{ writable: Writable; failed: Promise<never> }> {
  const query = sql.unsafe(statement) as unknown as { reject(error: unknown): void; writable(): Promise<Writable> };
  const failed = new Promise<never>((_, reject) => {
    const original = query.reject;
    query.reject = (error) => {
      reject(error);
      original(error);
    };
  });
  failed.catch(() => {}); // raced below; never an unhandled rejection
  return { writable: await Promise.race([query.writable(), failed]), failed };
}

async function copyTable(sql: postgres.Sql, load: TableLoad, onRows: (count: number) => void): Promise<void> {
  const { writable, failed } = await copyIn(sql, `copy ${load.table} (${load.columns}) from stdin`);
  function* chunks() {
    let lines: string[] = [];
    for (const row of load.rows()) {
      lines.push(row.map(copyValue).join('\t'));
      if (lines.length === COPY_CHUNK_ROWS) {
        yield `${lines.join('\n')}\n`;
        onRows(lines.length);
        lines = [];
      }
    }
    if (lines.length > 0) {
      yield `${lines.join('\n')}\n`;
      onRows(lines.length);
    }
  }
  await Promise.race([pipeline(Readable.from(chunks(), { objectMode: false }), writable), failed]);
}

// ---------------------------------------------------------------------------------------------------
// Progress on stderr
// ---------------------------------------------------------------------------------------------------

function progressBar(total: number, enabled: boolean) {
  const started = performance.now();
  let done = 0;
  let label = '';
  let lastDraw = 0;
  let lastTenth = -1;
  const tty = process.stderr.isTTY === true;
  const draw = (force: boolean) => {
    if (!enabled) return;
    const now = performance.now();
    const fraction = total === 0 ? 1 : Math.min(1, done / total);
    const rate = Math.round(done / Math.max(0.001, (now - started) / 1000));
    const text = `${label.padEnd(28)} ${(fraction * 100).toFixed(0).padStart(3)}%  ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} rows  ${rate.toLocaleString('en-US')} rows/s`;
    if (tty) {
      if (!force && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
    } else if (Math.floor(fraction * 10) > lastTenth || force) {
      lastTenth = Math.floor(fraction * 10);
      process.stderr.write(`${text}\n`);
    }
  };
  return {
    phase(name: string) {
      label = name;
      draw(true);
    },
    add(count: number) {
      done += count;
      draw(false);
    },
    finish() {
      draw(true);
      if (enabled && tty) process.stderr.write('\n');
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------

/**
 * Fills an empty, migrated database (`sql` must connect as the tables' owner). Returns the rows
 * written per table. Used by the CLI below and by the smoke test at a tiny size.
 */
export async function generate(sql: postgres.Sql, options: GenerateOptions): Promise<GenerateResult> {
  const started = performance.now();
  const [existing] = await sql<{ present: boolean }[]>`
    select exists (select from users) or exists (select from programs) as present`;
  if (existing?.present) throw new Error('the database already has users or programmes; generate into an empty one');

  const plan = makePlan({
    students: options.students,
    auditPerStudent: options.auditPerStudent ?? 100,
    seed: options.seed ?? 42,
    now: options.now ?? startOfUtcDay(new Date()),
  });
  // One hash for every generated account (they share the published bench password): hashing
  // 100,000 passwords with Argon2id would take an hour and measure nothing.
  const passwordHash = await hashPassword(BENCH_PASSWORD);
  // Foreign keys are checked (the data must be valid, not just fast to load): key order matters.
  const { relational, audit } = tableLoads(plan, passwordHash, options.seed ?? 42);
  const totalRows = [...relational, audit].reduce((sum, table) => sum + table.count, 0);
  const progress = progressBar(totalRows, options.progress ?? false);

  const timings: Record<string, number> = {};
  const active = new Set<string>();
  const timed = async (name: string, work: () => Promise<void>) => {
    active.add(name);
    progress.phase([...active].join(' + '));
    const began = performance.now();
    await work();
    timings[name] = (performance.now() - began) / 1000;
    active.delete(name);
  };
  await timed('drop indexes', () => setSeedIndexes(sql, 'down').then(() => {}));
  const rows: Record<string, number> = {};
  const load = (table: TableLoad) =>
    timed(table.table, () =>
      copyTable(sql, table, (count) => {
        rows[table.table] = (rows[table.table] ?? 0) + count;
        progress.add(count);
      }),
    );
  // The server is the bottleneck (one backend parses the COPY stream and checks the foreign keys,
  // while this process idles three quarters of the time), so the audit trail, which references
  // nothing, streams over a second connection while the other tables load in key order.
  await Promise.all([
    (async () => {
      for (const table of relational) await load(table);
    })(),
    load(audit),
  ]);
  // The receipt counter continues after the generated payments' numbers (gap-free from there).
  await sql`update receipt_counter set last_issued = coalesce((select max(receipt_number) from ledger_entries), 0)`;
  await timed('build indexes', () => setSeedIndexes(sql, 'up').then(() => {}));
  // What autovacuum would have done on a live system: statistics and the visibility map.
  await timed('vacuum analyze', () => sql.unsafe('vacuum analyze').then(() => {}));
  // What the hourly maintenance timer would have done by now: the closed days of the last year rolled up.
  await timed('audit roll-up', () => rollUpClosedAuditDays(sql, SUMMARY_MAX_DAYS + 1).then(() => {}));
  progress.finish();
  return { rows, timings, totalRows, seconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------

function parseOptions() {
  const { values } = parseArgs({
    options: {
      students: { type: 'string', default: '10000' },
      'audit-per-student': { type: 'string', default: '100' },
      seed: { type: 'string', default: '42' },
      'database-url': { type: 'string' },
    },
  });
  const students = Number(values.students);
  const auditPerStudent = Number(values['audit-per-student']);
  const seed = Number(values.seed);
  if (!Number.isInteger(students) || students < 1 || students > 1_000_000)
    throw new Error('--students: 1 to 1,000,000');
  if (!Number.isInteger(auditPerStudent) || auditPerStudent < 0) throw new Error('--audit-per-student: 0 or more');
  if (!Number.isInteger(seed)) throw new Error('--seed: an integer');
  return { students, auditPerStudent, seed, databaseUrl: values['database-url'] };
}

async function main() {
  const options = parseOptions();
  // The bench keys, before lib/crypto reads its configuration (see bench/database.ts). The generator is
  // a local tool writing fake people: development, so production's deployment settings are not asked
  // for (the app the bench runs is configured as production by bench/database.ts).
  Object.assign(process.env, { APP_ENV: 'development', ...BENCH_SECRETS });
  let stopServer: (() => Promise<void>) | undefined;
  let ownerUrl = options.databaseUrl;
  const began = performance.now();
  try {
    if (ownerUrl) {
      const owner = postgres(ownerUrl, { max: 1, onnotice: () => {} });
      try {
        await migrateUp(owner);
      } finally {
        await owner.end();
      }
    } else {
      const server = await startBenchPostgres();
      stopServer = server.stop;
      console.error(`embedded PostgreSQL on 127.0.0.1:${server.port} (data in .data/bench-postgres)`);
      const admin = postgres(server.adminUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists ${BENCH_DATABASE} with (force)`);
      await admin.end();
      ownerUrl = (await prepareDatabase(server.adminUrl, BENCH_DATABASE)).adminUrl;
    }
    process.env.DATABASE_URL ??= ownerUrl;
    const sql = postgres(ownerUrl, { max: 2, onnotice: () => {} });
    try {
      const result = await generate(sql, { ...options, progress: true });
      printSummary(result, (performance.now() - began) / 1000);
    } finally {
      await sql.end();
    }
  } finally {
    await stopServer?.();
  }
}

function printSummary(result: GenerateResult, totalSeconds: number) {
  const n = (value: number) => value.toLocaleString('en-US');
  console.log(`\n${'step'.padEnd(24)}${'rows'.padStart(12)}${'seconds'.padStart(10)}${'rows/s'.padStart(12)}`);
  for (const [step, seconds] of Object.entries(result.timings)) {
    const rows = result.rows[step];
    const rate = rows === undefined ? '' : n(Math.round(rows / Math.max(seconds, 0.001)));
    console.log(
      `${step.padEnd(24)}${(rows === undefined ? '' : n(rows)).padStart(12)}${seconds.toFixed(2).padStart(10)}${rate.padStart(12)}`,
    );
  }
  console.log(
    `\n${n(result.totalRows)} rows in ${result.seconds.toFixed(1)} s (${n(Math.round(result.totalRows / result.seconds))} rows/s, ` +
      `indexes and vacuum included); ${totalSeconds.toFixed(1)} s with the server start and migrations`,
  );
  console.log(
    `sign in as student<N>@${BENCH_DOMAIN} (N = 1…) or <role>@${BENCH_DOMAIN} (admin, staff, instructor, registrar, ` +
      `finance, admissions_counselor, admissions_manager) with the password ${BENCH_PASSWORD}`,
  );
}

// Run as a command (tsx), not when imported (the smoke test imports generate()).
if (typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
