// The roster export (issue 15, item 6) at 10,000 and at 100,000 students: seconds, rows per second, bytes
// and the peak RSS of the process, for CSV and NDJSON, two ways: the export machinery alone (lib/reports.ts
// over the `students` resource of lib/report-resources.ts: server-side cursor, 1,000 rows a batch decrypted
// in one pass) and the whole request, `GET /api/reports/compliance/students` through the local host in this
// process as a registrar (token check, the audit row committed before the 200, HTTP chunking), the body
// read and dropped. On a throw-away embedded PostgreSQL with fsync on (as in Azure); each student has one
// enrollment. Figures are printed, never asserted. Issue 15's targets: 10,000 in ≤ 0.25 s, 100,000 in
// ≤ 2.5 s, flat memory.
//
//   nice -n 10 npx tsx bench/roster-export.ts
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { ensureAppLogin, prepareDatabase, REPO_ROOT, startThrowawayPostgres, withDatabase } from '../dev/database';
import { installFunctionsCoreStandIn, loadFunctionModules, startHost } from '../dev/functions-host';
import { issueAccessToken } from '../lib/auth';
import { decrypt, emailBlindIndex, encrypt } from '../lib/crypto';
import { closePool } from '../lib/db';
import { EXPORT_RESOURCES } from '../lib/report-resources';
import { csvExport, EXPORT_BATCH, ndjsonExport } from '../lib/reports';

const SIZES = [10_000, 100_000];
const CHUNK = 10_000;

/** Students `from`..`to - 1`, stored as the API stores them, each enrolled in the programme. */
async function addStudents(sql: postgres.Sql, programId: string, from: number, to: number): Promise<void> {
  for (let start = from; start < to; start += CHUNK) {
    const n = Math.min(CHUNK, to - start);
    const index = Array.from({ length: n }, (_, i) => start + i);
    const emails = index.map((i) => `student.${i}@bench.test`);
    await sql`
      with created as (
        insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext)
        select e, decode(b, 'hex'), f, l
          from unnest(${emails.map((email) => encrypt(email, 'users.email'))}::text[],
                      ${emails.map((email) => emailBlindIndex(email).toString('hex'))}::text[],
                      ${index.map((i) => encrypt(`Zoë${i}`, 'users.first_name'))}::text[],
                      ${index.map((i) => encrypt(`Nguyễn ${i}`, 'users.last_name'))}::text[]) as x(e, b, f, l)
        returning id),
      granted as (insert into user_roles (user_id, role_name) select id, 'student' from created)
      insert into enrollments (user_id, program_id, start_date) select id, ${programId}, '2026-01-05' from created`;
  }
  await sql`vacuum analyze`;
}

interface Figures {
  rows: number;
  bytes: number;
  seconds: number;
  peak: number;
  before: number;
}

/** Reads `chunks` to the end, counting lines and bytes, sampling the RSS every 20 ms. */
async function timed(chunks: AsyncIterable<string | Uint8Array>, headerLines: number): Promise<Figures> {
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const started = performance.now();
  let bytes = 0;
  let lines = 0;
  for await (const chunk of chunks) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += buffer.byteLength;
    for (let i = buffer.indexOf(0x0a); i !== -1; i = buffer.indexOf(0x0a, i + 1)) lines++;
  }
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { rows: lines - headerLines, bytes, seconds, peak, before };
}

const mb = (value: number) => (value / 1024 / 1024).toFixed(1);

function print(label: string, figures: Figures): void {
  const { rows, bytes, seconds, peak, before } = figures;
  console.log(
    `| ${label} | ${rows.toLocaleString('en')} | ${seconds.toFixed(2)} | ${Math.round(rows / seconds).toLocaleString('en')} | ` +
      `${mb(bytes)} | ${mb(peak)} | ${mb(peak - before)} |`,
  );
}

/** Where the time goes: the roster's query through the cursor alone (no decryption, nothing written). */
async function cursorOnly(sql: postgres.Sql): Promise<Figures> {
  const reserved = await sql.reserve();
  const before = process.memoryUsage().rss;
  const started = performance.now();
  let rows = 0;
  for await (const batch of EXPORT_RESOURCES.students.query(reserved, {}).cursor(EXPORT_BATCH)) rows += batch.length;
  reserved.release();
  return { rows, bytes: 0, seconds: (performance.now() - started) / 1000, peak: process.memoryUsage().rss, before };
}

