// Configuration: read from the environment once, validated with zod, frozen.
// In Azure every value is an app setting (Bicep in infra/ provides them); locally, the dev host
// fills in defaults for the embedded database. A missing or malformed variable fails start-up with
// a message that names it, instead of surfacing later as a confusing runtime error.
//
// Why one file over 350 lines: one schema holds every variable the app reads, so what a deployment must
// set, and each value's bounds and default, is read in one place.
import { z } from 'zod';

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalInteger = (min: number, max: number) =>
  z.preprocess((v) => (v === '' ? undefined : v), integer(min, max).optional());
const commaList = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());
/** Bytes of canonical base64 (what `openssl rand -base64 32` prints), or undefined: Node's decoder skips
 * characters outside the alphabet, so a mistyped key would otherwise become a shorter, different key. */
const base64Bytes = (text: string) => {
  const bytes = Buffer.from(text, 'base64');
  return bytes.length > 0 && bytes.toString('base64') === text ? bytes : undefined;
};
/** A secret key: canonical base64 of at least 32 bytes. */
const base64Key = z
  .string()
  .min(1)
  .refine((text) => (base64Bytes(text)?.length ?? 0) >= 32, 'expected base64 of at least 32 bytes');
/** `keyId:base64(32 bytes)` pairs, ids unique: the first encrypts, all decrypt. */
const encryptionKeyList = z
  .string()
  .min(1)
  .superRefine((text, ctx) => {
    const ids = new Set<string>();
    for (const entry of text.split(',').map((item) => item.trim())) {
      const match = /^([A-Za-z0-9_-]{1,32}):(.+)$/.exec(entry);
      if (!match) {
        ctx.addIssue({ code: 'custom', message: 'expected keyId:base64key[,keyId:base64key…]' });
        return;
      }
      const [, id, base64] = match as unknown as [string, string, string];
      if (base64Bytes(base64)?.length !== 32) {
        ctx.addIssue({ code: 'custom', message: `key ${id} is not base64 of exactly 32 bytes (AES-256)` });
      }
      if (ids.has(id)) ctx.addIssue({ code: 'custom', message: `key id ${id} appears twice` });
      ids.add(id);
    }
  });
/**
 * The blind-index keys: comma-separated entries, the first indexes new values, all are looked up by.
 * An entry is `keyId:base64` (indexes made with it carry the key id) or bare base64 (the key of the
 * indexes written before key ids existed, stored without one; at most one such entry). Ids unique, no
 * key twice, each canonical base64 of at least 32 bytes.
 */
const blindIndexKeyList = z
  .string()
  .min(1)
  .superRefine((text, ctx) => {
    const ids = new Set<string>();
    const keys = new Set<string>();
    let bare = 0;
    for (const entry of text.split(',').map((item) => item.trim())) {
      const match = /^(?:([A-Za-z0-9_-]{1,32}):)?([^:]+)$/.exec(entry);
      const bytes = match ? base64Bytes(match[2] as string) : undefined;
      if (!match || (bytes?.length ?? 0) < 32) {
        ctx.addIssue({
          code: 'custom',
          message: 'expected base64 of at least 32 bytes, or keyId:base64[,keyId:base64…] while rotating',
        });
        return;
      }
      const id = match[1];
      if (id === undefined && ++bare > 1) {
        ctx.addIssue({ code: 'custom', message: 'only one key may be given without a key id' });
      }
      if (id !== undefined && ids.has(id)) ctx.addIssue({ code: 'custom', message: `key id ${id} appears twice` });
      if (id !== undefined) ids.add(id);
      const hex = (bytes as Buffer).toString('hex');
      if (keys.has(hex)) ctx.addIssue({ code: 'custom', message: 'the same key appears twice' });
      keys.add(hex);
    }
  });
/** Whether bytes are an X.509 certificate (DER). node-forge is loaded only when there is one to check. */
const isDerCertificate = (bytes: Buffer | undefined): boolean => {
  if (!bytes) return false;
  try {
    const forge = require('node-forge') as typeof import('node-forge');
    forge.pki.certificateFromAsn1(forge.asn1.fromDer(bytes.toString('binary')));
    return true;
  } catch {
    return false;
  }
};
/** A positive count or duration for the sign-in throttle (tests lower them). */
const limit = (fallback: number) => integer(1, 31_536_000).default(fallback);
const flag = z
  .enum(['true', 'false', '1', '0', ''])
  .default('false')
  .transform((v) => v === 'true' || v === '1');

