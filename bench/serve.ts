// One instance of the compiled app for the benchmark: plain Node running dist/functions/*.js (what
// Azure loads) plus the bench-only ceiling routes (ping, ping-audited), on the local host of dev/functions-host.ts. Its
// configuration comes from the environment (bench/run.ts passes production settings). Prints one
// line `BENCH_SERVE_READY {"port":…,"loadModulesMs":…,"readyMs":…}` when it accepts requests;
// SIGTERM closes it the way the platform does (in-flight requests finish, then the pool closes).
//
//   npm run build && PORT=7080 DATABASE_URL=… node dist/bench/serve.js
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { installFunctionsCoreStandIn, loadFunctionModules, startHost } from '../dev/functions-host';
import { READY_MARK } from './instances';

function compiledModules(): string[] {
  if (!__filename.endsWith('.js'))
    throw new Error('bench/serve runs the compiled app: npm run build, then node dist/bench/serve.js');
  const functionsDir = path.resolve(__dirname, '..', 'functions');
  const app = readdirSync(functionsDir)
    .filter((file) => file.endsWith('.js'))
    .sort()
    .map((file) => path.join(functionsDir, file));
  return [...app, ...['ping.js', 'ping-audited.js'].map((file) => path.join(__dirname, 'functions', file))];
}

async function main() {
  installFunctionsCoreStandIn();
  const loadStarted = performance.now();
  await loadFunctionModules(compiledModules());
  const loadModulesMs = performance.now() - loadStarted;
  const host = await startHost({
    port: Number(process.env.PORT ?? 0),
    // Errors only: under an overload test every refused database connection warns once.
    onLog: (entry) => {
      if (entry.level === 'error' || entry.level === 'critical') console.error(entry.message);
    },
  });
  // performance.now() counts from the start of this process: node's own start-up is included.
  console.log(`${READY_MARK}${JSON.stringify({ port: host.port, loadModulesMs, readyMs: performance.now() })}`);
  const stop = () => {
    host.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
