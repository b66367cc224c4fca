// The benchmark: the compiled app, as it runs in production, on the generated data.
//
//   npm run bench:generate                      # once: 10,000 students (see bench/README.md)
//   npm run bench [-- --duration 10 --connections 16 --instances 4 --clients 200]
//
// Parts, in one run so that ratios are taken under the same machine noise:
//  1. cold start: spawn → listening → first response, and the module loading time;
//  2. every scenario of bench/scenarios.ts for a fixed time at a fixed number of connections,
//     as a fraction of the ceiling (one `select 1` through the pool and the wrapper);
//  3. the seed's index claim: the index-sensitive scenarios with migration 0002's indexes dropped,
//     then rebuilt, with EXPLAIN (ANALYZE, BUFFERS) of each main query before and after;
//  4. scale-out within the connection budget: the server restarted with max_connections=40, N
//     instances with the pool the formula gives, then the seed's pool (20 + 40 overflow = 60 per
//     worker), both driven by far more clients than connections; peak connections sampled;
//  5. the table as JSON and an SVG chart under bench/results/ (git-ignored).
// Nothing is asserted: the figures are printed, and bench/README.md says what they mean.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { ensureAppLogin, prepareDatabase, REPO_ROOT, withDatabase } from '../dev/database';
import { derivePoolMax } from '../lib/config';
import {
  BENCH_DATABASE,
  BENCH_SECRETS,
  type BenchServer,
  productionEnv,
  setSeedIndexes,
  startBenchPostgres,
  startBenchServices,
} from './database';
import { type Instance, startInstance } from './instances';
import { drive, summarize, walkPages } from './load';
import {
  chartSvg,
  type IndexComparisonRow,
  indexTable,
  type MachineInfo,
  machineInfo,
  planSummary,
  type ScaleOutRun,
  scaleOutTable,
  scenarioTable,
} from './report';
import { type BenchContext, explain, runScenario, SCENARIOS, type ScenarioOutcome } from './scenarios';
import { BENCH_NAME_PREFIX, BENCH_PASSWORD, staffEmail } from './school';
import { activeStudentEmails, signInOrMint } from './sessions';

const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
const STUDENTS_DEEP_FRACTION = 0.9;
const AUDIT_DEEP_ROWS = 100_000;
const WALK_PAGE = 200;
const SIGN_IN_ACCOUNTS = 1_000;
/** The scale-out part's server: small enough that the seed's pools overflow it. */
const SCALE_OUT_MAX_CONNECTIONS = 40;
/** Headroom kept out of the formula: PostgreSQL's 3 superuser slots, migrations, an operator's psql. */
const SCALE_OUT_RESERVED = 10;
const SCALE_OUT_WARMUP_SECONDS = 2;
/** The seed's SQLAlchemy pool per Gunicorn worker: pool_size 20 + max_overflow 40. */
const SEED_POOL_PER_WORKER = 60;

/**
 * Every benchmarked instance: production settings plus a sign-in throttle lifted for the run
 * (all load comes from 127.0.0.1, which the per-source limit of 30 a minute would turn into 429s;
 * the throttle's SQL still runs on every sign-in).
 */
const INSTANCE_ENV = { LOGIN_SOURCE_LIMIT: '10000000', LOGIN_ACCOUNT_CEILING: '10000000' };

interface Options {
  duration: number;
  connections: number;
  instances: number;
  clients: number;
  skip: Set<string>;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '16' },
      instances: { type: 'string', default: '4' },
      clients: { type: 'string', default: '200' },
      skip: { type: 'string', default: '' },
    },
  });
  const positive = (name: string, value: string | undefined) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`--${name}: a positive integer`);
    return parsed;
  };
  return {
    duration: positive('duration', values.duration),
    connections: positive('connections', values.connections),
    instances: positive('instances', values.instances),
    clients: positive('clients', values.clients),
    // --skip coldstart,index,scaleout
    skip: new Set((values.skip ?? '').split(',').filter(Boolean)),
  };
}