/** And the decryption alone: one value (AES-256-GCM, one createDecipheriv), many times. */
function decryptionMicroseconds(): number {
  const value = encrypt('Nguyễn 12345', 'users.last_name');
  const n = 30_000;
  const started = performance.now();
  for (let i = 0; i < n; i++) decrypt(value, 'users.last_name');
  return ((performance.now() - started) * 1000) / n;
}

/** The app's functions, loaded into this process and served by the local host on a free port. */
async function startApp(): Promise<{ url: string; close(): Promise<void> }> {
  installFunctionsCoreStandIn();
  const dir = path.join(REPO_ROOT, 'functions');
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .sort()
    .map((file) => path.join(dir, file));
  await loadFunctionModules(files);
  const host = await startHost({ port: 0 });
  return { url: host.url, close: () => host.close() };
}

async function main(): Promise<void> {
  const server = await startThrowawayPostgres('bench-roster', { durable: true });
  try {
    await prepareDatabase(server.adminUrl, 'aada_bench_roster');
    const owner = postgres(withDatabase(server.adminUrl, 'aada_bench_roster'), { max: 2, onnotice: () => {} });
    const appUrl = await ensureAppLogin(server.adminUrl, 'aada_bench_roster');
    Object.assign(process.env, { APP_ENV: 'development', DATABASE_URL: appUrl });
    const [program] = await owner<{ id: string }[]>`
      insert into programs (code, name, credential_level, total_clock_hours) values ('BENCH', 'Bench', 'certificate', 900)
      returning id`;
    const [registrar] = await owner<{ id: string }[]>`
      with created as (
        insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext)
        values (${encrypt('registrar@bench.test', 'users.email')}, ${emailBlindIndex('registrar@bench.test')},
                ${encrypt('Reg', 'users.first_name')}, ${encrypt('Istrar', 'users.last_name')}) returning id),
      granted as (insert into user_roles (user_id, role_name) select id, 'registrar' from created)
      select id from created`;
    const token = await issueAccessToken({ id: registrar?.id as string, roles: ['registrar'] }, randomUUID());
    const app = await startApp();
    const sql = postgres(appUrl, { max: 2, onnotice: () => {} });
    const roster = EXPORT_RESOURCES.students;
    const request = async (format: string) => {
      const response = await fetch(`${app.url}/reports/compliance/students?format=${format}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (response.status !== 200) throw new Error(`GET roster ${format}: ${response.status} ${await response.text()}`);
      return response.body as unknown as AsyncIterable<Uint8Array>;
    };

    console.log('| roster export | students | seconds | rows/s | MB | peak RSS MB | RSS growth MB |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    let students = 0;
    for (const size of SIZES) {
      const filling = performance.now();
      await addStudents(owner, program?.id as string, students, size);
      students = size;
      console.error(
        `${size.toLocaleString('en')} students stored (${((performance.now() - filling) / 1000).toFixed(1)} s)`,
      );
      // A first pass warms the caches and the code; the figures are the second.
      await timed(csvExport(sql, roster, {}), 1);
      print(`machinery, CSV, ${size.toLocaleString('en')}`, await timed(csvExport(sql, roster, {}), 1));
      print(`machinery, NDJSON, ${size.toLocaleString('en')}`, await timed(ndjsonExport(sql, roster, {}), 0));
      print(`GET …/students?format=csv, ${size.toLocaleString('en')}`, await timed(await request('csv'), 1));
      print(`GET …/students?format=ndjson, ${size.toLocaleString('en')}`, await timed(await request('ndjson'), 0));
      print(`its SQL through the cursor alone, ${size.toLocaleString('en')}`, await cursorOnly(sql));
    }
    const perValue = decryptionMicroseconds();
    console.log(
      `\ndecryption: ${perValue.toFixed(1)} µs a value; the roster decrypts 3 a student: ` +
        `${((perValue * 3 * SIZES[SIZES.length - 1]!) / 1e6).toFixed(2)} s of CPU for ${SIZES[SIZES.length - 1]!.toLocaleString('en')}`,
    );
    await sql.end();
    await owner.end();
    await app.close();
    await closePool(1);
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
