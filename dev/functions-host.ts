// Local stand-in for the Azure Functions host (development and tests only; nothing under dev/ is deployed).
//
// Azure Functions Core Tools (`func start`) cannot be installed here, so this module hosts the app's own
// `app.http(...)` registrations on a plain `node:http` server. App code stays plain `app.http(...)` and runs
// unchanged in Azure.
//
// How: the real Node.js worker injects a module named `@azure/functions-core`; `@azure/functions` loads it
// lazily with `require('@azure/functions-core')` on the first `app.*` call and caches the result (or its
// absence: "test mode"). `installFunctionsCoreStandIn()` hooks `Module._load` so that exactly this request
// name returns an in-process stand-in that records every function registration and hook. It must run BEFORE
// any function module calls `app.*`. `startHost()` then routes HTTP requests to the captured handlers the
// way the Functions host does (route prefix from host.json, ASP.NET Core style route templates, 404 with an
// empty body when nothing matches, streamed request and response bodies). Routes are picked by ASP.NET
// precedence unless `routeOrder: 'function-name'` asks for Azure's own order (see StartHostOptions).
//
// Imports from '@azure/functions' are NAMED imports on purpose: this project compiles to CommonJS, where
// `import x from '@azure/functions'` becomes `require(...).default`, which is undefined for this bundle (it
// sets `__esModule`). Named imports work in compiled CommonJS, under tsx and under vitest.
//
// Why one file over 350 lines: it stands in for one program, the Functions host. The core stand-in records
// the registrations the server then routes, and the request path (routing, body streaming, the answers the
// host gives itself: an empty 404, a refused method) must behave as Azure's host does, end to end; the
// route-template grammar, the one part with its own specification, is lib/route-templates.ts.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import Module, { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';
import type {
  Cookie,
  EffectiveFunctionOptions,
  FunctionInput,
  FunctionOutput,
  FunctionTrigger,
  InvocationContextInit,
  LogLevel,
} from '@azure/functions';
import { HttpRequest, HttpResponse, InvocationContext } from '@azure/functions';
import {
  type CompiledTemplate,
  comparePrecedence,
  compileTemplate,
  decodeSegment,
  matchTemplate,
  trimSlashes,
} from '../lib/route-templates';

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

export interface HostRoute {
  /** Function name as given to app.http(name, ...). */
  name: string;
  /** Upper-case HTTP methods the function accepts. */
  methods: string[];
  /** Route template without the prefix, e.g. `programs/{id}`. */
  route: string;
  /** Path with the prefix, e.g. `/api/programs/{id}`. */
  url: string;
  /** Declared auth level. NOT enforced locally (Core Tools does not enforce keys either). */
  authLevel: string;
}

export interface HostLogEntry {
  level: LogLevel;
  /** 'user' for context.log/warn/error, 'system' for the host and the library. */
  category: 'user' | 'system';
  message: string;
  functionName?: string;
  invocationId?: string;
}

export interface StartHostOptions {
  /** Port to listen on; 0 (the default) picks a free port. */
  port?: number;
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** host.json to read `extensions.http.routePrefix` from; default: the repository's host.json. */
  hostJsonPath?: string;
  /** Print the route table like `func start` does. */
  printRoutes?: boolean;
  /** Log one line per invocation (`Executed 'Functions.x' (Succeeded, Id=…, Duration=…ms)`). Default false. */
  logInvocations?: boolean;
  /** Where logs go; default: the console (user logs at every level, system logs from `information` up). */
  onLog?: (entry: HostLogEntry) => void;
  /** close(): how long to wait for in-flight requests before cutting connections. Default 10 000 ms. */
  shutdownTimeoutMs?: number;
  /**
   * Hand request bodies to handlers the way @azure/functions' HTTP stream proxy does in Azure (the Node
   * IncomingMessage itself as the body of the Request, see `createStreamRequest` in the library), instead of
   * the host's own web stream. Tests use it to run the app under the conditions it meets in Azure. Default false.
   */
  azureStreamProxyBodies?: boolean;
  /**
   * How a request picks among the functions whose template and method match. `'precedence'` (the default):
   * ASP.NET Core's route precedence, literal segments before parameters, whatever the function names.
   * `'function-name'`: what the Azure Functions host really does — it maps HTTP routes in the order of the
   * function names (FunctionMetadataManager sorts them with StringComparer.OrdinalIgnoreCase) into an
   * ordered RouteCollection where the first route whose template and method constraint match wins, with
   * no precedence. Tests run the app under both to show it answers alike wherever it is hosted.
   */
  routeOrder?: RouteOrder;
}

export type RouteOrder = 'precedence' | 'function-name';

