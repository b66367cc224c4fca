// The one database pool of this instance. Every function shares it; it is created on first use
// (not at import, so a cold start that serves a cached 304 never pays for a connection) and closed
// when the host terminates the app. It fails fast while its server is gone: once a connection attempt
// fails, db() answers 503 at once (no request queues behind a connect timeout) until one probe a few
// times a second finds the server accepting connections again.
import { connect, type Socket } from 'node:net';
import postgres from 'postgres';
import { type Config, config, TIMER_POOL_MAX } from './config';
import { instrumentPool } from './db-telemetry';
import { serviceUnavailable } from './errors';

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;
/** The pool or a transaction: what a query helper takes when it works inside and outside one. */
export type AnySql = Sql | TransactionSql;

/**
 * PostgreSQL's type id of bytea[]: `sql.array(buffers, BYTEA_ARRAY)`. Naming the element type (17) is not
 * enough: postgres.js learns which array type belongs to it on a pool's first connection, so as the first
 * query of a cold instance the value would be sent as plain bytea.
 */
export const BYTEA_ARRAY = 1001;
/** text[] (for role names, error messages…), for the same reason. */
export const TEXT_ARRAY = 1009;
/** uuid[], for the same reason. */
export const UUID_ARRAY = 2951;

const ENTRA_TOKEN_SCOPE = 'https://ossrdbms-aad.database.windows.net/.default';

/** The HTTP pool and what it knows of its server. */
let pool: { sql: Sql; server: ServerWatch } | undefined;
let timerPool: Sql | undefined;

/**
 * Without a password, connect with a Microsoft Entra ID token of the instance's managed identity.
 * postgres.js calls `password` once per new connection, so a token is fetched per connection
 * (the SDK caches and refreshes it) and never reused after it expires.
 */
function entraPassword(): () => Promise<string> {
  let credential: { getToken(scope: string): Promise<{ token: string } | null> } | undefined;
  return async () => {
    if (!credential) {
      // Loaded lazily: @azure/identity is large and only production needs it.
      const { DefaultAzureCredential } = await import('@azure/identity');
      credential = new DefaultAzureCredential();
    }
    const token = await credential.getToken(ENTRA_TOKEN_SCOPE);
    if (!token) throw new Error('Microsoft Entra ID returned no token for the database');
    return token.token;
  };
}

function sslOption(mode: Config['DB_SSL']): postgres.Options<Record<string, postgres.PostgresType>>['ssl'] {
  switch (mode) {
    case 'disable':
      return false;
    case 'prefer':
      return 'prefer';
    case 'require':
      return 'require';
    case 'verify-full':
      return 'verify-full';
  }
}

/** The postgres.js options for this configuration (exported for the migration runner and tests). */
export function poolOptions(cfg: Config = config()): postgres.Options<Record<string, postgres.PostgresType>> {
  const options: postgres.Options<Record<string, postgres.PostgresType>> = {
    max: cfg.poolMax,
    idle_timeout: cfg.DB_IDLE_TIMEOUT_SECONDS,
    max_lifetime: cfg.DB_MAX_LIFETIME_SECONDS,
    connect_timeout: cfg.DB_CONNECT_TIMEOUT_SECONDS,
    // postgres.js waits this many seconds before a connection's next attempt after a failed one (by default
    // growing to 20 s), and that wait comes BEFORE the connect timeout starts: a request during an outage
    // waited it out, then the timeout. No wait: an attempt fails within the connect timeout, and while the
    // server is gone the HTTP pool does not attempt at all (ServerWatch below).
    backoff: () => 0,
    prepare: cfg.DB_PREPARE_STATEMENTS,
    // Server-side guard: a runaway statement is cancelled by PostgreSQL itself, freeing the connection.
    connection: { statement_timeout: cfg.DB_STATEMENT_TIMEOUT_MS, application_name: APPLICATION_NAME },
    onnotice: () => {},
  };
  if (cfg.DATABASE_URL) return options;
  return {
    ...options,
    host: cfg.DB_HOST,
    port: cfg.DB_PORT,
    database: cfg.DB_NAME,
    username: cfg.DB_USER,
    password: cfg.DB_PASSWORD ?? entraPassword(),
    ssl: sslOption(cfg.DB_SSL),
  };
}

function createPool(cfg: Config, max: number, extra: Partial<postgres.Options<Record<string, never>>> = {}): Sql {
  const options = { ...poolOptions(cfg), ...extra, max };
  return (cfg.DATABASE_URL ? postgres(cfg.DATABASE_URL, options) : postgres(options)) as Sql;
}

/** How long a client is told to wait (Retry-After) while the server is known to be gone. */
export const DATABASE_GONE_RETRY_AFTER_SECONDS = 1;

/**
 * The shared pool; created on first call. While its server is known to be gone this throws, synchronously,
 * the 503 the request answers (Retry-After: 1 s): callers call it inside their error handling.
 */
export function db(): Sql {
  pool ??= createHttpPool(config());
  if (pool.server.gone) {
    throw serviceUnavailable('The database is unavailable; try again', DATABASE_GONE_RETRY_AFTER_SECONDS);
  }
  return pool.sql;
}

