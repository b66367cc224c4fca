// Where a request's time goes (issue 15, item 2): a CPU profile of one instance of the compiled app
// (`node --cpu-prof`) under each hot scenario of bench/scenarios.ts, on the generated data, at the
// bench's durability (fsync on), summarised as self-time per part of the request.
//
//   npm run bench:generate                  # once (see bench/README.md)
//   npm run bench:profile [-- --duration 10 --connections 16 --scenarios ping,me,audit-first,students-first,enrollments]
//
// Each scenario gets an instance of its own (a profile is written when its process exits), a 1 s
// warm-up, then `duration` seconds of autocannon. Prints one table of self-time percentages (of the
// instance's busy time: idle left out) with a column per scenario, then each scenario's heaviest
// functions; the profiles stay in bench/results/profiles/ (git-ignored) for Chrome DevTools.
// A sample is billed to the innermost frame of its stack that a rule below recognises, so the SQL of
// the audit insert counts as SQL and Buffer.concat inside decryption as decryption.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { prepareDatabase, REPO_ROOT, withDatabase } from '../dev/database';
import { BENCH_DATABASE, BENCH_SECRETS, productionEnv, startBenchPostgres, startBenchServices } from './database';
import { startInstance } from './instances';
import { type BenchContext, runScenario, scenario } from './scenarios';
import { staffEmail } from './school';
import { activeStudentEmails, signInOrMint } from './sessions';

const PROFILE_DIR = path.join(REPO_ROOT, 'bench', 'results', 'profiles');
const DEFAULT_SCENARIOS = 'ping,ping-audited,me,audit-first,enrollments,students-first';
const INSTANCE_ENV = { LOGIN_SOURCE_LIMIT: '10000000', LOGIN_ACCOUNT_CEILING: '10000000' };

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The parts of a request, each recognised by a frame of the stack (innermost first wins). */
const PARTS: { part: string; matches(frame: CallFrame): boolean }[] = [
  { part: 'GC', matches: (f) => f.functionName === '(garbage collector)' },
  { part: 'JSON (stringify, parse)', matches: (f) => f.url === '' && /^(stringify|parse)$/.test(f.functionName) },
  {
    part: 'socket writes (HTTP and database)',
    matches: (f) =>
      /^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeGeneric)$/.test(f.functionName) ||
      /node:(net|_http_outgoing|internal\/stream_base_commons)$/.test(f.url),
  },
  { part: 'decryption (lib/crypto)', matches: (f) => f.url.includes('/lib/crypto.') },
  { part: 'token verification (lib/auth, jose)', matches: (f) => /\/lib\/auth\.|node_modules\/jose\//.test(f.url) },
  { part: 'revocation check (lib/revocations)', matches: (f) => f.url.includes('/lib/revocations.') },
  { part: 'audit write (lib/audit, its JS)', matches: (f) => f.url.includes('/lib/audit.') },
  { part: 'SQL client (postgres.js)', matches: (f) => f.url.includes('node_modules/postgres/') },
  { part: 'zod (input and views)', matches: (f) => f.url.includes('node_modules/zod/') },
  {
    part: 'route matching',
    matches: (f) => /\/lib\/route-(templates|registry)\./.test(f.url) || f.functionName === 'matchRoute',
  },
  {
    part: 'local host and @azure/functions (request, response objects)',
    matches: (f) => /\/dev\/functions-host\.|node_modules\/@azure\/functions\/|node_modules\/undici/.test(f.url),
  },
  {
    part: 'HTTP parsing and server (node:http)',
    matches: (f) => /node:_http_(server|common|incoming)$/.test(f.url) || f.functionName === 'HTTPParser',
  },
  { part: 'the route wrapper and handlers (lib/, functions/)', matches: (f) => /\/(lib|functions)\//.test(f.url) },
  { part: '(program: native, unattributed)', matches: (f) => f.functionName === '(program)' },
];
const OTHER = 'other (node internals: streams, timers, promises)';

interface Summary {
  key: string;
  requestsPerSecond: number;
  busyMs: number;
  idleMs: number;
  parts: Map<string, number>;
  functions: Map<string, number>;
}

function summarise(key: string, requestsPerSecond: number, profile: CpuProfile): Summary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const partOf = new Map<number, string>();
  const findPart = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    const node = byId.get(id) as ProfileNode;
    const rule = PARTS.find((one) => one.matches(node.callFrame));
    const up = parent.get(id);
    const part = rule ? rule.part : up === undefined ? OTHER : findPart(up);
    partOf.set(id, part);
    return part;
  };
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let idleMs = 0;
  let busyMs = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const frame = (byId.get(id) as ProfileNode).callFrame;
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      return;
    }
    busyMs += ms;
    const part = findPart(id);
    parts.set(part, (parts.get(part) ?? 0) + ms);
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${frame.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
  });
  return { key, requestsPerSecond, busyMs, idleMs, parts, functions };
}