/** String.Compare(a, b, StringComparison.OrdinalIgnoreCase): UTF-16 code units of the upper-cased names. */
export function compareOrdinalIgnoreCase(a: string, b: string): number {
  const x = a.toUpperCase();
  const y = b.toUpperCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

export interface StartedHost {
  /** Base URL including the route prefix, e.g. http://127.0.0.1:PORT/api (no trailing slash). */
  url: string;
  port: number;
  routes: HostRoute[];
  /** Stops accepting, waits for in-flight requests, then runs the appTerminate hooks. Idempotent. */
  close(): Promise<void>;
}

/** The Azure limit on request bodies (host.json cannot raise it on Consumption/Flex): 100 MB. */
export const MAX_REQUEST_BODY_BYTES = 100 * 1024 * 1024;

/**
 * How much of a body its handler left unread the host reads and drops after answering, so the answer reaches
 * the client and the connection can carry the next request. Past this the connection is closed instead: a client
 * that keeps sending after its answer is not worth more bandwidth.
 */
export const UNREAD_BODY_DISCARD_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------
// Registry shared by the stand-in and the hosts (on globalThis, so a second copy of this module — e.g. one
// loaded by vitest and one by Node's require — still sees the same registrations).
// ---------------------------------------------------------------------------------------------------------

const CORE_MODULE_NAME = '@azure/functions-core';
type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation' | 'log';
const HOOK_NAMES: readonly HookName[] = ['appStart', 'appTerminate', 'preInvocation', 'postInvocation', 'log'];

// biome-ignore lint/suspicious/noExplicitAny: the handler signature is whatever the user registered
type FunctionCallback = (...args: any[]) => unknown;
type HookCallback = (context: Record<string, unknown>) => unknown;

interface RpcBinding extends Record<string, unknown> {
  type?: string;
  direction?: string;
  route?: string;
  methods?: string[];
  authLevel?: string;
}

interface CoreFunctionMetadata {
  name: string;
  bindings: Record<string, RpcBinding>;
  retryOptions?: unknown;
}

interface RegisteredFunction {
  name: string;
  metadata: CoreFunctionMetadata;
  callback: FunctionCallback;
  triggerType: string;
  http?: { route: string; methods: string[]; authLevel: string; template: CompiledTemplate };
}

interface Registry {
  installed: boolean;
  functions: Map<string, RegisteredFunction>;
  hooks: Record<HookName, HookCallback[]>;
  appHookData: Record<string, unknown>;
  programmingModel: unknown;
  /** Set when the library logs that app.setup({ enableHttpStream: true }) ran. */
  httpStreamEnabled: boolean;
  /** Bumped on every (un)registration so hosts know to rebuild their route tables. */
  version: number;
  /** Log sink of the most recently started host (for system logs from the library). */
  systemLog: (entry: HostLogEntry) => void;
}

const REGISTRY_KEY = Symbol.for('aada.dev.functions-host.registry');
function registry(): Registry {
  const g = globalThis as typeof globalThis & { [REGISTRY_KEY]?: Registry };
  g[REGISTRY_KEY] ??= {
    installed: false,
    functions: new Map(),
    hooks: { appStart: [], appTerminate: [], preInvocation: [], postInvocation: [], log: [] },
    appHookData: {},
    programmingModel: undefined,
    httpStreamEnabled: false,
    version: 0,
    systemLog: consoleLog,
  };
  return g[REGISTRY_KEY];
}

class Disposable {
  #onDispose: (() => void) | undefined;
  constructor(onDispose: () => void) {
    this.#onDispose = onDispose;
  }
  dispose(): void {
    const fn = this.#onDispose;
    this.#onDispose = undefined;
    fn?.();
  }
}

function isTriggerType(type: unknown): type is string {
  return typeof type === 'string' && /trigger$/i.test(type);
}

/** The object returned for `require('@azure/functions-core')`: what @azure/functions 4.x calls. */
function createCoreStandIn() {
  const reg = registry();
  return {
    version: '4.0.0-aada-dev-host',
    Disposable,
    setProgrammingModel(model: unknown): void {
      reg.programmingModel = model;
    },
    getProgrammingModel(): unknown {
      return reg.programmingModel;
    },
    registerFunction(metadata: CoreFunctionMetadata, callback: FunctionCallback): Disposable {
      const name = metadata?.name;
      if (typeof name !== 'string' || name.length === 0) {
        throw new Error('registerFunction: the function metadata has no name.');
      }
      if (reg.functions.has(name)) {
        throw new Error(`A function named "${name}" is already registered (function names must be unique).`);
      }
      const trigger = Object.values(metadata.bindings ?? {}).find((b) => isTriggerType(b.type));
      if (!trigger || typeof trigger.type !== 'string') {
        throw new Error(`Function "${name}" has no trigger binding.`);
      }
      const fn: RegisteredFunction = { name, metadata, callback, triggerType: trigger.type };
      if (trigger.type.toLowerCase() === 'httptrigger') {
        // The real host uses the function name when no route is given.
        const route = trimSlashes(typeof trigger.route === 'string' ? trigger.route : name);
        const methods = (
          Array.isArray(trigger.methods) && trigger.methods.length > 0 ? trigger.methods : ['GET', 'POST']
        ).map((m) => String(m).toUpperCase());
        // An invalid template fails the registration, like the host refuses to index such a function.
        const template = compileTemplate(route, name);
        fn.http = { route, methods, authLevel: String(trigger.authLevel ?? 'anonymous'), template };
      }
      reg.functions.set(name, fn);
      reg.version++;
      return new Disposable(() => {
        if (reg.functions.get(name) === fn) {
          reg.functions.delete(name);
          reg.version++;
        }
      });
    },
    registerHook(hookName: string, callback: HookCallback): Disposable {
      if (!HOOK_NAMES.includes(hookName as HookName)) {
        // Mirrors the worker: an AzFuncRangeError for hooks it does not know.
        const err = new RangeError(`Unrecognized hook "${hookName}"`) as RangeError & {
          isAzureFunctionsSystemError: boolean;
        };
        err.isAzureFunctionsSystemError = true;
        throw err;
      }
      const list = reg.hooks[hookName as HookName];
      list.push(callback);
      return new Disposable(() => {
        const i = list.indexOf(callback);
        if (i >= 0) list.splice(i, 1);
      });
    },
    /** System logs from the library (`workerSystemLog`). Its presence also tells app.setup() that HTTP streaming is supported. */
    log(level: LogLevel, category: string, message: string): void {
      if (message === 'HTTP streaming enabled.') reg.httpStreamEnabled = true;
      reg.systemLog({ level, category: category === 'user' ? 'user' : 'system', message });
    },
  };
}

let coreStandIn: ReturnType<typeof createCoreStandIn> | undefined;

/**
 * Makes `require('@azure/functions-core')` return the dev host's stand-in. Idempotent. Call it before any
 * module calls `app.http(...)`/`app.hook.*`: @azure/functions caches the first lookup for the life of the process.
 */
export function installFunctionsCoreStandIn(): void {
  const reg = registry();
  if (reg.installed) return;
  coreStandIn ??= createCoreStandIn();
  const standIn = coreStandIn;
  type LoadFn = (request: string, parent: unknown, isMain: boolean) => unknown;
  type ResolveFn = (request: string, ...rest: unknown[]) => string;
  const mod = Module as unknown as { _load: LoadFn; _resolveFilename: ResolveFn };
  const originalLoad = mod._load;
  mod._load = function load(this: unknown, request: string, parent: unknown, isMain: boolean): unknown {
    if (request === CORE_MODULE_NAME) return standIn;
    return originalLoad.call(this, request, parent, isMain);
  };
  const originalResolve = mod._resolveFilename;
  mod._resolveFilename = function resolveFilename(this: unknown, request: string, ...rest: unknown[]): string {
    // require.resolve('@azure/functions-core') answers like a built-in module would.
    if (request === CORE_MODULE_NAME) return CORE_MODULE_NAME;
    return originalResolve.call(this, request, ...rest);
  };
  reg.installed = true;
}

/**
 * Loads function modules in order. `.js`/`.cjs` files are `require`d (like the worker loads a CommonJS app);
 * `.ts`/`.mts`/`.cts` and `.mjs` files are `import()`ed, which works under tsx and under vitest.
 * Installs the stand-in first if that has not happened yet.
 */
export async function loadFunctionModules(files: string[]): Promise<void> {
  installFunctionsCoreStandIn();
  const requireFromCwd = createRequire(path.join(process.cwd(), 'noop.js'));
  for (const file of files) {
    const abs = path.resolve(file);
    if (/\.c?js$/i.test(abs)) {
      requireFromCwd(abs);
    } else {
      await import(pathToFileURL(abs).href);
    }
  }
}

/** Every HTTP function registered so far, with URLs under the repository host.json's route prefix. */
export function registeredRoutes(): HostRoute[] {
  return toHostRoutes(readRoutePrefix(undefined));
}

// ---------------------------------------------------------------------------------------------------------
// host.json
// ---------------------------------------------------------------------------------------------------------

function findRepoHostJson(): string | undefined {
  const starts = [typeof __dirname === 'string' ? __dirname : undefined, process.cwd()];
  for (const start of starts) {
    if (!start) continue;
    let dir = path.resolve(start);
    for (;;) {
      const candidate = path.join(dir, 'host.json');
      if (fs.existsSync(candidate) && fs.existsSync(path.join(dir, 'package.json'))) return candidate;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return undefined;
}

function readRoutePrefix(hostJsonPath: string | undefined): string {
  const file = hostJsonPath ?? findRepoHostJson();
  if (!file) return 'api';
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`Cannot read ${file}: ${(err as Error).message}`);
  }
  const prefix = (json as { extensions?: { http?: { routePrefix?: unknown } } })?.extensions?.http?.routePrefix;
  if (prefix === undefined || prefix === null) return 'api';
  if (typeof prefix !== 'string') throw new Error(`${file}: extensions.http.routePrefix must be a string.`);
  return trimSlashes(prefix.trim());
}

function toHostRoutes(prefix: string): HostRoute[] {
  const routes: HostRoute[] = [];
  for (const fn of registry().functions.values()) {
    if (!fn.http) continue;
    const full = [prefix, fn.http.route].filter((s) => s !== '').join('/');
    routes.push({
      name: fn.name,
      methods: [...fn.http.methods],
      route: fn.http.route,
      url: `/${full}`,
      authLevel: fn.http.authLevel,
    });
  }
  return routes;
}

// ---------------------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------------------

function consoleLog(entry: HostLogEntry): void {
  if (entry.category === 'system' && (entry.level === 'debug' || entry.level === 'trace')) return;
  const text = entry.functionName ? `[${entry.functionName}] ${entry.message}` : entry.message;
  switch (entry.level) {
    case 'trace':
    case 'debug':
      console.debug(text);
      break;
    case 'warning':
      console.warn(text);
      break;
    case 'error':
    case 'critical':
      console.error(text);
      break;
    case 'none':
      break;
    default:
      console.info(text);
  }
}

async function runHooks(name: HookName, context: Record<string, unknown>): Promise<void> {
  // In registration order, each awaited; a throwing hook stops the chain (like the worker).
  for (const hook of [...registry().hooks[name]]) {
    await hook(context);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Request → handler → response
// ---------------------------------------------------------------------------------------------------------

interface RouteEntry {
  fn: RegisteredFunction & { http: NonNullable<RegisteredFunction['http']> };
  order: number;
}

/** Hop-by-hop headers the worker's HTTP proxy drops from responses as well. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

function effectiveOptions(metadata: CoreFunctionMetadata): EffectiveFunctionOptions {
  let trigger: FunctionTrigger | undefined;
  let ret: FunctionOutput | undefined;
  const extraInputs: FunctionInput[] = [];
  const extraOutputs: FunctionOutput[] = [];
  for (const [name, binding] of Object.entries(metadata.bindings)) {
    const b = { ...binding, type: String(binding.type), name };
    if (isTriggerType(binding.type)) trigger = b as FunctionTrigger;
    else if (name === '$return') ret = b as FunctionOutput;
    else if (binding.direction === 'in') extraInputs.push(b as FunctionInput);
    else if (binding.direction === 'out') extraOutputs.push(b as FunctionOutput);
  }
  return { trigger: trigger as FunctionTrigger, return: ret, extraInputs, extraOutputs };
}

const COOKIE_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const COOKIE_ATTR_RE = /^[^\u0000-\u001f\u007f;]*$/;

/** RFC 6265 Set-Cookie value; the value is URI-encoded like the worker's proxy (`cookie` package) does. */
export function serializeCookie(cookie: Cookie): string {
  if (!COOKIE_NAME_RE.test(cookie.name)) throw new TypeError(`Invalid cookie name: ${JSON.stringify(cookie.name)}`);
  let out = `${cookie.name}=${encodeURIComponent(String(cookie.value ?? ''))}`;
  if (cookie.maxAge !== undefined && cookie.maxAge !== null) {
    if (!Number.isFinite(cookie.maxAge)) throw new TypeError(`Invalid maxAge for cookie ${cookie.name}`);
    out += `; Max-Age=${Math.floor(cookie.maxAge)}`;
  }
  if (cookie.domain) {
    if (!COOKIE_ATTR_RE.test(cookie.domain)) throw new TypeError(`Invalid domain for cookie ${cookie.name}`);
    out += `; Domain=${cookie.domain}`;
  }
  if (cookie.path) {
    if (!COOKIE_ATTR_RE.test(cookie.path)) throw new TypeError(`Invalid path for cookie ${cookie.name}`);
    out += `; Path=${cookie.path}`;
  }
  if (cookie.expires !== undefined && cookie.expires !== null) {
    const date = typeof cookie.expires === 'number' ? new Date(cookie.expires) : cookie.expires;
    if (!(date instanceof Date) || Number.isNaN(date.getTime()))
      throw new TypeError(`Invalid expires for cookie ${cookie.name}`);
    out += `; Expires=${date.toUTCString()}`;
  }
  if (cookie.httpOnly) out += '; HttpOnly';
  if (cookie.sameSite) {
    const s = String(cookie.sameSite).toLowerCase();
    if (s === 'strict') out += '; SameSite=Strict';
    else if (s === 'lax') out += '; SameSite=Lax';
    else if (s === 'none') out += '; SameSite=None';
    else throw new TypeError(`Invalid sameSite for cookie ${cookie.name}`);
  }
  if (cookie.secure) out += '; Secure';
  return out;
}

function normalizeRemoteAddress(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** Resolves on 'drain', or when the response closes (client gone): whichever comes first. */
function waitForDrain(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * The request body as a web stream the handler reads at its own pace (at most 64 KiB are read ahead).
 * Not `Readable.toWeb(req)`: in Node 20 that adapter still enqueues data already buffered in the request after
 * the reader cancelled, and the ERR_INVALID_STATE it throws from the 'data' callback ends the process. Here
 * every controller call is guarded and nothing is thrown from a stream callback. A cancel never destroys the
 * request (that would take the socket, and with it the answer, down): the host answers first and then drops
 * the unread rest (`discardUnreadBody`).
 */
function requestBodyStream(req: http.IncomingMessage, res: http.ServerResponse): ReadableStream<Uint8Array> {
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  let open = true;
  const settle = (finish: (c: ReadableStreamDefaultController<Uint8Array>) => void) => {
    if (!open) return;
    detach();
    try {
      if (controller) finish(controller);
    } catch {
      // the stream is already closed or errored: nothing left to tell the reader
    }
  };
  const onData = (chunk: Buffer) => {
    if (!open || !controller) return;
    try {
      controller.enqueue(new Uint8Array(chunk)); // a copy: the chunk may be a view of a pooled buffer
      if ((controller.desiredSize ?? 0) <= 0) req.pause();
    } catch {
      detach();
    }
  };
  const onEnd = () => settle((c) => c.close());
  const onError = (error: Error) => settle((c) => c.error(error));
  const onClose = () => {
    if (!req.complete) settle((c) => c.error(new Error('the client closed the connection before the body ended')));
  };
  function detach(): void {
    open = false;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
  }
  // Answered while the body was still coming: a reader still waiting is told so, and the rest is dropped.
  res.once('finish', () => {
    settle((c) => c.error(new Error('the answer was sent before the body was read')));
    discardUnreadBody(req, res);
  });
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        req.pause();
        req.on('data', onData);
        req.on('end', onEnd);
        req.on('error', onError);
        req.on('close', onClose);
      },
      pull() {
        if (open) req.resume();
      },
      cancel() {
        detach();
        discardUnreadBody(req, res);
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }),
  );
}

/**
 * After a handler stopped reading (it answered early, or cancelled the body): reads and drops the rest of the
 * body so the connection stays usable; past UNREAD_BODY_DISCARD_BYTES it stops reading and closes the
 * connection once the answer is out (never before: the client would lose the answer).
 */
const discarding = new WeakSet<http.IncomingMessage>();
function discardUnreadBody(req: http.IncomingMessage, res: http.ServerResponse): void {
  // Someone still reads it (the host's web stream, or the library's async iterator when the body is the
  // IncomingMessage itself, as in Azure, where nothing drops it either).
  const reading = req.listenerCount('data') > 0 || req.listenerCount('readable') > 0;
  if (req.complete || req.destroyed || reading || discarding.has(req)) return;
  discarding.add(req);
  let discarded = 0;
  const closeAfterAnswer = () => {
    req.off('data', onData);
    req.pause();
    res.shouldKeepAlive = false;
    const cut = () => req.socket?.destroy();
    if (res.writableFinished) cut();
    else res.once('finish', cut);
  };
  const onData = (chunk: Buffer) => {
    discarded += chunk.byteLength;
    if (discarded > UNREAD_BODY_DISCARD_BYTES) closeAfterAnswer();
  };
  req.on('data', onData);
  req.resume();
}

const PENDING = Symbol('pending');

/**
 * Streams a web body to the node response chunk by chunk with backpressure. A body that is complete within one
 * turn of the event loop (a string, a buffer, JSON) gets a Content-Length; anything slower goes out chunked.
 */
async function writeBody(
  res: http.ServerResponse,
  body: ReadableStream<Uint8Array> | null,
  skipBody: boolean,
): Promise<void> {
  if (!body || skipBody) {
    if (body) await body.cancel().catch(() => undefined);
    if (!res.hasHeader('content-length') && !skipBody) res.setHeader('content-length', '0');
    res.end();
    return;
  }
  const reader = body.getReader();
  let clientGone = false;
  const onClose = () => {
    if (!res.writableFinished) {
      clientGone = true;
      reader.cancel(new Error('client disconnected')).catch(() => undefined);
    }
  };
  res.on('close', onClose);
  try {
    const first = await reader.read();
    if (first.done) {
      if (!res.hasHeader('content-length')) res.setHeader('content-length', '0');
      res.end();
      return;
    }
    const secondPromise = reader.read();
    const second = await Promise.race([
      secondPromise,
      new Promise<typeof PENDING>((r) => setImmediate(() => r(PENDING))),
    ]);
    if (second !== PENDING && second.done) {
      if (!res.hasHeader('content-length')) res.setHeader('content-length', String(first.value.byteLength));
      res.end(first.value);
      return;
    }
    let next = secondPromise;
    let chunk: Uint8Array | undefined = first.value;
    for (;;) {
      if (clientGone) return;
      if (chunk && chunk.byteLength > 0 && !res.write(chunk)) await waitForDrain(res);
      if (clientGone) return;
      const r = await next;
      if (r.done) break;
      chunk = r.value;
      next = reader.read();
    }
    res.end();
  } finally {
    res.off('close', onClose);
    reader.releaseLock();
  }
}

interface HostContext {
  prefixSegments: string[];
  azureStreamProxyBodies: boolean;
  log: (entry: HostLogEntry) => void;
  logInvocations: boolean;
  routeTable(): RouteEntry[];
}

function emptyResponse(res: http.ServerResponse, status: number, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = status;
  for (const name of res.getHeaderNames()) if (name !== 'connection') res.removeHeader(name);
  for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v);
  res.setHeader('content-length', '0');
  res.end();
}

function findRoute(
  ctx: HostContext,
  method: string,
  pathname: string,
): { entry: RouteEntry; params: Record<string, string> } | null {
  let rawSegs = pathname.split('/').slice(1); // pathname always starts with '/'
  // A single trailing slash is ignored, like ASP.NET Core routing does.
  if (rawSegs.length > 0 && rawSegs[rawSegs.length - 1] === '') rawSegs = rawSegs.slice(0, -1);
  const segs = rawSegs.map(decodeSegment);
  const prefix = ctx.prefixSegments;
  if (segs.length < prefix.length) return null;
  for (let i = 0; i < prefix.length; i++) {
    if ((segs[i] as string).toUpperCase() !== (prefix[i] as string).toUpperCase()) return null;
  }
  const rest = segs.slice(prefix.length);
  // The table is in the host's route order: the first route whose path and method both match wins.
  for (const entry of ctx.routeTable()) {
    if (!entry.fn.http.methods.includes(method)) continue;
    const params = matchTemplate(entry.fn.http.template, rest);
    if (params) return { entry, params };
  }
  return null;
}

async function handleRequest(
  ctx: HostContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  port: number,
): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  // The Host header is client input: only a plain host[:port] may become the request URL's authority.
  const hostHeader = req.headers.host;
  const authority = hostHeader && /^[A-Za-z0-9.\-_[\]:]+$/.test(hostHeader) ? hostHeader : `localhost:${port}`;
  const target = req.url ?? '/';
  let url: URL;
  try {
    // Origin-form targets are appended (not resolved), so `//evil.example/api/x` stays a path.
    url = target.startsWith('/') ? new URL(`http://${authority}${target}`) : new URL(target);
  } catch {
    emptyResponse(res, 400, { connection: 'close' });
    return;
  }

  // Azure rejects bodies over 100 MB. Only the declared length is checked (the host never buffers bodies).
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_REQUEST_BODY_BYTES) {
    emptyResponse(res, 413, { connection: 'close' });
    return;
  }

  const match = findRoute(ctx, method, url.pathname);
  if (!match) {
    // What Azure answers when no function takes the request (the app's fallback function takes every
    // path below the prefix, so this is only a path outside it): an empty 404.
    emptyResponse(res, 404);
    return;
  }
  const { entry, params } = match;
  const fn = entry.fn;

  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    if (name.toLowerCase() === 'x-forwarded-for') continue;
    try {
      headers.append(name, req.rawHeaders[i + 1] as string);
    } catch {
      // a header value undici rejects: drop it rather than fail the request
    }
  }
  // In Azure the front end sets x-forwarded-for. Locally nothing sits in front of this server, so the socket
  // address is the only trustworthy value: a client-supplied header is always OVERWRITTEN (never just
  // defaulted), otherwise any caller could spoof its address (rate limits, audit logs, lockouts).
  headers.set('x-forwarded-for', normalizeRemoteAddress(req.socket.remoteAddress));

  const hasBody = method !== 'GET' && method !== 'HEAD';
  // The body stays a stream of the incoming request: nothing is buffered by the host.
  const body = hasBody
    ? ctx.azureStreamProxyBodies
      ? (req as unknown as ReadableStream<Uint8Array>) // undici turns the async iterable into a stream, as in Azure
      : requestBodyStream(req, res)
    : undefined;
  const nativeRequest = new Request(url.href, {
    method,
    headers,
    body,
    duplex: 'half', // required by undici for a stream body
  });
  const request = new HttpRequest({ nativeRequest, params } as unknown as ConstructorParameters<typeof HttpRequest>[0]);

  const invocationId = randomUUID();
  const started = performance.now();
  // Like the worker: logging after the handler returned is suspicious, except from postInvocation hooks.
  let phase: 'running' | 'postInvocationHooks' | 'done' = 'running';
  const userLog = (level: LogLevel, ...args: unknown[]) => {
    const message = format(...args);
    const hookContext: Record<string, unknown> = {
      hookData: {},
      level,
      message,
      category: 'user',
      invocationContext: context,
    };
    // Log hooks are synchronous in the worker; they may change the level or the message.
    for (const hook of registry().hooks.log) {
      try {
        hook(hookContext);
      } catch (err) {
        ctx.log({ level: 'error', category: 'system', message: `log hook failed: ${(err as Error).message}` });
      }
    }
    if (phase === 'done') {
      ctx.log({
        level: 'warning',
        category: 'system',
        message: `Warning: Unexpected call to 'log' on the context object after function execution has completed. Please check for asynchronous calls that are not awaited. Function name: ${fn.name}. Invocation Id: ${invocationId}.`,
      });
    }
    ctx.log({
      level: hookContext.level as LogLevel,
      category: 'user',
      message: String(hookContext.message),
      functionName: fn.name,
      invocationId,
    });
  };
  const context: InvocationContext = new InvocationContext({
    invocationId,
    functionName: fn.name,
    logHandler: userLog,
    options: effectiveOptions(fn.metadata),
  } as InvocationContextInit);

  let status = 0;
  let outcome = 'Succeeded';
  try {
    const reg = registry();
    const hookData: Record<string, unknown> = {};
    const preContext: Record<string, unknown> = {
      hookData,
      appHookData: reg.appHookData,
      invocationContext: context,
      inputs: [request],
      functionCallback: fn.callback,
    };
    // Same sequence as the worker: preInvocation hooks (may replace inputs or the handler), the handler,
    // postInvocation hooks (see the result or error and may replace either).
    await runHooks('preInvocation', preContext);
    let result: unknown;
    let error: unknown;
    try {
      const callback = preContext.functionCallback as FunctionCallback;
      result = await callback(...(preContext.inputs as unknown[]), context);
    } catch (err) {
      error = err;
    }
    phase = 'postInvocationHooks';
    const postContext: Record<string, unknown> = {
      hookData,
      appHookData: reg.appHookData,
      invocationContext: context,
      inputs: preContext.inputs,
      result,
      error,
    };
    try {
      await runHooks('postInvocation', postContext);
    } finally {
      phase = 'done';
    }
    if (postContext.error !== undefined && postContext.error !== null) throw postContext.error;
    result = postContext.result;

    let response: HttpResponse;
    if (result === undefined || result === null) {
      response = new HttpResponse({ status: 204 });
    } else if (result instanceof HttpResponse) {
      response = result;
    } else if (typeof result === 'object') {
      response = new HttpResponse(result as ConstructorParameters<typeof HttpResponse>[0]);
    } else {
      throw new Error(
        'The HTTP response must be an object with optional properties "body", "status", "headers", and "cookies".',
      );
    }

    status = response.status;
    res.statusCode = response.status;
    const connectionHeader = response.headers.get('connection') ?? '';
    const connectionNamed = new Set(
      connectionHeader
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
    );
    for (const [name, value] of response.headers) {
      if (name === 'set-cookie' || HOP_BY_HOP.has(name) || connectionNamed.has(name)) continue;
      res.setHeader(name, value);
    }
    const setCookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
    if (setCookies.length > 0) res.setHeader('set-cookie', setCookies);
    const skipBody = method === 'HEAD' || NULL_BODY_STATUSES.has(response.status);
    await writeBody(res, response.body as unknown as ReadableStream<Uint8Array> | null, skipBody);
  } catch (err) {
    outcome = 'Failed';
    status = 500;
    const e = err as Error;
    ctx.log({
      level: 'error',
      category: 'system',
      message: `Exception while executing function: Functions.${fn.name} (Id=${invocationId}): ${e?.stack ?? String(err)}`,
      functionName: fn.name,
      invocationId,
    });
    if (res.headersSent) {
      res.destroy(); // the status line is gone: cut the stream so the client sees a truncated response
    } else {
      emptyResponse(res, 500);
    }
  } finally {
    phase = 'done';
    if (ctx.logInvocations) {
      ctx.log({
        level: 'information',
        category: 'system',
        message: `Executed 'Functions.${fn.name}' (${outcome}, Id=${invocationId}, Duration=${Math.round(performance.now() - started)}ms) ${method} ${url.pathname} ${status}`,
        functionName: fn.name,
        invocationId,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------------

/**
 * The answer to a request Node could not parse, which never reaches the app (in Azure the front end answers
 * these itself). Past Node's 16 KB header limit: a request line that long is an over-long URL (414, as the
 * app answers from 4 KB on); otherwise the headers are too large (431). Anything else is a 400.
 */
function clientErrorStatus(err: NodeJS.ErrnoException & { rawPacket?: Buffer }): string {
  if (err.code !== 'HPE_HEADER_OVERFLOW') return '400 Bad Request';
  const requestLineEnd = err.rawPacket?.indexOf('\r\n') ?? -1;
  return requestLineEnd === -1 || requestLineEnd > 8 * 1024
    ? '414 URI Too Long'
    : '431 Request Header Fields Too Large';
}

function printRouteTable(routes: HostRoute[], port: number, prefixPath: string): void {
  const lines = ['', 'Functions:', ''];
  for (const fn of registry().functions.values()) {
    const route = routes.find((r) => r.name === fn.name);
    if (route) lines.push(`  ${route.name}: [${route.methods.join(',')}] http://localhost:${port}${route.url}`);
    else lines.push(`  ${fn.name}: ${fn.triggerType} (not served by the dev host)`);
  }
  if (routes.length === 0) {
    lines.push(
      '  (none) — were the function modules loaded after installFunctionsCoreStandIn()? @azure/functions caches a missing host.',
    );
  }
  lines.push('', `Listening on http://localhost:${port}${prefixPath}`, '');
  console.log(lines.join('\n'));
}

export async function startHost(opts: StartHostOptions = {}): Promise<StartedHost> {
  installFunctionsCoreStandIn();
  const reg = registry();
  const log = opts.onLog ?? consoleLog;
  reg.systemLog = log;
  const prefix = readRoutePrefix(opts.hostJsonPath);
  const prefixSegments = prefix === '' ? [] : prefix.split('/');

  let cachedVersion = -1;
  let table: RouteEntry[] = [];
  const routeTable = (): RouteEntry[] => {
    if (cachedVersion !== reg.version) {
      const entries: RouteEntry[] = [];
      let order = 0;
      for (const fn of reg.functions.values()) {
        if (fn.http) entries.push({ fn: fn as RouteEntry['fn'], order: order++ });
      }
      if (opts.routeOrder === 'function-name') {
        entries.sort((a, b) => compareOrdinalIgnoreCase(a.fn.name, b.fn.name));
      } else {
        // Deterministic: precedence (literal > constrained parameter > parameter > catch-all, segment by
        // segment), then the template text, then the function name.
        entries.sort(
          (a, b) =>
            comparePrecedence(a.fn.http.template.precedence, b.fn.http.template.precedence) ||
            a.fn.http.route.toLowerCase().localeCompare(b.fn.http.route.toLowerCase()) ||
            a.fn.name.localeCompare(b.fn.name),
        );
      }
      table = entries;
      cachedVersion = reg.version;
    }
    return table;
  };
  const ctx: HostContext = {
    prefixSegments,
    azureStreamProxyBodies: opts.azureStreamProxyBodies ?? false,
    log,
    logInvocations: opts.logInvocations ?? false,
    routeTable,
  };

  // appStart hooks run before the host accepts requests (the worker runs them after loading the app).
  await runHooks('appStart', {
    hookData: reg.appHookData,
    appHookData: reg.appHookData,
    functionAppDirectory: process.cwd(),
  });

  const server = http.createServer();
  // Keep-alive longer than typical client pools so a reused socket is not closed under a client.
  server.keepAliveTimeout = 65_000;
  let closing = false;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  // One request's failure is that request's: it is logged and answered (or its connection cut), and nothing
  // it throws, synchronously, in a promise or from a stream or socket event, reaches the process.
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight++;
    const failed = (err: unknown) => {
      log({ level: 'error', category: 'system', message: `dev host: ${(err as Error)?.stack ?? String(err)}` });
      if (!res.headersSent) emptyResponse(res, 500);
      else res.destroy();
    };
    const streamFailed = (err: Error) =>
      log({ level: 'warning', category: 'system', message: `dev host: connection error: ${err.message}` });
    req.on('error', streamFailed);
    res.on('error', streamFailed);
    if (closing) res.setHeader('connection', 'close');
    // Drop an upload the handler did not read, so the connection can carry the next request.
    res.on('finish', () => discardUnreadBody(req, res));
    res.on('close', () => {
      inFlight--;
      if (closing) setImmediate(() => server.closeIdleConnections());
      if (inFlight === 0) onIdle?.();
    });
    try {
      handleRequest(ctx, req, res, port).catch(failed);
    } catch (err) {
      failed(err);
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${clientErrorStatus(err)}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  });

  const bindHost = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost =
    bindHost === '0.0.0.0' || bindHost === '::' ? '127.0.0.1' : bindHost.includes(':') ? `[${bindHost}]` : bindHost;
  const prefixPath = prefix === '' ? '' : `/${prefix}`;
  const routes = toHostRoutes(prefix);
  if (opts.printRoutes) printRouteTable(routes, port, prefixPath);
  if (routes.length > 0 && !reg.httpStreamEnabled) {
    log({
      level: 'warning',
      category: 'system',
      message:
        'dev host: app.setup({ enableHttpStream: true }) was not called. This host always streams, but in Azure request and response bodies would be buffered.',
    });
  }

  let closePromise: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closePromise ??= (async () => {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        const timeoutMs = opts.shutdownTimeoutMs ?? 10_000;
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<void>((resolve) => {
          onIdle = resolve;
        });
        const timedOut = await Promise.race([
          idle.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          log({
            level: 'warning',
            category: 'system',
            message: `dev host: ${inFlight} request(s) still running after ${timeoutMs} ms; closing their connections.`,
          });
          server.closeAllConnections();
        }
      }
      server.closeIdleConnections();
      await serverClosed;
      // appTerminate hooks (the app closes its database pool there). All of them run; the first error is rethrown.
      let firstError: unknown;
      for (const hook of [...reg.hooks.appTerminate]) {
        try {
          await hook({ hookData: reg.appHookData, appHookData: reg.appHookData });
        } catch (err) {
          firstError ??= err;
          log({
            level: 'error',
            category: 'system',
            message: `appTerminate hook failed: ${(err as Error)?.stack ?? String(err)}`,
          });
        }
      }
      if (firstError !== undefined) throw firstError;
    })();
    return closePromise;
  };

  return { url: `http://${urlHost}:${port}${prefixPath}`, port, routes, close };
}