/** The pool an instance with this environment gets (lib/config's formula). */
const poolOf = (env: Record<string, string>) =>
  derivePoolMax({
    DB_POOL_MAX: env.DB_POOL_MAX === undefined ? undefined : Number(env.DB_POOL_MAX),
    DB_MAX_CONNECTIONS: Number(env.DB_MAX_CONNECTIONS),
    DB_RESERVED_CONNECTIONS: Number(env.DB_RESERVED_CONNECTIONS),
    MAX_INSTANCES: Number(env.MAX_INSTANCES),
  });

const log = (line: string) => process.stderr.write(`${line}\n`);
const say = (text = '') => console.log(text);

// ---------------------------------------------------------------------------------------------------
// Signing in and finding the data the scenarios need
// ---------------------------------------------------------------------------------------------------

/** Walks a list from its first page to about `depth` rows and returns the cursor found there. */
async function deepCursor(url: string, headers: Record<string, string>, depth: number) {
  const walk = await walkPages(url, headers, depth);
  const last = walk.cursors.filter((one) => one.depth <= depth).at(-1);
  return last && { ...last, seconds: walk.result.seconds, pages: walk.result.requests };
}

/** Fills in what the scenarios need; returns the context and how to renew its access tokens. */
async function prepareContext(api: string, admin: postgres.Sql, counts: DataCounts) {
  const ctx: BenchContext = { api };
  const accounts = await activeStudentEmails(admin, SIGN_IN_ACCOUNTS);
  const studentEmail = accounts[0]?.email ?? '';
  // Access tokens live 15 minutes: every part of the run signs in afresh.
  const renewTokens = async () => {
    const adminSession = await signInOrMint(api, admin, staffEmail('admin'));
    if (adminSession) ctx.admin = adminSession.headers;
    const financeSession = await signInOrMint(api, admin, staffEmail('finance'));
    if (financeSession) ctx.finance = financeSession.headers;
    const studentSession = studentEmail ? await signInOrMint(api, admin, studentEmail) : null;
    if (studentSession) ctx.student = studentSession;
  };
  await renewTokens();
  ctx.signIn = { emails: accounts.map((account) => account.email), password: BENCH_PASSWORD };
  ctx.enrolledStudentId = accounts[0]?.id;
  const catalogue = await fetch(`${api}/programs`);
  await catalogue.arrayBuffer();
  ctx.catalogueEtag = catalogue.headers.get('etag') ?? undefined;
  if (ctx.admin) {
    const depth = Math.floor(counts.students * STUDENTS_DEEP_FRACTION);
    const students = await deepCursor(`${api}/students?limit=${WALK_PAGE}`, ctx.admin, depth);
    if (students) {
      ctx.studentsDeep = students;
      log(`  students: cursor ${students.depth.toLocaleString('en-US')} rows deep (${students.pages} pages walked)`);
    }
    const search = await fetch(`${api}/students?limit=50&name=${BENCH_NAME_PREFIX}`, { headers: ctx.admin });
    const found = search.ok
      ? ((await search.json()) as { items: unknown[] }).items.length
      : await search.text().then(() => 0);
    log(`  name search "${BENCH_NAME_PREFIX}": ${found} students on its first page (status ${search.status})`);
    const audit = await deepCursor(`${api}/audit/logs?limit=${WALK_PAGE}`, ctx.admin, AUDIT_DEEP_ROWS);
    if (audit) {
      ctx.auditDeep = audit;
      log(`  audit log: cursor ${audit.depth.toLocaleString('en-US')} rows deep (${audit.pages} pages walked)`);
    }
  }
  return { ctx, renewTokens };
}

// ---------------------------------------------------------------------------------------------------
// The parts
// ---------------------------------------------------------------------------------------------------

interface DataCounts {
  students: number;
  auditRows: number;
  enrollments: number;
}

async function dataCounts(admin: postgres.Sql): Promise<DataCounts> {
  const [row] = await admin<DataCounts[]>`
    select (select count(*) from user_roles where role_name = 'student')::int as students,
           (select count(*) from audit_log)::int as "auditRows",
           (select count(*) from enrollments)::int as enrollments`;
  return row as DataCounts;
}

/**
 * Waits until no query of the app is running: autocannon stops at the deadline, but the requests in
 * flight keep the server busy (a scan without its index runs for seconds), and that work must not be
 * billed to the next scenario or to an EXPLAIN.
 */
