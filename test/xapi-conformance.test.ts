// The ADL LRS conformance suite (../shared/tools/lrs-conformance, read-only, MIT) against this app on the
// local host, for xAPI 1.0.3 and 2.0.0. Slow (about a minute a version) and it needs the shared folder, so it
// runs only with LRS_CONFORMANCE=1 (.ci/run sets it); without the folder it says so and skips.
//   LRS_CONFORMANCE=1 npx vitest run test/xapi-conformance.test.ts
//   env: LRS_CONFORMANCE_DIR (default ../shared/tools/lrs-conformance beside the repository),
//        LRS_VERSIONS (default "1.0.3 2.0.0"), GREP (a subset, passed to run.sh)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const SUITE_DIR =
  process.env.LRS_CONFORMANCE_DIR ?? path.resolve(REPO_ROOT, '..', 'shared', 'tools', 'lrs-conformance');
const enabled = process.env.LRS_CONFORMANCE === '1';
const present = existsSync(path.join(SUITE_DIR, 'run.sh'));
const VERSIONS = (process.env.LRS_VERSIONS ?? '1.0.3 2.0.0').split(/\s+/).filter(Boolean);

if (!enabled) console.log('xAPI conformance: skipped (set LRS_CONFORMANCE=1 to run the ADL suite)');
else if (!present) console.log(`xAPI conformance: skipped, no suite at ${SUITE_DIR} (the shared folder is absent)`);

const app = useTestApp();
let key = '';
let secret = '';

function runSuite(version: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(SUITE_DIR, 'run.sh'), `${app.url}/xapi`, key, secret, version], {
      env: { ...process.env, SHOW: process.env.SHOW ?? '40' },
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe.runIf(enabled && present)('the ADL LRS conformance suite', () => {
  beforeAll(async () => {
    const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
    const { createCredential } = await import('../lib/xapi-credentials');
    const credential = await createCredential(
      app.db.sql,
      { label: 'ADL conformance suite', scopes: ['all'] },
      admin.id,
    );
    key = credential.key;
    secret = credential.secret;
  });

  for (const version of VERSIONS) {
    test(`xAPI ${version}: every test passes`, { timeout: 600_000 }, async () => {
      const { code, output } = await runSuite(version);
      console.log(output.split('\n').slice(-60).join('\n'));
      const summary = /conformance: (\d+) passed, (\d+) failed/.exec(output);
      expect(summary, output.slice(-2000)).not.toBeNull();
      expect(Number(summary?.[2]), output.slice(-4000)).toBe(0);
      expect(code).toBe(0);
    });
  }
});