const EnvSchema = z.object({
  // Fail closed: without APP_ENV the app is production, which refuses to start without its settings
  // and real keys. Only `npm start` (development), the test suite (test) and the bench say otherwise.
  APP_ENV: z.enum(['development', 'test', 'production']).default('production'),

  // Database: either a URL (local, CI) or discrete settings (Azure, passwordless with Entra ID).
  DATABASE_URL: z.string().url().optional(),
  DB_HOST: z.string().min(1).optional(),
  DB_PORT: integer(1, 65535).default(5432),
  DB_NAME: z.string().min(1).optional(),
  DB_USER: z.string().min(1).optional(),
  DB_PASSWORD: z.string().min(1).optional(),
  /** Unset: verify-full in production (the only mode allowed there), prefer elsewhere. */
  DB_SSL: optional(z.enum(['disable', 'prefer', 'require', 'verify-full'])),
  // PgBouncer (Azure's built-in, port 6432) pools per transaction: prepared statements must be off.
  DB_PREPARE_STATEMENTS: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),

  // Pool sizing: all instances together must fit the server's connection limit.
  DB_POOL_MAX: optionalInteger(1, 100),
  DB_MAX_CONNECTIONS: integer(5, 10_000).default(100),
  DB_RESERVED_CONNECTIONS: integer(0, 1_000).default(20),
  /** Instances that may each hold a full pool: Flex's HTTP maximum plus its always-ready HTTP instances. */
  MAX_INSTANCES: integer(1, 1_000).default(1),
  /** Timer functions: Flex scales each on its own, one instance at a time, with a pool of TIMER_POOL_MAX. */
  TIMER_INSTANCES: integer(0, 100).default(0),
  DB_IDLE_TIMEOUT_SECONDS: integer(1, 3_600).default(30),
  DB_MAX_LIFETIME_SECONDS: integer(60, 86_400).default(1_800),
  DB_CONNECT_TIMEOUT_SECONDS: integer(1, 120).default(10),
  DB_STATEMENT_TIMEOUT_MS: integer(100, 600_000).default(15_000),

  // HTTP
  CORS_ALLOWED_ORIGINS: commaList,
  MAX_REQUEST_BODY_BYTES: integer(1_024, 100 * 1024 * 1024).default(1024 * 1024),
  PUBLIC_CACHE_MAX_AGE_SECONDS: integer(0, 86_400).default(300),
  PRIVATE_CACHE_MAX_AGE_SECONDS: integer(0, 86_400).default(300),
  HSTS_MAX_AGE_SECONDS: integer(0, 63_072_000).default(31_536_000),
  LOG_REQUESTS: flag,

  // Secrets (Key Vault references in Azure). Development and tests fall back to demo keys.
  /** `keyId:base64(32 bytes)` pairs, comma separated; the first encrypts, all decrypt. */
  PII_ENCRYPTION_KEYS: encryptionKeyList.optional(),
  /**
   * Keys of the HMAC blind indexes of people (email lookup and uniqueness, name search): base64 of at
   * least 32 bytes, or during a rotation `new:base64,<the previous entry>` (blindIndexKeyList).
   */
  PII_BLIND_INDEX_KEY: blindIndexKeyList.optional(),
  /**
   * Key of the xAPI record store's indexes (agents, activities, verbs, documents), which are not
   * rotated: unset, the entry of PII_BLIND_INDEX_KEY without a key id. Set it to that entry's value
   * before removing it from PII_BLIND_INDEX_KEY.
   */
  PII_XAPI_INDEX_KEY: optional(base64Key),
  /** base64 of at least 32 bytes: signs access tokens (HS256). */
  JWT_SIGNING_KEY: base64Key.optional(),

  /**
   * base64 of at least 32 bytes: signs the short-lived addresses of H5P activities' files (lib/h5p.ts).
   * Development and tests use a demo key; production refuses to start without it (REQUIRED_IN_PRODUCTION).
   */
  H5P_ASSET_KEY: base64Key.optional(),
  /** How long a signed H5P asset address works: long enough to load and play an activity. */
  H5P_ASSET_URL_SECONDS: integer(60, 86_400).default(3_600),

  /** base64 PKCS#12 (no passphrase) of the certificate that seals PDFs (lib/pdf-seal.ts); Key Vault in Azure. */
  PDF_SEAL_CERTIFICATE: optional(z.base64()),
  /**
   * The certificates that sealed PDFs before the current one (after a rotation), comma-separated, each
   * base64 of the DER certificate (no private key: they only verify). lib/pdf-seal.ts trusts them and the
   * current one; a sealed file is verified only if its digest is also one of ours in the files store.
   */
  PDF_SEAL_PREVIOUS_CERTIFICATES: commaList.refine(
    (entries) => entries.every((entry) => isDerCertificate(base64Bytes(entry))),
    'expected base64 DER certificates, comma-separated',
  ),

  /** The student portal; links in emails point at its pages. */
  APP_PUBLIC_URL: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.url({ protocol: /^https?$/ }).default('http://localhost:5173'),
  ),
  /** Azure Communication Services email: `https://<name>.<region>.communication.azure.com`. */
  ACS_EMAIL_ENDPOINT: optional(z.url({ protocol: /^https$/ })),
  /** A sender address of a domain verified on that resource: `DoNotReply@mail.aada.edu`. */
  ACS_EMAIL_SENDER: optional(z.email()),

  /** The blob service of lib/files.ts: the storage account's (https, managed identity) or Azurite's. */
  BLOB_ENDPOINT: optional(z.url({ protocol: /^https?$/ })),
  /** Put before each container name (files, retained): the tests give every test file its own. */
  BLOB_CONTAINER_PREFIX: z
    .string()
    .regex(/^[a-z0-9]{0,20}$/, 'lowercase letters and digits, at most 20')
    .default(''),

  // Enrollment agreements (lib/agreements.ts).
  /** Days an emailed signing link works. */
  AGREEMENT_LINK_DAYS: integer(1, 90).default(14),
  /**
   * Days after a signing link was sent (or resent) on which an unsigned agreement gets a reminder
   * email: ascending, each shorter than AGREEMENT_LINK_DAYS (checked below); empty for none. The link
   * expires, and the agreement with it, AGREEMENT_LINK_DAYS after sending (functions/agreement-reminders.ts).
   */
  AGREEMENT_REMINDER_DAYS: z
    .string()
    .default('3,7')
    .transform((text, ctx) => {
      const parts = text
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);
      const days = parts.map(Number);
      const valid =
        parts.every((part) => /^[0-9]{1,2}$/.test(part)) &&
        days.every((day, i) => day >= 1 && (i === 0 || day > (days[i - 1] as number)));
      if (!valid || days.length > 10) {
        ctx.addIssue({ code: 'custom', message: 'expected ascending whole days, comma-separated (3,7), at most 10' });
        return z.NEVER;
      }
      return days;
    }),
  /** Days the signer may still read the status and their copy with the link after signing. */
  AGREEMENT_READABLE_DAYS: integer(1, 365).default(30),
  /** Years a completed agreement is kept from its completion (no route deletes one). */
  AGREEMENT_RETENTION_YEARS: integer(5, 50).default(5),

  // Sign-in throttling (lib/throttle.ts says what each limit means).
  LOGIN_SOURCE_LIMIT: limit(30),
  LOGIN_SOURCE_WINDOW_SECONDS: limit(60),
  LOGIN_MAX_FAILURES: limit(5),
  LOGIN_FAILURE_WINDOW_SECONDS: limit(15 * 60),
  LOGIN_ACCOUNT_CEILING: limit(50),
  LOGIN_ACCOUNT_WINDOW_SECONDS: limit(60 * 60),
  LOGIN_KNOWN_SOURCE_DAYS: limit(30),
  /** How stale an instance's list of ended sessions may be: the longest a logged-out token still works. */
  SESSION_REVOCATION_POLL_SECONDS: integer(0, 300).default(5),

  // Attendance (lib/attendance.ts; the README says why 50).
  /** Minutes of instruction in one clock hour: 50 to 60 (a 50-to-60-minute class in a 60-minute period). */
  ATTENDANCE_CLOCK_HOUR_MINUTES: integer(50, 60).default(50),
  /** Below this percentage of the scheduled minutes attended, a student is listed as below the threshold. */
  ATTENDANCE_THRESHOLD_PERCENT: integer(1, 100).default(80),
});