async function quiesce(admin: postgres.Sql, timeoutMs = 60_000): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const [row] = await admin<{ busy: number }[]>`
      select count(*)::int as busy from pg_stat_activity
       where state = 'active' and application_name like 'aada-lms-api:%'`;
    if (!row?.busy) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runScenarios(
  admin: postgres.Sql,
  scenarios: typeof SCENARIOS,
  ctx: BenchContext,
  options: Options,
  label: string,
): Promise<ScenarioOutcome[]> {
  const outcomes: ScenarioOutcome[] = [];
  for (const one of scenarios) {
    // --skip also names scenarios (ping, login, …) beside the parts (coldstart, index, scaleout).
    if (options.skip.has(one.key)) continue;
    await quiesce(admin);
    const outcome = await runScenario(one, ctx, {
      connections: options.connections,
      durationSeconds: options.duration,
      settle: () => quiesce(admin),
    });
    const r = outcome.result;
    log(
      `  ${label}${one.title}: ${
        r
          ? `${Math.round(r.requestsPerSecond).toLocaleString('en-US')} req/s, p50 ${r.latencyMs.p50.toFixed(1)} ms`
          : outcome.skipped
      }`,
    );
    outcomes.push(outcome);
  }
  return outcomes;
}

interface ColdStart {
  runs: {
    spawnToListeningMs: number;
    spawnToFirstResponseMs: number;
    spawnToFirstDbResponseMs: number;
    loadModulesMs: number;
  }[];
  median: {
    spawnToListeningMs: number;
    spawnToFirstResponseMs: number;
    spawnToFirstDbResponseMs: number;
    loadModulesMs: number;
  };
}

async function pollUntilOk(url: string, since: number, timeoutMs = 60_000): Promise<number> {
  let last = 'no answer';
  while (performance.now() - since < timeoutMs) {
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.ok) return performance.now() - since;
      last = `status ${response.status}`;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`${url} did not answer 2xx within ${timeoutMs / 1000} s (${last})`);
}

/** Spawn → listening → first answer (liveness, no database) → first answer that needed the database. */
async function measureColdStarts(env: Record<string, string>, times: number): Promise<ColdStart> {
  const runs: ColdStart['runs'] = [];
  for (let i = 0; i < times; i++) {
    const spawned = performance.now();
    let firstResponse: Promise<number> | undefined;
    const instance = await startInstance(env, (port) => {
      firstResponse = pollUntilOk(`http://127.0.0.1:${port}/api/health`, spawned);
    });
    const spawnToFirstResponseMs = await (firstResponse as Promise<number>);
    const spawnToFirstDbResponseMs = await pollUntilOk(`${instance.api}/programs`, spawned);
    runs.push({
      spawnToListeningMs: instance.spawnToReadyMs,
      spawnToFirstResponseMs,
      spawnToFirstDbResponseMs,
      loadModulesMs: instance.loadModulesMs,
    });
    await instance.stop();
  }
  const median = (pick: (run: ColdStart['runs'][number]) => number) => summarize(runs.map(pick)).p50;
  return {
    runs,
    median: {
      spawnToListeningMs: median((run) => run.spawnToListeningMs),
      spawnToFirstResponseMs: median((run) => run.spawnToFirstResponseMs),
      spawnToFirstDbResponseMs: median((run) => run.spawnToFirstDbResponseMs),
      loadModulesMs: median((run) => run.loadModulesMs),
    },
  };
}

interface IndexPart {
  rows: IndexComparisonRow[];
  plans: Record<string, { without: string[]; with: string[] }>;
  dropSeconds: number;
  buildSeconds: number;
}

async function explainAll(admin: postgres.Sql, ctx: BenchContext, into: IndexPart['plans'], side: 'without' | 'with') {
  await quiesce(admin);
  for (const one of SCENARIOS.filter((s) => s.indexSensitive && s.mainQuery)) {
    const mainQuery = one.mainQuery;
    if (!mainQuery?.(admin, ctx)) continue;
    into[one.title] ??= { without: [], with: [] };
    (into[one.title] as { without: string[]; with: string[] })[side] = await explain(
      admin,
      () => mainQuery(admin, ctx) as NonNullable<ReturnType<typeof mainQuery>>,
    );
  }
}