const percent = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)}%`;

function printTable(summaries: Summary[]) {
  const columns = summaries.map((one) => one.key);
  console.log(`| part of the request | ${columns.join(' | ')} |`);
  console.log(`| --- | ${columns.map(() => '---:').join(' | ')} |`);
  const order = [...PARTS.map((one) => one.part), OTHER];
  for (const part of order) {
    if (!summaries.some((one) => one.parts.has(part))) continue;
    console.log(`| ${part} | ${summaries.map((one) => percent(one.parts.get(part) ?? 0, one.busyMs)).join(' | ')} |`);
  }
  console.log(`| req/s while profiled | ${summaries.map((one) => Math.round(one.requestsPerSecond)).join(' | ')} |`);
  console.log(
    `| idle (of the whole profile) | ${summaries.map((one) => percent(one.idleMs, one.busyMs + one.idleMs)).join(' | ')} |`,
  );
  for (const one of summaries) {
    console.log(`\n${one.key}: heaviest functions by self time (of busy time)`);
    const top = [...one.functions.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
    for (const [name, ms] of top) console.log(`  ${percent(ms, one.busyMs).padStart(6)}  ${name}`);
  }
}

function newestProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${dir}`);
  return JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
}

async function main() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '16' },
      scenarios: { type: 'string', default: DEFAULT_SCENARIOS },
    },
  });
  const durationSeconds = Number(values.duration);
  const connections = Number(values.connections);
  const keys = (values.scenarios ?? DEFAULT_SCENARIOS).split(',').filter(Boolean);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  Object.assign(process.env, { APP_ENV: 'development', ...BENCH_SECRETS });
  const stopServices = await startBenchServices(log);
  const server = await startBenchPostgres();
  const admin = postgres(withDatabase(server.adminUrl, BENCH_DATABASE), { max: 1, onnotice: () => {} });
  const summaries: Summary[] = [];
  try {
    const { appUrl } = await prepareDatabase(server.adminUrl, BENCH_DATABASE, (line) => log(`  ${line}`));
    process.env.DATABASE_URL = appUrl;
    const env = productionEnv(appUrl, INSTANCE_ENV);
    const [student] = await activeStudentEmails(admin, 1);
    if (!student) throw new Error('no generated data: run `npm run bench:generate` first');
    for (const key of keys) {
      const dir = path.join(PROFILE_DIR, key);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const instance = await startInstance(env, undefined, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
      try {
        const ctx: BenchContext = { api: instance.api, enrolledStudentId: student.id };
        const adminSession = await signInOrMint(instance.api, admin, staffEmail('admin'));
        if (adminSession) ctx.admin = adminSession.headers;
        const studentSession = await signInOrMint(instance.api, admin, student.email);
        if (studentSession) ctx.student = studentSession;
        const outcome = await runScenario(scenario(key), ctx, { connections, durationSeconds });
        if (!outcome.result) throw new Error(`${key}: ${outcome.skipped}`);
        log(`  ${key}: ${Math.round(outcome.result.requestsPerSecond)} req/s while profiled`);
        await instance.stop();
        summaries.push(summarise(key, outcome.result.requestsPerSecond, newestProfile(dir)));
      } finally {
        await instance.stop();
      }
    }
    console.log(
      `\nCPU profile of one instance (node --cpu-prof), ${durationSeconds} s a scenario at ${connections} connections; ` +
        'self time as a share of the busy time:\n',
    );
    printTable(summaries);
    console.log(
      `\nProfiles: ${path.relative(REPO_ROOT, PROFILE_DIR)}/<scenario>/*.cpuprofile (open in Chrome DevTools)`,
    );
  } finally {
    await admin.end({ timeout: 1 });
    await server.stop();
    await stopServices();
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
