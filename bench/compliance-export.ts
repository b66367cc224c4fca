// The attendance CSV export at 100,000 and at 1,000,000 rows: time, rows per second and the peak RSS of
// the process doing it, side by side (flat memory: the two peaks differ by little). It runs the export
// exactly as GET reports/compliance/attendance does (lib/reports.ts csvExport over the resource of
// lib/report-resources.ts: server-side cursor, names decrypted a batch at a time, csv-stringify) and
// drops the bytes, on a throw-away embedded PostgreSQL filled with 1,000 students × 1,000 sessions.
//
//   npx tsx bench/compliance-export.ts [--rows-per-student 1000]
//
// Figures are printed, never asserted. The old system took 18.5 s for one export of 10,000 rows.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { ensureAppLogin, prepareDatabase, startThrowawayPostgres, withDatabase } from '../dev/database';
import { encrypt } from '../lib/crypto';
import { EXPORT_RESOURCES } from '../lib/report-resources';
import { csvExport } from '../lib/reports';

const STUDENTS = 1000;
const flag = process.argv.indexOf('--rows-per-student');
const DAYS = flag === -1 ? 1000 : Number(process.argv[flag + 1]);

async function fill(sql: postgres.Sql): Promise<void> {
  const [program] = await sql<{ id: string }[]>`
    insert into programs (code, name, credential_level, total_clock_hours) values ('BENCH', 'Bench', 'certificate', 900)
    returning id`;
  const [module] = await sql<{ id: string }[]>`
    insert into modules (program_id, code, title, delivery_type, clock_hours, position)
    values (${program?.id as string}, 'B1', 'Bench module', 'in_person', 900, 1) returning id`;
  const names = Array.from({ length: STUDENTS }, (_, i) => [`Zoë${i}`, `Nguyễn ${i}`]);
  const [instructor] = await sql<{ id: string }[]>`
    insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext)
    values (${encrypt('instructor@bench.test', 'users.email')}, ${randomBytes(32)},
            ${encrypt('In', 'users.first_name')}, ${encrypt('Structor', 'users.last_name')}) returning id`;
  await sql`
    with students as (
      insert into users (email_ciphertext, email_blind_index, first_name_ciphertext, last_name_ciphertext)
      select e, decode(b, 'hex'), f, l
        from unnest(${names.map((_, i) => encrypt(`s${i}@bench.test`, 'users.email'))}::text[],
                    ${names.map(() => randomBytes(32).toString('hex'))}::text[],
                    ${names.map(([first]) => encrypt(first as string, 'users.first_name'))}::text[],
                    ${names.map(([, last]) => encrypt(last as string, 'users.last_name'))}::text[]) as x(e, b, f, l)
      returning id)
    insert into enrollments (user_id, program_id, start_date) select id, ${program?.id as string}, '2022-12-01' from students`;
  await sql`
    insert into attendance_sessions (module_id, session_type, starts_at, ends_at, recorded_by)
    select ${module?.id as string}, 'lab', t, t + interval '90 minutes', ${instructor?.id as string}
      from generate_series(timestamptz '2023-01-02 14:00Z', timestamptz '2023-01-02 14:00Z' + (${DAYS} - 1) * interval '1 day',
                           interval '1 day') t`;
  await sql`
    insert into attendance_records (session_id, module_id, started_at, ended_at, user_id, enrollment_id, status,
                                    minutes_attended, recorded_by)
    select s.id, s.module_id, s.starts_at, s.ends_at, e.user_id, e.id, 'present', 90, ${instructor?.id as string}
      from attendance_sessions s cross join enrollments e`;
  await sql`vacuum analyze`;
}

async function measure(sql: postgres.Sql, label: string, to: string | undefined) {
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const started = performance.now();
  let bytes = 0;
  let lines = -1;
  for await (const chunk of csvExport(sql, EXPORT_RESOURCES.attendance, to ? { to } : {})) {
    bytes += Buffer.byteLength(chunk);
    for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) lines++;
  }
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const seconds = (performance.now() - started) / 1000;
  const mb = (value: number) => (value / 1024 / 1024).toFixed(1);
  console.log(
    `| ${label} | ${lines.toLocaleString('en')} | ${seconds.toFixed(2)} | ${Math.round(lines / seconds).toLocaleString('en')} | ` +
      `${mb(bytes)} | ${mb(peak)} | ${mb(peak - before)} |`,
  );
}

async function main(): Promise<void> {
  const server = await startThrowawayPostgres('bench-export');
  try {
    await prepareDatabase(server.adminUrl, 'aada_bench_export');
    const owner = postgres(withDatabase(server.adminUrl, 'aada_bench_export'), { max: 2, onnotice: () => {} });
    Object.assign(process.env, { APP_ENV: 'development', DATABASE_URL: server.adminUrl });
    const filling = performance.now();
    await fill(owner);
    await owner.end();
    console.error(
      `filled ${(STUDENTS * DAYS).toLocaleString('en')} attendance lines in ${((performance.now() - filling) / 1000).toFixed(1)} s`,
    );
    const appUrl = await ensureAppLogin(server.adminUrl, 'aada_bench_export');
    const sql = postgres(appUrl, { max: 2, onnotice: () => {} });
    console.log('| export | rows | seconds | rows/s | CSV MB | peak RSS MB | RSS growth MB |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    // A tenth of the days: a tenth of the rows.
    const tenth = new Date(Date.UTC(2023, 0, 2) + (DAYS / 10 - 1) * 86_400_000).toISOString().slice(0, 10);
    await measure(sql, 'attendance CSV, 1/10', tenth);
    await measure(sql, 'attendance CSV, all', undefined);
    await sql.end();
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