type SslMode = NonNullable<z.infer<typeof EnvSchema>['DB_SSL']>;

export type Config = Readonly<Omit<z.infer<typeof EnvSchema>, 'DB_SSL'> & { DB_SSL: SslMode; poolMax: number }>;

/** Settings an Azure deployment must provide (checked against infra/ by a test). */
export const REQUIRED_IN_PRODUCTION = [
  'APP_ENV',
  'DB_HOST',
  'DB_NAME',
  'DB_USER',
  'DB_MAX_CONNECTIONS',
  'DB_RESERVED_CONNECTIONS',
  'MAX_INSTANCES',
  'TIMER_INSTANCES',
  'CORS_ALLOWED_ORIGINS',
  'PII_ENCRYPTION_KEYS',
  'PII_BLIND_INDEX_KEY',
  'JWT_SIGNING_KEY',
  'APP_PUBLIC_URL',
  'BLOB_ENDPOINT',
  'PDF_SEAL_CERTIFICATE',
  // Without it no H5P activity opens (lib/h5p.ts issues no signed address): refused at start instead.
  'H5P_ASSET_KEY',
] as const;

/** The most connections one instance ever needs: one Node event loop cannot keep more busy. */
export const POOL_MAX_CEILING = 10;

/** The pool of a timer function's instance (lib/db.ts timerDb): a timer runs its statements one at a time. */
export const TIMER_POOL_MAX = 2;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Pool size per HTTP instance. DB_POOL_MAX wins when set; otherwise the connection budget (server limit
 * minus reserved admin/replication headroom, minus TIMER_POOL_MAX for each timer's instance) is shared by
 * every HTTP instance the platform may start, and capped at POOL_MAX_CEILING.
 */
export function derivePoolMax(env: {
  DB_POOL_MAX?: number | undefined;
  DB_MAX_CONNECTIONS: number;
  DB_RESERVED_CONNECTIONS: number;
  MAX_INSTANCES: number;
  TIMER_INSTANCES?: number | undefined;
}): number {
  if (env.DB_POOL_MAX !== undefined) return env.DB_POOL_MAX;
  const timerConnections = (env.TIMER_INSTANCES ?? 0) * TIMER_POOL_MAX;
  const perInstance = Math.floor(
    (env.DB_MAX_CONNECTIONS - env.DB_RESERVED_CONNECTIONS - timerConnections) / env.MAX_INSTANCES,
  );
  if (perInstance < 1) {
    throw new ConfigError(
      `DB_MAX_CONNECTIONS (${env.DB_MAX_CONNECTIONS}) minus DB_RESERVED_CONNECTIONS (${env.DB_RESERVED_CONNECTIONS}) ` +
        `and ${timerConnections} for TIMER_INSTANCES (${env.TIMER_INSTANCES ?? 0}) ` +
        `cannot give every one of MAX_INSTANCES (${env.MAX_INSTANCES}) a connection: lower MAX_INSTANCES or pick a larger server`,
    );
  }
  return Math.min(perInstance, POOL_MAX_CEILING);
}

/**
 * `scope: 'database'` is for the migration runner, which touches no personal data and serves no
 * request: in production it needs the database settings (and verified TLS), not the app's keys.
 */
export function parseConfig(env: NodeJS.ProcessEnv, scope: 'app' | 'database' = 'app'): Config {
  const result = EnvSchema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const parsed = result.data;
  if (!parsed.DATABASE_URL) {
    const missing = (['DB_HOST', 'DB_NAME', 'DB_USER'] as const).filter((name) => !parsed[name]);
    if (missing.length > 0) {
      throw new ConfigError(`Invalid configuration: set DATABASE_URL, or ${missing.join(', ')}`);
    }
  }
  if (parsed.APP_ENV === 'production' && scope === 'app') {
    const missing = REQUIRED_IN_PRODUCTION.filter((name) => env[name] === undefined);
    if (missing.length > 0)
      throw new ConfigError(`Invalid configuration: ${missing.join(', ')} required in production`);
    if (!parsed.APP_PUBLIC_URL.startsWith('https://')) {
      throw new ConfigError('Invalid configuration: APP_PUBLIC_URL must be the portal’s https URL in production');
    }
    if (!parsed.BLOB_ENDPOINT?.startsWith('https://')) {
      throw new ConfigError(
        'Invalid configuration: BLOB_ENDPOINT must be the storage account’s https URL in production',
      );
    }
  }
  // The xAPI indexes are not rotated: they stay on the key without an id unless given their own.
  const indexEntries = parsed.PII_BLIND_INDEX_KEY?.split(',').map((entry) => entry.trim()) ?? [];
  if (indexEntries.length > 0 && indexEntries.every((entry) => entry.includes(':')) && !parsed.PII_XAPI_INDEX_KEY) {
    throw new ConfigError(
      'Invalid configuration: PII_XAPI_INDEX_KEY is required when every entry of PII_BLIND_INDEX_KEY has a key id: ' +
        'set it to the value of the entry without one (the key the xAPI indexes were made with) before removing that entry',
    );
  }
  const lastReminder = parsed.AGREEMENT_REMINDER_DAYS.at(-1);
  if (lastReminder !== undefined && lastReminder >= parsed.AGREEMENT_LINK_DAYS) {
    throw new ConfigError(
      `Invalid configuration: AGREEMENT_REMINDER_DAYS (${parsed.AGREEMENT_REMINDER_DAYS.join(',')}) must all come ` +
        `before the link expires (AGREEMENT_LINK_DAYS ${parsed.AGREEMENT_LINK_DAYS})`,
    );
  }
  const DB_SSL = parsed.DB_SSL ?? (parsed.APP_ENV === 'production' ? 'verify-full' : 'prefer');
  if (parsed.APP_ENV === 'production') refuseUnverifiedTls(DB_SSL, parsed.DATABASE_URL, parsed.DB_HOST);
  if (Boolean(parsed.ACS_EMAIL_ENDPOINT) !== Boolean(parsed.ACS_EMAIL_SENDER)) {
    throw new ConfigError('Invalid configuration: set both ACS_EMAIL_ENDPOINT and ACS_EMAIL_SENDER, or neither');
  }
  return Object.freeze({ ...parsed, DB_SSL, poolMax: derivePoolMax(parsed) });
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Production connects only with the server's certificate checked against the system's roots and its host
 * name: postgres.js's `require` and `prefer` encrypt but accept any certificate, so whoever intercepts the
 * connection would receive the database password or the managed identity's Entra ID token. A server on
 * the loopback interface (the benchmark's) is exempt: nobody but the machine's own root sits in between.
 */
function refuseUnverifiedTls(mode: SslMode, databaseUrl: string | undefined, host: string | undefined): void {
  if (databaseUrl) {
    const url = new URL(databaseUrl);
    const query = url.searchParams;
    if (query.get('sslmode') === 'verify-full' || query.get('sslrootcert') === 'system') return;
    if (LOOPBACK.has(url.hostname)) return;
    throw new ConfigError(
      'Invalid configuration: DATABASE_URL needs sslmode=verify-full in production (the server certificate must be verified)',
    );
  }
  if (mode !== 'verify-full' && !LOOPBACK.has(host ?? '')) {
    throw new ConfigError(
      `Invalid configuration: DB_SSL must be verify-full in production, not ${mode} (it does not verify the server certificate)`,
    );
  }
}

let cached: Config | undefined;

/** The process configuration, parsed on first use (never at module load: cold starts stay cheap). */
export function config(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}

/** Tests and the dev host change the environment between runs; this forgets the parsed copy. */
export function resetConfigForTests(): void {
  cached = undefined;
}