/** The index-sensitive scenarios with 0002's indexes dropped, then rebuilt: same data, same run. */
async function compareIndexes(
  admin: postgres.Sql,
  ctx: BenchContext,
  renewTokens: () => Promise<void>,
  options: Options,
): Promise<IndexPart> {
  const sensitive = SCENARIOS.filter((one) => one.indexSensitive);
  const plans: IndexPart['plans'] = {};
  log('index comparison: dropping the indexes of migration 0002…');
  const dropSeconds = (await setSeedIndexes(admin, 'down')) / 1000;
  await renewTokens();
  const without = await runScenarios(admin, sensitive, ctx, options, 'without 0002: ');
  await explainAll(admin, ctx, plans, 'without');
  log('index comparison: rebuilding the indexes of migration 0002…');
  const buildSeconds = (await setSeedIndexes(admin, 'up')) / 1000;
  await renewTokens();
  const withIndexes = await runScenarios(admin, sensitive, ctx, options, 'with 0002: ');
  await explainAll(admin, ctx, plans, 'with');
  const rows = sensitive.map((one, i) => ({
    title: one.title,
    without: without[i],
    with: withIndexes[i],
    plans: plans[one.title],
  }));
  return { rows, plans, dropSeconds, buildSeconds };
}

/** Samples the server's connections every 50 ms until stopped; returns the peaks. */
function sampleConnections(admin: postgres.Sql) {
  let peak = 0;
  let peakApp = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const [row] = await admin<{ total: number; app: number }[]>`
        select count(*)::int as total,
               count(*) filter (where application_name like 'aada-lms-api:%')::int as app
          from pg_stat_activity where backend_type = 'client backend'`;
      peak = Math.max(peak, row?.total ?? 0);
      peakApp = Math.max(peakApp, row?.app ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { peak, peakApp };
  };
}

async function scaleOutRun(
  label: string,
  env: Record<string, string>,
  poolPerInstance: string,
  admin: postgres.Sql,
  options: Options,
  count: number,
): Promise<ScaleOutRun> {
  const instances: Instance[] = [];
  try {
    for (let i = 0; i < count; i++) instances.push(await startInstance(env));
    const first = instances[0] as Instance;
    const session = await signInOrMint(first.api, admin, staffEmail('admin'));
    const probe = await fetch(`${first.api}/students?limit=50`, { headers: session?.headers ?? {} });
    await probe.arrayBuffer();
    // The student list when it exists (a PHI read plus its audit write), else the ceiling route.
    const path = probe.status === 404 ? '/bench/ping' : '/students?limit=50';
    const load = {
      url: instances.map((instance) => `${instance.api}${path}`),
      connections: options.clients,
      headers: session?.headers ?? {},
    };
    // Peaks are sampled over the warm-up too: that is when fresh pools open their connections.
    const stopSampling = sampleConnections(admin);
    await drive({ ...load, durationSeconds: SCALE_OUT_WARMUP_SECONDS });
    const result = await drive({ ...load, durationSeconds: options.duration });
    const peaks = await stopSampling();
    await quiesce(admin);
    log(
      `  ${label}: ${Math.round(result.requestsPerSecond)} req/s, ${result.errors} errors, ${result.unexpectedStatus} non-2xx, ` +
        `peak ${peaks.peak} connections (${peaks.peakApp} from the app)`,
    );
    return {
      label,
      path,
      instances: count,
      poolPerInstance,
      clients: options.clients,
      result,
      peakConnections: peaks.peak,
      peakAppConnections: peaks.peakApp,
      instanceErrors: instances.flatMap((instance) => instance.stderrTail()).slice(-5),
    };
  } finally {
    await Promise.all(instances.map((instance) => instance.stop()));
  }
}

/**
 * The same clients against: one instance (the baseline: what more processes add on this machine),
 * N instances sized by the formula, and N with the seed's pool of 60 each.
 */
