// The app under test: starts the real app on the local host, on a free port, over its own migrated
// database. One app per test file: vitest runs each file in its own process, so the module-level
// pool and the function registrations belong to that file alone (and `send` in ./http.ts knows
// which app to call).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';
import { REPO_ROOT } from '../../dev/database';
import {
  installFunctionsCoreStandIn,
  loadFunctionModules,
  type StartedHost,
  startHost,
} from '../../dev/functions-host';
import { resetConfigForTests } from '../../lib/config';
import { createMigratedDatabase, type TestDatabase } from './database';

export interface TestApp {
  /** Base URL including the route prefix: `http://127.0.0.1:PORT/api`. */
  url: string;
  db: TestDatabase;
  /** fetch relative to the API base: `api('/programs')`. */
  api(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export function functionFiles(): string[] {
  const dir = path.join(REPO_ROOT, 'functions');
  return readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .sort()
    .map((file) => path.join(dir, file));
}

/**
 * Declares the app for this test file: started before its tests, closed after them. Call at the
 * top level of a test file; use the returned object inside tests.
 */
export interface TestAppOptions {
  /** Extra environment for the app (e.g. a small pool). */
  env?: Record<string, string>;
  /** Test-only function modules loaded after the app's own (under test/fixtures). */
  fixtures?: string[];
  /**
   * The app's database when it is not a clone on the run's server (the outage test stops a server of its
   * own); dropped, like a clone, when the file ends.
   */
  database?: () => Promise<TestDatabase & { appUrl: string }>;
  /** How long the app may take to start (the hook timeout): a file that starts a server of its own needs more. */
  bootTimeoutMs?: number;
}

let running: TestApp | undefined;

/** The app this test file started (for helpers that call it, like `send`). */
export function currentApp(): TestApp {
  if (!running) throw new Error('the test app is not running (use it inside tests, after useTestApp())');
  return running;
}

export function useTestApp(options: TestAppOptions = {}): TestApp {
  const current = currentApp;
  beforeAll(async () => {
    running = await boot(options);
  }, options.bootTimeoutMs);
  afterAll(async () => {
    await running?.close();
    running = undefined;
  });
  return {
    get url() {
      return current().url;
    },
    get db() {
      return current().db;
    },
    api: (pathAndQuery, init) => current().api(pathAndQuery, init),
    close: () => current().close(),
  };
}

/** A function as the app registered it with the local host (its trigger type and bindings). */
export function registeredFunction(
  name: string,
): { triggerType: string; metadata: { bindings: Record<string, { schedule?: string }> } } | undefined {
  // The local host keeps every registration in this registry (dev/functions-host.ts).
  const registry = (globalThis as Record<symbol, unknown>)[Symbol.for('aada.dev.functions-host.registry')] as {
    functions: Map<string, { triggerType: string; metadata: { bindings: Record<string, { schedule?: string }> } }>;
  };
  return registry.functions.get(name);
}

async function boot(options: TestAppOptions): Promise<TestApp> {
  const database = await (options.database ?? createMigratedDatabase)();
  // Blob containers of this file's own: `t` and the database's random suffix.
  const blobs = { BLOB_ENDPOINT: inject('blobEndpoint'), BLOB_CONTAINER_PREFIX: `t${database.name.slice(-12)}` };
  Object.assign(process.env, { APP_ENV: 'test', DATABASE_URL: database.appUrl, ...blobs, ...options.env });
  resetConfigForTests();
  installFunctionsCoreStandIn();
  const fixtures = (options.fixtures ?? []).map((name) => path.join(REPO_ROOT, 'test', 'fixtures', name));
  await loadFunctionModules([...functionFiles(), ...fixtures]);
  const host = await startHost({ port: 0 });
  return {
    url: host.url,
    db: database,
    api: (pathAndQuery, init) => fetch(`${host.url}${pathAndQuery}`, init),
    close: async () => {
      await host.close();
      await database.drop();
    },
  };
}

/** A host of the same app as Azure routes it. */
export interface HostUnderTest {
  url: string;
  api(pathAndQuery: string, init?: RequestInit): Promise<Response>;
}

/**
 * A second local host over this file's app (same functions, same database) that routes as the Azure
 * Functions host does: the first function by name whose template and method match, no precedence
 * (`routeOrder: 'function-name'` in dev/functions-host.ts). Call after useTestApp(); tests that sweep
 * host-level answers run them on both hosts.
 */
export function useAzureOrderedHost(): HostUnderTest {
  let host: StartedHost | undefined;
  beforeAll(async () => {
    host = await startHost({ port: 0, routeOrder: 'function-name' });
  });
  afterAll(async () => {
    await host?.close();
  });
  const started = () => {
    if (!host) throw new Error('the Azure-ordered host is not running (use it inside tests)');
    return host;
  };
  return {
    get url() {
      return started().url;
    },
    api: (pathAndQuery, init) => fetch(`${started().url}${pathAndQuery}`, init),
  };
}
