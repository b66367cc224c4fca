// `npm run test:mutation [-- MODULE…]` (through dev/mutation.sh, under Node 22): Stryker once per module of
// stryker.config.mjs, then a table of every module's score from the JSON reports in reports/mutation/.
// `npm run test:mutation -- --report` prints the table of the last runs without running anything; `--static`
// also tests the static mutants (ignored otherwise, and counted in the table as ignored).
//
// One embedded PostgreSQL serves all the runs (DATABASE_URL for the test setup). It lives in .data/, outside
// Stryker's sandbox: the sandbox is a private temporary folder (mode 0700) that the `postgres` system user
// the server runs as (when started by root) cannot enter, so a server started by the tests inside it fails.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, startThrowawayPostgres } from './database';

/**
 * The modules, each mutated against the test files that exercise it (pure and unit ones first), not the
 * whole suite, so that a run fits this machine. Stryker's options are in stryker.config.json.
 */
const MODULES: Record<string, { mutate: string; testFiles: string[] }> = {
  crypto: {
    mutate: 'lib/crypto.ts',
    testFiles: [
      'test/stored-formats.test.ts',
      'test/key-ring.test.ts',
      'test/file-formats.test.ts',
      'test/config.test.ts',
    ],
  },
  pagination: {
    mutate: 'lib/pagination.ts',
    testFiles: ['test/stored-formats.test.ts', 'test/client-values.test.ts', 'test/cursor-fuzz.test.ts'],
  },
  throttle: {
    mutate: 'lib/throttle.ts',
    testFiles: ['test/throttle.test.ts', 'test/sign-in-recovery.test.ts', 'test/client-values.test.ts'],
  },
  http: {
    mutate: 'lib/http.ts',
    testFiles: [
      'test/http.test.ts',
      'test/cors-preflight.test.ts',
      'test/client-values.test.ts',
      'test/host-answers.test.ts',
      'test/docs-in-step.test.ts',
    ],
  },
  auth: {
    mutate: 'lib/auth.ts',
    testFiles: ['test/stored-formats.test.ts', 'test/sessions.test.ts', 'test/auth.test.ts', 'test/config.test.ts'],
  },
  sessions: {
    mutate: 'lib/sessions.ts',
    testFiles: ['test/sessions.test.ts', 'test/session-revocation.test.ts', 'test/auth.test.ts'],
  },
  access: {
    mutate: 'lib/access.ts',
    testFiles: ['test/access-policy.test.ts', 'test/authorization-matrix.test.ts', 'test/least-privilege.test.ts'],
  },
  files: {
    mutate: 'lib/files.ts',
    testFiles: ['test/files.test.ts', 'test/content-files.test.ts'],
  },
  'refund-rules': {
    mutate: 'lib/refund-rules.ts',
    testFiles: ['test/ledger-withdrawals.test.ts'],
  },
};

/** Below this a module fails the run (issue 18: at least 95 % on each listed module). */
const REQUIRED_SCORE = 95;

interface ReportMutant {
  status: 'Killed' | 'Survived' | 'NoCoverage' | 'Timeout' | 'CompileError' | 'RuntimeError' | 'Ignored' | 'Pending';
  statusReason?: string;
}

interface ModuleScore {
  module: string;
  mutants: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  /** Static mutants left untested (run without --static). */
  staticUntested: number;
  /** Excluded by a `// Stryker disable` comment (an equivalent mutant, with its reason). */
  excluded: number;
  errors: number;
  /** Stryker's score: killed and timed out over every mutant tested (ignored and erroring ones left out). */
  score: number;
  /** The same without counting timeouts as kills. */
  killedOnly: number;
}

const reportPath = (module: string) => path.join(REPO_ROOT, 'reports', 'mutation', `${module}.json`);