async function scaleOut(server: BenchServer, admin: postgres.Sql, options: Options): Promise<ScaleOutRun[]> {
  const appUrl = await ensureAppLogin(server.adminUrl, BENCH_DATABASE);
  const budget = (instances: number) => ({
    ...INSTANCE_ENV,
    DB_MAX_CONNECTIONS: String(SCALE_OUT_MAX_CONNECTIONS),
    DB_RESERVED_CONNECTIONS: String(SCALE_OUT_RESERVED),
    MAX_INSTANCES: String(instances),
  });
  const formula = (instances: number) =>
    `${poolOf(budget(instances))} (min(10, floor((${SCALE_OUT_MAX_CONNECTIONS} − ${SCALE_OUT_RESERVED}) / ${instances})))`;
  const runs: ScaleOutRun[] = [];
  for (const instances of options.instances > 1 ? [1, options.instances] : [1]) {
    const env = budget(instances);
    runs.push(
      await scaleOutRun(
        `formula: ${instances} instance${instances > 1 ? 's' : ''} × pool ${poolOf(env)}`,
        productionEnv(appUrl, env),
        formula(instances),
        admin,
        options,
        instances,
      ),
    );
  }
  runs.push(
    await scaleOutRun(
      `seed: ${options.instances} workers × pool ${SEED_POOL_PER_WORKER}`,
      productionEnv(appUrl, { ...budget(options.instances), DB_POOL_MAX: String(SEED_POOL_PER_WORKER) }),
      `${SEED_POOL_PER_WORKER} (pool_size 20 + max_overflow 40)`,
      admin,
      options,
      options.instances,
    ),
  );
  return runs;
}

// ---------------------------------------------------------------------------------------------------
// Printing and writing
// ---------------------------------------------------------------------------------------------------

function printColdStart(cold: ColdStart) {
  const m = cold.median;
  say(`\nCold start (median of ${cold.runs.length}, compiled app, production settings):`);
  say(
    `  spawn → listening                 ${m.spawnToListeningMs.toFixed(0)} ms (of which loading function modules ${m.loadModulesMs.toFixed(0)} ms)`,
  );
  say(`  spawn → first response (liveness) ${m.spawnToFirstResponseMs.toFixed(0)} ms`);
  say(
    `  spawn → first database response   ${m.spawnToFirstDbResponseMs.toFixed(0)} ms (GET /api/programs: the pool's first connection)`,
  );
}

function printIndexPart(part: IndexPart) {
  say(
    `\nThe seed's index claim: 0002 dropped (${part.dropSeconds.toFixed(1)} s), then rebuilt (${part.buildSeconds.toFixed(1)} s); same data, same run; ` +
      'query ms: EXPLAIN ANALYZE of the main query alone after the load, median of 3',
  );
  say(indexTable(part.rows));
  for (const [title, plan] of Object.entries(part.plans)) {
    say(`\nEXPLAIN (ANALYZE, BUFFERS) ${title}`);
    say('  without 0002:');
    for (const line of planSummary(plan.without)) say(`    ${line}`);
    say('  with 0002:');
    for (const line of planSummary(plan.with)) say(`    ${line}`);
  }
}

function printScaleOut(runs: ScaleOutRun[]) {
  say(
    `\nScale-out: PostgreSQL restarted with max_connections=${SCALE_OUT_MAX_CONNECTIONS}, ` +
      `${runs[0]?.clients} concurrent clients spread over the instances, ${runs[0]?.path}:`,
  );
  say(scaleOutTable(runs));
  for (const run of runs) {
    for (const line of run.instanceErrors.slice(-2)) say(`  ${run.label}, an instance's stderr: ${line.slice(0, 140)}`);
  }
}