function createHttpPool(cfg: Config): { sql: Sql; server: ServerWatch } {
  const server = new ServerWatch(() => sql`select 1`);
  const socket = watchedSocket(server, cfg.DB_CONNECT_TIMEOUT_SECONDS * 1000);
  const sql = createPool(cfg, cfg.poolMax, { socket } as object);
  // The probe above keeps the bare pool: a `select 1` every 200 ms during an outage is no statement to trace.
  return { sql: instrumentPool(sql, 'http', cfg.poolMax), server };
}

// ---------------------------------------------------------------------------------------------------------
// Knowing that the server is gone
// ---------------------------------------------------------------------------------------------------------

/** How often, while the server is gone, one `select 1` asks whether it is back (after the previous one ended). */
const PROBE_INTERVAL_MS = 200;

/**
 * What the pool knows of its server: there, until a connection attempt fails (nothing answers on its port,
 * the connect timeout fires, or it hangs up before saying a word); then gone until a probe's `select 1`
 * succeeds. A connection the server ends after it spoke (pg_terminate_backend, an idle timeout, a restart)
 * says nothing by itself: postgres.js opens a new one for the next query, and only if that attempt fails is
 * the server gone.
 */
class ServerWatch {
  gone = false;
  private goneSince = 0;
  private probe: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly selectOne: () => Promise<unknown>) {}

  /** A connection attempt failed. */
  attemptFailed(): void {
    if (this.gone || this.stopped) return;
    this.gone = true;
    this.goneSince = performance.now();
    console.warn('[db] the database server is not accepting connections: answering 503 until it is back');
    this.scheduleProbe(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.probe);
  }

  private scheduleProbe(delayMs: number): void {
    // Unref'd: a probe never keeps a process alive that has nothing else to do.
    this.probe = setTimeout(() => void this.runProbe(), delayMs).unref();
  }

  private async runProbe(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.selectOne();
      this.gone = false;
      console.warn(`[db] the database server is back after ${Math.round(performance.now() - this.goneSince)} ms`);
    } catch {
      this.scheduleProbe(PROBE_INTERVAL_MS);
    }
  }
}

/** What postgres.js passes to a custom socket factory: its parsed options. */
interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * The pool's sockets (postgres.js's `socket` option): plain TCP, as postgres.js opens them (TLS is layered on
 * top by postgres.js itself, using `host` for the certificate check), watched for a failed attempt: a socket
 * that closes before reading a byte never reached a server that answers. One host, as the configuration
 * allows.
 */
function watchedSocket(server: ServerWatch, connectTimeoutMs: number): (target: SocketTarget) => Socket {
  return (target) => {
    const host = target.host[0] ?? 'localhost';
    const socket = target.path ? connect(target.path) : connect(target.port[0] ?? 5432, host);
    // postgres.js reads these for TLS (servername) and its error messages.
    Object.assign(socket, { host, port: target.port[0] });
    // postgres.js adds its own error listener once this returns; one is needed before, or an error emitted in
    // between would be thrown.
    socket.on('error', () => {});
    // A server that lets the connect timeout pass in silence is gone from that moment (postgres.js's own timer
    // ends the attempt at the same time), not once the socket has finished closing: the request's audit row,
    // written next, must not wait for a second timeout.
    const silence = setTimeout(() => {
      if (socket.bytesRead === 0) server.attemptFailed();
    }, connectTimeoutMs).unref();
    socket.once('close', () => {
      clearTimeout(silence);
      if (socket.bytesRead === 0) server.attemptFailed();
    });
    return socket;
  };
}

/**
 * The timer functions' pool: TIMER_POOL_MAX connections. Flex Consumption runs each timer on an instance
 * of its own, which then never opens the HTTP pool; the connection budget (lib/config.ts) counts
 * TIMER_POOL_MAX per timer, not a full pool.
 */
export function timerDb(): Sql {
  timerPool ??= instrumentPool(createPool(config(), TIMER_POOL_MAX), 'timer', TIMER_POOL_MAX);
  return timerPool;
}

/** Identifies this instance's connections in pg_stat_activity (one name per process). */
export const APPLICATION_NAME = `aada-lms-api:${process.env.WEBSITE_INSTANCE_ID?.slice(0, 12) ?? process.pid}`;

export interface PoolStats {
  max: number;
  open: number;
  active: number;
  idle: number;
}

/** This instance's pool as the server sees it (open connections by state). */
export async function poolStats(): Promise<PoolStats> {
  const max = config().poolMax;
  const [row] = await db()<{ open: number; active: number; idle: number }[]>`
    select count(*)::int as open,
           count(*) filter (where state = 'active')::int as active,
           count(*) filter (where state = 'idle')::int as idle
      from pg_stat_activity
     where application_name = ${APPLICATION_NAME}`;
  return { max, open: row?.open ?? 0, active: row?.active ?? 0, idle: row?.idle ?? 0 };
}

/** Closes the pool, letting running queries finish for up to `timeoutSeconds`. */
export async function closePool(timeoutSeconds = 5): Promise<void> {
  pool?.server.stop();
  const closing = [pool?.sql, timerPool];
  pool = undefined;
  timerPool = undefined;
  await Promise.all(closing.map((each) => each?.end({ timeout: timeoutSeconds })));
}