function scoreOf(module: string): ModuleScore | undefined {
  const file = reportPath(module);
  if (!existsSync(file)) return undefined;
  const report = JSON.parse(readFileSync(file, 'utf8')) as { files: Record<string, { mutants: ReportMutant[] }> };
  const mutants = Object.values(report.files).flatMap((entry) => entry.mutants);
  const count = (...statuses: ReportMutant['status'][]) =>
    mutants.filter((mutant) => statuses.includes(mutant.status)).length;
  const killed = count('Killed');
  const timeout = count('Timeout');
  const survived = count('Survived');
  const noCoverage = count('NoCoverage');
  const tested = killed + timeout + survived + noCoverage;
  const percent = (part: number) => (tested === 0 ? 100 : Math.floor((1000 * part) / tested) / 10);
  return {
    module,
    mutants: mutants.length,
    killed,
    timeout,
    survived,
    noCoverage,
    staticUntested: mutants.filter((mutant) => mutant.status === 'Ignored' && /static/i.test(mutant.statusReason ?? ''))
      .length,
    excluded: mutants.filter((mutant) => mutant.status === 'Ignored' && !/static/i.test(mutant.statusReason ?? ''))
      .length,
    errors: count('CompileError', 'RuntimeError'),
    score: percent(killed + timeout),
    killedOnly: percent(killed),
  };
}

function printTable(modules: string[]): boolean {
  const rows = modules.map(scoreOf);
  console.log(
    '\n| module | mutants | killed | timeout | survived | no coverage | static, untested | excluded | score | without timeouts |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  let passed = true;
  for (const [index, row] of rows.entries()) {
    if (!row) {
      console.log(`| ${modules[index]} | not run | | | | | | | | |`);
      passed = false;
      continue;
    }
    if (row.score < REQUIRED_SCORE) passed = false;
    console.log(
      `| ${row.module} | ${row.mutants} | ${row.killed} | ${row.timeout} | ${row.survived} | ${row.noCoverage} | ${row.staticUntested} | ${row.excluded} | ${row.score} % | ${row.killedOnly} % |`,
    );
  }
  console.log(`\n${passed ? 'every module' : 'not every module'} at ${REQUIRED_SCORE} % or more`);
  return passed;
}

/** Runs Stryker on one module; its JSON report is then kept as reports/mutation/<module>.json. */
async function runStryker(module: string, withStatic: boolean, env: NodeJS.ProcessEnv): Promise<number> {
  const { mutate, testFiles } = MODULES[module] as (typeof MODULES)[string];
  const args = ['run', 'stryker.config.json', '--mutate', mutate, '--testFiles', testFiles.join(',')];
  // A static mutant (reached only while modules load or in a beforeAll, never inside a test) needs a fresh
  // process running every test file, several minutes each here: ignored unless asked for (--static).
  if (!withStatic) args.push('--ignoreStatic');
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(path.join(REPO_ROOT, 'node_modules', '.bin', 'stryker'), args, {
      cwd: REPO_ROOT,
      stdio: 'inherit',
      env,
    });
    child.on('error', reject);
    child.on('exit', (exitCode) => resolve(exitCode ?? 1));
  });
  const written = path.join(REPO_ROOT, 'reports', 'mutation', 'mutation.json');
  if (existsSync(written)) {
    await mkdir(path.dirname(reportPath(module)), { recursive: true });
    await rename(written, reportPath(module));
  }
  return code;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const reportOnly = args.includes('--report');
  const withStatic = args.includes('--static');
  const named = args.filter((arg) => !arg.startsWith('--'));
  for (const module of named) {
    if (!(module in MODULES)) throw new Error(`${module}: not one of ${Object.keys(MODULES).join(', ')}`);
  }
  const modules = named.length > 0 ? named : Object.keys(MODULES);
  if (reportOnly) {
    process.exitCode = printTable(modules) ? 0 : 1;
    return;
  }
  let adminUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!adminUrl) {
    const server = await startThrowawayPostgres('mutation-postgres');
    adminUrl = server.adminUrl;
    stop = server.stop;
  }
  try {
    for (const module of modules) {
      console.log(`\n=== mutation testing: ${MODULES[module]?.mutate} ===`);
      const code = await runStryker(module, withStatic, { ...process.env, DATABASE_URL: adminUrl });
      if (code !== 0) console.log(`stryker ended with exit code ${code} for ${module}`);
    }
  } finally {
    await stop();
  }
  process.exitCode = printTable(modules) ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
