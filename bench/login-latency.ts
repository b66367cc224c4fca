// Sign-in latency with the stored hash parameters: 50 sequential POST /api/auth/login against a
// local host, for a real account (right and wrong password) and for an unknown email, which verifies
// a decoy hash so that it takes as long as a wrong password. Prints the figures; asserts nothing.
//
//   npx tsx bench/login-latency.ts                      # a throw-away embedded PostgreSQL
//   DATABASE_URL=postgres://admin@host/postgres npx tsx bench/login-latency.ts   # a server you name
//     (an administrator URL: a database aada_bench_login is created and migrated there)
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { freePort, prepareDatabase, REPO_ROOT, startEmbeddedPostgres } from '../dev/database';
import { installFunctionsCoreStandIn, loadFunctionModules, startHost } from '../dev/functions-host';
// Configuration is read on first use, after main() has set the environment.
import { emailBlindIndex } from '../lib/crypto';
import { ARGON2_PARAMS } from '../lib/passwords';
import { insertUser } from '../lib/users';

const ROUNDS = 50;
const DATABASE = 'aada_bench_login';
const EMAIL = 'bench.login@example.test';
const PASSWORD = 'Bench-Password-2026';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Case {
  label: string;
  email: string;
  password: string;
  status: number;
}

async function signInOnce(url: string, { email, password, status }: Case): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password, client: 'tool' }),
  });
  await response.arrayBuffer();
  const elapsed = performance.now() - started;
  if (response.status !== status) throw new Error(`login answered ${response.status}, not ${status}`);
  return elapsed;
}

/** The cases take turns, so drift in the machine's load affects them alike. */
async function timeCases(url: string, cases: Case[]): Promise<number[][]> {
  const times = cases.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, one] of cases.entries()) times[index]?.push(await signInOnce(url, one));
  }
  return times.map((list) => list.sort((a, b) => a - b));
}

const describeTimes = (times: number[]) =>
  `p50 ${percentile(times, 50).toFixed(1)} ms   p90 ${percentile(times, 90).toFixed(1)} ms   ` +
  `min ${times[0]?.toFixed(1)} ms   max ${times.at(-1)?.toFixed(1)} ms`;

async function main(): Promise<void> {
  let stopServer: (() => Promise<void>) | undefined;
  let dataDir: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dataDir = await mkdtemp(path.join(tmpdir(), 'aada-bench-login-'));
    const server = await startEmbeddedPostgres({
      dataDir,
      port: await freePort(),
      persistent: false,
      password: randomBytes(12).toString('hex'),
    });
    adminUrl = server.adminUrl;
    stopServer = server.stop;
  }
  const prepared = await prepareDatabase(adminUrl, DATABASE);
  // Every sign-in comes from 127.0.0.1 and half of them fail: lift the throttle for the measurement.
  Object.assign(process.env, {
    APP_ENV: 'test',
    DATABASE_URL: prepared.appUrl,
    LOGIN_SOURCE_LIMIT: '1000000',
    LOGIN_MAX_FAILURES: '1000000',
    LOGIN_ACCOUNT_CEILING: '1000000',
  });

  const admin = postgres(prepared.adminUrl, { max: 1, onnotice: () => {} });
  await admin`select 1`; // postgres.js learns array types on its first connection
  await admin`delete from users where email_blind_index = ${emailBlindIndex(EMAIL)}`;
  await insertUser(admin, {
    email: EMAIL,
    firstName: 'Bench',
    lastName: 'Login',
    password: PASSWORD,
    roles: ['student'],
  });
  await admin.end();

  installFunctionsCoreStandIn();
  await loadFunctionModules([path.join(REPO_ROOT, 'functions', 'auth.ts')]);
  const host = await startHost({ port: 0, onLog: () => {} });
  try {
    const cases: Case[] = [
      { label: 'existing account, right password (200)', email: EMAIL, password: PASSWORD, status: 200 },
      { label: 'existing account, wrong password (401)', email: EMAIL, password: 'Not-The-Password-1', status: 401 },
      {
        label: 'unknown email, decoy hash (401)       ',
        email: 'nobody@example.test',
        password: PASSWORD,
        status: 401,
      },
    ];
    for (const one of cases) await signInOnce(host.url, one); // warm-up: pool, jose, the decoy hash
    const times = await timeCases(host.url, cases);
    const { memoryCost, timeCost, parallelism } = ARGON2_PARAMS;
    console.log(
      `Argon2id m=${memoryCost} KiB, t=${timeCost}, p=${parallelism}; ${ROUNDS} sequential sign-ins per case`,
    );
    for (const [index, one] of cases.entries()) console.log(`  ${one.label}: ${describeTimes(times[index] ?? [])}`);
  } finally {
    await host.close();
    if (stopServer) await stopServer();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