function writeResults(results: Record<string, unknown>, outcomes: ScenarioOutcome[], ceiling: number | undefined) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify(results, null, 2);
  const svg = chartSvg(
    `AADA LMS API: requests/s per scenario (${new Date().toISOString().slice(0, 10)})`,
    outcomes,
    ceiling,
  );
  for (const name of [stamp, 'latest']) {
    writeFileSync(path.join(RESULTS_DIR, `${name}.json`), json);
    writeFileSync(path.join(RESULTS_DIR, `${name}.svg`), svg);
  }
  say(`\nRaw results and chart: bench/results/${stamp}.json, bench/results/${stamp}.svg (and latest.*)`);
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  const options = parseOptions();
  const began = performance.now();
  const machine: MachineInfo = machineInfo();
  // The bench keys (the generator encrypted with them), for decrypting sign-in emails and minting tokens
  // here. This process is the driver, not an instance: it reads its keys in development mode (an unset
  // APP_ENV is production, which wants every deployment setting); the instances it spawns get
  // productionEnv, whose APP_ENV=production overrides this one.
  Object.assign(process.env, { APP_ENV: 'development', ...BENCH_SECRETS });
  const stopServices = await startBenchServices(log);
  let server = await startBenchPostgres();
  let admin = postgres(withDatabase(server.adminUrl, BENCH_DATABASE), { max: 1, onnotice: () => {} });
  let instance: Instance | undefined;
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine,
    options: { ...options, skip: [...options.skip] },
  };
  try {
    const counts = await dataCounts(admin).catch(() => null);
    if (!counts || counts.students === 0) throw new Error('no generated data: run `npm run bench:generate` first');
    const [{ version } = { version: '' }] = await admin<
      { version: string }[]
    >`select current_setting('server_version') as version`;
    results.data = { ...counts, postgres: version };
    // Migrations added since the data was generated; and a run interrupted during the index
    // comparison leaves 0002's indexes dropped: build what is missing.
    const { appUrl } = await prepareDatabase(server.adminUrl, BENCH_DATABASE, (line) => log(`  ${line}`));
    await setSeedIndexes(admin, 'up');
    process.env.DATABASE_URL = appUrl;
    const env = productionEnv(appUrl, INSTANCE_ENV);
    say(
      `AADA LMS API benchmark: ${counts.students.toLocaleString('en-US')} students, ${counts.auditRows.toLocaleString('en-US')} audit rows; ` +
        `${machine.cpus} CPUs (${machine.cpuModel}), memory ${machine.memory}, Node ${machine.node}, PostgreSQL ${version}; ` +
        `${options.duration} s per scenario at ${options.connections} connections`,
    );

    if (!options.skip.has('coldstart')) {
      log('cold start…');
      const cold = await measureColdStarts(env, 3);
      results.coldStart = cold;
      printColdStart(cold);
    }

    log('starting the benchmarked instance and preparing cursors…');
    instance = await startInstance(env);
    const { ctx, renewTokens } = await prepareContext(instance.api, admin, counts);
    const outcomes = await runScenarios(admin, SCENARIOS, ctx, options, '');
    const ceiling = outcomes.find((outcome) => outcome.key === 'ping')?.result?.requestsPerSecond;
    results.scenarios = outcomes;
    say(
      `\nScenarios (${options.duration} s each at ${options.connections} connections; one instance, pool ${poolOf(env)} connections):`,
    );
    say(scenarioTable(outcomes, ceiling));
    const roster = outcomes.find((outcome) => outcome.key === 'roster');
    if (roster?.result) {
      say(
        `  roster: ${roster.itemsRead?.toLocaleString('en-US')} students read in ${roster.result.requests} pages in ${roster.result.seconds.toFixed(2)} s`,
      );
    }
    say('  non-2xx excludes the 304 the If-None-Match scenario expects; errors are connections that got no answer.');

    if (!options.skip.has('index')) {
      const part = await compareIndexes(admin, ctx, renewTokens, options);
      results.indexComparison = part;
      printIndexPart(part);
    }
    await instance.stop();
    instance = undefined;

    if (!options.skip.has('scaleout')) {
      log(`scale-out: restarting PostgreSQL with max_connections=${SCALE_OUT_MAX_CONNECTIONS}…`);
      await admin.end();
      await server.stop();
      server = await startBenchPostgres({ maxConnections: SCALE_OUT_MAX_CONNECTIONS });
      admin = postgres(withDatabase(server.adminUrl, BENCH_DATABASE), { max: 1, onnotice: () => {} });
      const runs = await scaleOut(server, admin, options);
      results.scaleOut = runs;
      printScaleOut(runs);
    }
    results.totalSeconds = (performance.now() - began) / 1000;
    writeResults(results, outcomes, ceiling);
    say(`Total: ${((performance.now() - began) / 1000 / 60).toFixed(1)} minutes`);
  } finally {
    await instance?.stop();
    await admin.end({ timeout: 1 });
    await server.stop();
    await stopServices();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
