// Benchmarked instances: child processes running dist/bench/serve.js (the compiled app on the local
// host), each with its own environment, so that N of them behave like N Function App instances:
// separate event loops, separate pools, one database.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../dev/database';

/** The line serve.js prints when it accepts requests (followed by JSON). */
export const READY_MARK = 'BENCH_SERVE_READY ';
const SERVE_SCRIPT = path.join(__dirname, 'serve.js');

export interface Instance {
  port: number;
  /** Base URL with the route prefix. */
  api: string;
  /** Milliseconds from spawn() to the ready line (node start-up, module loading, listening). */
  spawnToReadyMs: number;
  /** What serve.js measured: loading the function modules, and its own start to listening. */
  loadModulesMs: number;
  readyMs: number;
  /** The last lines the instance wrote to stderr (errors only), for diagnostics. */
  stderrTail(): string[];
  stop(): Promise<void>;
}

/**
 * Starts one instance and resolves when it accepts requests; `onSpawn` learns its port at once.
 * `nodeArgs` go to node before the script (bench/profile.ts passes `--cpu-prof`).
 */
export async function startInstance(
  env: Record<string, string>,
  onSpawn?: (port: number) => void,
  nodeArgs: readonly string[] = [],
): Promise<Instance> {
  const port = await freePort();
  const began = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, SERVE_SCRIPT], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onSpawn?.(port);
  const tail: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    tail.push(...chunk.split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 20));
  });
  const ready = await new Promise<{ loadModulesMs: number; readyMs: number }>((resolve, reject) => {
    let buffered = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const line = buffered.split('\n').find((one) => one.startsWith(READY_MARK));
      if (line) resolve(JSON.parse(line.slice(READY_MARK.length)));
    });
    child.once('exit', (code) => reject(new Error(`bench/serve exited (${code}): ${tail.join(' | ')}`)));
  });
  return {
    port,
    api: `http://127.0.0.1:${port}/api`,
    spawnToReadyMs: performance.now() - began,
    ...ready,
    stderrTail: () => [...tail],
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
