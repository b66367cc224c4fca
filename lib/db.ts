// The one database pool of this instance. Every function shares it; it is created on first use
// (not at import, so a cold start that serves a cached 304 never pays for a connection) and closed
// when the host terminates the app.
import postgres from 'postgres';
import { type Config, config, TIMER_POOL_MAX } from './config';

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

let pool: Sql | undefined;
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

function createPool(cfg: Config, max: number): Sql {
  const options = { ...poolOptions(cfg), max };
  return (cfg.DATABASE_URL ? postgres(cfg.DATABASE_URL, options) : postgres(options)) as Sql;
}

/** The shared pool; created on first call. */
export function db(): Sql {
  pool ??= createPool(config(), config().poolMax);
  return pool;
}

/**
 * The timer functions' pool: TIMER_POOL_MAX connections. Flex Consumption runs each timer on an instance
 * of its own, which then never opens the HTTP pool; the connection budget (lib/config.ts) counts
 * TIMER_POOL_MAX per timer, not a full pool.
 */
export function timerDb(): Sql {
  timerPool ??= createPool(config(), TIMER_POOL_MAX);
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
  const closing = [pool, timerPool];
  pool = undefined;
  timerPool = undefined;
  await Promise.all(closing.map((each) => each?.end({ timeout: timeoutSeconds })));
}
