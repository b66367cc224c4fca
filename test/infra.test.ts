// The Bicep in infra/ against the app's configuration schema, by reading the files (no Azure, no Bicep CLI).
// - every setting lib/config.ts requires in production is in the one app settings object of main.bicep;
// - secrets are Key Vault references, never values;
// - the pool budget: the Bicep derives the pool size with the app's formula (derivePoolMax) and refuses
//   to deploy what the app would refuse to start with, and whatever deploys fits the server:
//   poolMax x instances + reserved <= max_connections, for every SKU and parameter file.
// The last block breaks copies of main.bicep on purpose to show that each check can fail.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  derivePoolMax,
  POOL_MAX_CEILING,
  parseConfig,
  REQUIRED_IN_PRODUCTION,
  TIMER_POOL_MAX,
} from '../lib/config';

const INFRA = join(__dirname, '..', 'infra');
const FUNCTIONS = join(__dirname, '..', 'functions');
const read = (...parts: string[]) => readFileSync(join(INFRA, ...parts), 'utf8');

const main = read('main.bicep');
const modules = Object.fromEntries(
  readdirSync(join(INFRA, 'modules'))
    .filter((file) => file.endsWith('.bicep'))
    .map((file) => [file, read('modules', file)]),
);
const paramFiles = Object.fromEntries(
  readdirSync(join(INFRA, 'parameters'))
    .filter((file) => file.endsWith('.bicepparam'))
    .map((file) => [file, read('parameters', file)]),
);
const allBicep = [main, ...Object.values(modules)].join('\n');

// Azure Database for PostgreSQL Flexible Server: default max_connections per SKU (Azure reserves 15 of them).
const AZURE_DEFAULT_MAX_CONNECTIONS: Record<string, number> = {
  Standard_B1ms: 50,
  Standard_B2s: 429,
  Standard_B2ms: 859,
  Standard_D2s_v3: 859,
  Standard_D2ds_v5: 859,
  Standard_D4s_v3: 1718,
  Standard_D4ds_v5: 1718,
  Standard_D8s_v3: 3437,
  Standard_D8ds_v5: 3437,
};
const AZURE_RESERVED_CONNECTIONS = 15;

// PostgreSQL major versions each Microsoft.DBforPostgreSQL API version accepts (properties.version), from
// the REST API specifications: 2024-08-01 stops at 16; 2025-08-01 lists 11 to 18.
const POSTGRES_MAJORS_BY_API_VERSION: Record<string, string[]> = {
  '2024-08-01': ['11', '12', '13', '14', '15', '16'],
  '2025-08-01': ['11', '12', '13', '14', '15', '16', '17', '18'],
};

/** The timers the app registers (app.timer('name', ...) in functions/). */
const registeredTimers = readdirSync(FUNCTIONS)
  .filter((file) => file.endsWith('.ts'))
  .flatMap((file) => [...readFileSync(join(FUNCTIONS, file), 'utf8').matchAll(/app\.timer\('([^']+)'/g)])
  .map((match) => match[1] ?? '')
  .sort();

const SECRET_SETTINGS = {
  JWT_SIGNING_KEY: 'jwt-signing-key',
  PII_ENCRYPTION_KEYS: 'pii-encryption-keys',
  PII_BLIND_INDEX_KEY: 'pii-blind-index-key',
  H5P_ASSET_KEY: 'h5p-asset-key',
} as const;

/** Settings a Flex Consumption app must not set: the runtime comes from functionAppConfig. */
const NOT_ON_FLEX = ['FUNCTIONS_EXTENSION_VERSION', 'FUNCTIONS_WORKER_RUNTIME', 'WEBSITE_NODE_DEFAULT_VERSION'];

// ---------------------------------------------------------------------------------------------------
// A small reader for the Bicep used here: strings (with ${} interpolation and ''' blocks), brackets,
// comments, and the top-level entries of an object literal.
// ---------------------------------------------------------------------------------------------------

function lineEnd(src: string, from: number): number {
  const end = src.indexOf('\n', from);
  return end < 0 ? src.length : end;
}

/** Index just past the string literal that starts at `start`. */
function skipString(src: string, start: number): number {
  if (src.startsWith("'''", start)) {
    const end = src.indexOf("'''", start + 3);
    if (end < 0) throw new Error(`unterminated ''' string at ${start}`);
    return end + 3;
  }
  let i = start + 1;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') i += 2;
    else if (c === "'") return i + 1;
    else if (c === '$' && src[i + 1] === '{') i = skipBracketed(src, i + 1);
    else i += 1;
  }
  throw new Error(`unterminated string at ${start}`);
}

/** Index just past the bracket that closes the one at `open` ({, ( or [). */
function skipBracketed(src: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < src.length) {
    const c = src[i] ?? '';
    if (c === "'") {
      i = skipString(src, i);
      continue;
    }
    if (src.startsWith('//', i)) {
      i = lineEnd(src, i);
      continue;
    }
    if (src.startsWith('/*', i)) {
      i = src.indexOf('*/', i) + 2;
      continue;
    }
    if ('{(['.includes(c)) depth += 1;
    else if ('})]'.includes(c)) {
      depth -= 1;
      if (depth === 0) return i + 1;
    }
    i += 1;
  }
  throw new Error(`unbalanced bracket at ${open}`);
}

/** Top-level entries of an object literal body: key -> expression text (comments dropped). */
function objectEntries(body: string): Map<string, string> {
  const entries = new Map<string, string>();
  let i = 0;
  while (i < body.length) {
    const c = body[i] ?? '';
    if (/[\s,]/.test(c)) {
      i += 1;
      continue;
    }
    if (body.startsWith('//', i)) {
      i = lineEnd(body, i);
      continue;
    }
    if (body.startsWith('/*', i)) {
      i = body.indexOf('*/', i) + 2;
      continue;
    }
    let key: string;
    if (c === "'") {
      const end = skipString(body, i);
      key = body.slice(i + 1, end - 1);
      i = end;
    } else {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
      if (!match) throw new Error(`unexpected ${JSON.stringify(body.slice(i, i + 20))} in object`);
      key = match[0];
      i += key.length;
    }
    while (body[i] === ' ') i += 1;
    if (body[i] !== ':') throw new Error(`expected ':' after ${key}`);
    i += 1;
    const start = i;
    while (i < body.length) {
      const ch = body[i] ?? '';
      if (ch === "'") i = skipString(body, i);
      else if ('{(['.includes(ch)) i = skipBracketed(body, i);
      else if (ch === '\n' || ch === ',' || body.startsWith('//', i)) break;
      else i += 1;
    }
    if (entries.has(key)) throw new Error(`duplicate key ${key}`);
    entries.set(key, body.slice(start, i).trim());
  }
  return entries;
}

/** The entries of `var NAME = { ... }`. */
function objectVariable(src: string, name: string): Map<string, string> {
  const declaration = new RegExp(`^var ${name}\\s*=\\s*\\{`, 'm').exec(src);
  if (!declaration) throw new Error(`var ${name} = { ... } not found`);
  const open = declaration.index + declaration[0].length - 1;
  return objectEntries(src.slice(open + 1, skipBracketed(src, open) - 1));
}

/** The expression of `var NAME = ...` (one line). */
function variable(src: string, name: string): string | undefined {
  return new RegExp(`^var ${name}\\s*=\\s*(.+)$`, 'm').exec(src)?.[1]?.trim();
}

/** Default values of `param NAME type = value` (main.bicep) or values of `param NAME = value` (.bicepparam). */
function params(src: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const match of src.matchAll(/^param\s+(\w+)(?:\s+[\w[\]]+)?\s*=\s*/gm)) {
    const start = (match.index ?? 0) + match[0].length;
    const first = src[start] ?? '';
    const end = '[{'.includes(first) ? skipBracketed(src, start) : lineEnd(src, start);
    values.set(match[1] ?? '', src.slice(start, end).trim());
  }
  return values;
}

function intLiteral(expression: string | undefined, what: string): number {
  if (expression === undefined || !/^\d+$/.test(expression)) throw new Error(`${what}: not an integer literal`);
  return Number(expression);
}

/** The module block `module NAME '...' = { ... }` of main.bicep. */
function moduleBlock(src: string, name: string): string {
  const declaration = new RegExp(`^module ${name} '[^']+' = \\{`, 'm').exec(src);
  if (!declaration) throw new Error(`module ${name} not found`);
  const open = declaration.index + declaration[0].length - 1;
  return src.slice(open, skipBracketed(src, open));
}

/** The resource block `resource NAME '...' = ... { ... }`. */
function resourceBlock(src: string, name: string): string {
  const declaration = new RegExp(`^resource ${name} '[^']+' = [^{\\n]*\\{`, 'm').exec(src);
  if (!declaration) throw new Error(`resource ${name} not found`);
  const open = declaration.index + declaration[0].length - 1;
  return src.slice(open, skipBracketed(src, open));
}

// ---------------------------------------------------------------------------------------------------
// The checks, as functions of the source text (so the last block can feed them broken copies).
// ---------------------------------------------------------------------------------------------------

const appSettingsOf = (src: string) => objectVariable(src, 'appSettings');

function missingRequiredSettings(src: string): string[] {
  const settings = appSettingsOf(src);
  return REQUIRED_IN_PRODUCTION.filter((name) => !settings.has(name));
}

function secretSettingProblems(src: string): string[] {
  const settings = appSettingsOf(src);
  return Object.entries(SECRET_SETTINGS).flatMap(([setting, secretName]) => {
    const value = settings.get(setting);
    const reference = `'@Microsoft.KeyVault(VaultName=\${keyVault.outputs.name};SecretName=${secretName})'`;
    return value === reference ? [] : [`${setting} is ${value ?? 'missing'}, not ${reference}`];
  });
}

interface Budget {
  maxConnectionsBySku: Record<string, number>;
  defaults: {
    maximumInstanceCount: number;
    httpAlwaysReadyInstances: number;
    dbReservedConnections: number;
    postgresSkuName: string;
  };
  ceiling: number;
  timerPoolMax: number;
  timerFunctions: string[];
}

/** The string literals of `var NAME = ['a', 'b']`. */
function stringArrayVariable(src: string, name: string): string[] {
  const expression = variable(src, name) ?? '';
  if (!/^\[.*\]$/.test(expression)) throw new Error(`var ${name} is not a one-line array`);
  return [...expression.matchAll(/'([^']*)'/g)].map((match) => match[1] ?? '');
}

/** Everything the connection budget is computed from, and whether the Bicep computes it as the app does. */
function budgetOf(src: string): { budget: Budget; problems: string[] } {
  const problems: string[] = [];
  const normalized = (name: string) => (variable(src, name) ?? '').replace(/\s*\/\/.*$/, '').replace(/\s+/g, '');
  const expect = (name: string, shape: string) => {
    if (!normalized(name).startsWith(shape)) problems.push(`var ${name} is not ${shape}...`);
  };
  const exactly = (name: string, shape: string) => {
    if (normalized(name) !== shape) problems.push(`var ${name} is not ${shape}`);
  };
  // The app: floor((DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS - TIMER_INSTANCES x TIMER_POOL_MAX)
  // / MAX_INSTANCES), capped at POOL_MAX_CEILING, refusing to start below 1.
  expect('maxConnections', 'maxConnectionsBySku[?postgresSkuName]??fail(');
  exactly('httpInstances', 'maximumInstanceCount+httpAlwaysReadyInstances');
  exactly('timerInstances', 'length(timerFunctionNames)');
  exactly('poolMaxPerInstance', '(maxConnections-dbReservedConnections-timerInstances*timerPoolMax)/httpInstances');
  expect('poolMax', 'poolMaxPerInstance>=1?min(poolMaxPerInstance,poolMaxCeiling):fail(');

  const settings = appSettingsOf(src);
  const fed = {
    DB_MAX_CONNECTIONS: 'string(maxConnections)',
    DB_RESERVED_CONNECTIONS: 'string(dbReservedConnections)',
    MAX_INSTANCES: 'string(httpInstances)',
    TIMER_INSTANCES: 'string(timerInstances)',
  };
  for (const [setting, expression] of Object.entries(fed)) {
    if (settings.get(setting) !== expression) problems.push(`${setting} is not ${expression}`);
  }

  const defaults = params(src);
  const map = objectVariable(src, 'maxConnectionsBySku');
  const budget: Budget = {
    maxConnectionsBySku: Object.fromEntries([...map].map(([sku, value]) => [sku, intLiteral(value, sku)])),
    defaults: {
      maximumInstanceCount: intLiteral(defaults.get('maximumInstanceCount'), 'maximumInstanceCount'),
      httpAlwaysReadyInstances: intLiteral(defaults.get('httpAlwaysReadyInstances'), 'httpAlwaysReadyInstances'),
      dbReservedConnections: intLiteral(defaults.get('dbReservedConnections'), 'dbReservedConnections'),
      postgresSkuName: (defaults.get('postgresSkuName') ?? '').replace(/'/g, ''),
    },
    ceiling: intLiteral(normalized('poolMaxCeiling'), 'poolMaxCeiling'),
    timerPoolMax: intLiteral(normalized('timerPoolMax'), 'timerPoolMax'),
    timerFunctions: stringArrayVariable(src, 'timerFunctionNames').sort(),
  };
  if (budget.ceiling !== POOL_MAX_CEILING) problems.push(`poolMaxCeiling ${budget.ceiling} != ${POOL_MAX_CEILING}`);
  if (budget.timerPoolMax !== TIMER_POOL_MAX) problems.push(`timerPoolMax ${budget.timerPoolMax} != ${TIMER_POOL_MAX}`);
  if (budget.timerFunctions.join() !== registeredTimers.join()) {
    problems.push(`timerFunctionNames ${budget.timerFunctions.join()} != the app's timers ${registeredTimers.join()}`);
  }
  return { budget, problems };
}

interface Shape {
  maxConnections: number;
  reserved: number;
  /** HTTP maximum plus always-ready. */
  httpInstances: number;
  timers: number;
}

/** What main.bicep's poolMax evaluates to ('fail': the deployment is refused), given its checked formula. */
function bicepPoolMax(b: Shape, ceiling: number, timerPoolMax: number): number | 'fail' {
  // ARM div() truncates toward zero; a negative numerator gives at most 0, which the guard refuses.
  const perInstance = Math.trunc((b.maxConnections - b.reserved - b.timers * timerPoolMax) / b.httpInstances);
  return perInstance >= 1 ? Math.min(perInstance, ceiling) : 'fail';
}

function appPoolMax(b: Shape): number | 'fail' {
  try {
    return derivePoolMax({
      DB_MAX_CONNECTIONS: b.maxConnections,
      DB_RESERVED_CONNECTIONS: b.reserved,
      MAX_INSTANCES: b.httpInstances,
      TIMER_INSTANCES: b.timers,
    });
  } catch (error) {
    if (error instanceof ConfigError) return 'fail';
    throw error;
  }
}

/** Connections in use when every instance of every scale group holds a full pool. */
const worstCase = (b: Shape, poolMax: number) => poolMax * b.httpInstances + TIMER_POOL_MAX * b.timers + b.reserved;

// ---------------------------------------------------------------------------------------------------

describe('infra/main.bicep app settings', () => {
  const settings = appSettingsOf(main);

  it('provides every setting lib/config.ts requires in production', () => {
    expect(REQUIRED_IN_PRODUCTION.length).toBeGreaterThan(0);
    expect(missingRequiredSettings(main)).toEqual([]);
  });

  it('runs the app in production mode over TLS that verifies the server certificate', () => {
    expect(settings.get('APP_ENV')).toBe("'production'");
    expect(settings.get('DB_SSL')).toBe("'verify-full'");
    // The runbook's psql and migration commands verify it too.
    const runbook = read('README.md');
    const psql = [...runbook.matchAll(/psql "([^"]*)"/g)].map((m) => m[1] ?? '');
    expect(psql.length).toBeGreaterThan(0);
    for (const connection of psql) expect(connection).toMatch(/sslmode=verify-full sslrootcert=system/);
    expect(runbook).not.toMatch(/sslmode=(require|prefer)|DB_SSL=(require|prefer)/);
  });

  it('points the app at the deployed server, database and identity', () => {
    expect(settings.get('DB_HOST')).toBe('postgres.outputs.fqdn');
    expect(settings.get('DB_NAME')).toBe('databaseName');
    expect(variable(main, 'databaseName')).toBe("'aada_lms'");
    // The managed identity's name is its PostgreSQL role; DefaultAzureCredential picks it by client id.
    expect(settings.get('DB_USER')).toBe('appIdentity.name');
    expect(settings.get('AZURE_CLIENT_ID')).toBe('appIdentity.properties.clientId');
    expect(settings.get('CORS_ALLOWED_ORIGINS')).toBe("join(corsAllowedOrigins, ',')");
  });

  it('reads the secrets from Key Vault references, never from values', () => {
    expect(secretSettingProblems(main)).toEqual([]);
    // Values are set by operators: no secret resource and no secret parameter anywhere in infra/.
    expect(allBicep).not.toMatch(/Microsoft\.KeyVault\/vaults\/secrets/);
    for (const source of [allBicep, ...Object.values(paramFiles)]) {
      expect(source).not.toMatch(/^param\s+\w*(jwt|pii|signing|blindIndex)\w*/im);
    }
  });

  it('uses identity-based host storage and leaves the runtime to functionAppConfig', () => {
    expect(settings.get('AzureWebJobsStorage__accountName')).toBe('storageAccountName');
    expect(settings.get('AzureWebJobsStorage__credential')).toBe("'managedidentity'");
    expect(settings.get('APPLICATIONINSIGHTS_CONNECTION_STRING')).toBe('monitoring.outputs.connectionString');
    for (const name of NOT_ON_FLEX) {
      expect(settings.has(name)).toBe(false);
      expect(allBicep).not.toMatch(new RegExp(`^\\s*'?${name}'?\\s*:`, 'm'));
    }
  });

  it('applies this object over the current settings, so a redeploy keeps settings added by hand', () => {
    expect(moduleBlock(main, 'functionApp')).toMatch(/^\s*appSettings: appSettings$/m);
    expect(moduleBlock(main, 'functionApp')).toMatch(/^\s*retainCurrentAppSettings: true$/m);
    const functionApp = modules['functionapp.bicep'] ?? '';
    const config = resourceBlock(functionApp, 'settings');
    expect(config).toMatch(/name: 'appsettings'/);
    // union(): later objects win, so every name the template sets gets the template's value.
    expect(config).toMatch(/properties: union\(currentAppSettings, appSettings\)\s*\n/);
    expect(variable(functionApp, 'currentAppSettings')).toBe(
      `retainCurrentAppSettings ? list('\${site.id}/config/appsettings', '2024-04-01').properties : {}`,
    );
  });

  it('makes the recommended pool override a parameter, checked against the same budget', () => {
    expect(settings.get('DB_POOL_MAX')).toBe("dbPoolMaxOverride == 0 ? '' : string(dbPoolMaxOverride)");
    expect(params(main).get('dbPoolMaxOverride')).toBe('0');
    expect(variable(main, 'poolMaxApplied')).toMatch(
      /^dbPoolMaxOverride == 0 \? poolMax : \(dbPoolMaxOverride <= poolMaxPerInstance \? dbPoolMaxOverride : fail\(/,
    );
    expect(resourceBlock(main, 'appIdentity')).toMatch(/'db-pool-max-per-instance': string\(poolMaxApplied\)/);
    // The empty value the template sends when there is no override means "derive it" to the app.
    const env = { DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db', APP_ENV: 'test' };
    expect(parseConfig({ ...env, DB_POOL_MAX: '' }).poolMax).toBe(parseConfig(env).poolMax);
    expect(parseConfig({ ...env, DB_POOL_MAX: '4' }).poolMax).toBe(4);
  });

  it('provisions email and gives the app its endpoint and sender', () => {
    const email = modules['email.bicep'] ?? '';
    expect(settings.get('ACS_EMAIL_ENDPOINT')).toBe('email.outputs.endpoint');
    expect(settings.get('ACS_EMAIL_SENDER')).toBe(
      'empty(emailSenderAddress) ? email.outputs.senderAddress : emailSenderAddress',
    );
    expect(params(main).get('emailSenderAddress')).toBe("''");
    expect(moduleBlock(main, 'email')).toMatch(/senderPrincipalId: appIdentity\.properties\.principalId/);
    expect(email).toMatch(/^output endpoint string = 'https:\/\/\$\{communication\.properties\.hostName\}'$/m);
    expect(email).toMatch(
      /^output senderAddress string = '\$\{sender\.properties\.username\}@\$\{domain\.properties\.mailFromSenderDomain\}'$/m,
    );
    expect(resourceBlock(email, 'communication')).toMatch(/linkedDomains: concat\(\[domain\.id\], customDomainIds\)/);
    // Links carry one-time secrets: no click tracking.
    expect(resourceBlock(email, 'domain')).toMatch(/userEngagementTracking: 'Disabled'/);
    const role = resourceBlock(email, 'appSendsEmail');
    expect(role).toMatch(/scope: communication/);
    expect(role).toMatch(/principalId: senderPrincipalId/);
    // Both settings together, as lib/config.ts requires.
    expect(settings.has('ACS_EMAIL_ENDPOINT')).toBe(settings.has('ACS_EMAIL_SENDER'));
  });
});

describe('connection budget: pool size x instances fits the PostgreSQL SKU', () => {
  const { budget, problems } = budgetOf(main);

  it("lists Azure's default max_connections for each SKU", () => {
    expect(Object.keys(budget.maxConnectionsBySku).length).toBeGreaterThan(0);
    for (const [sku, maxConnections] of Object.entries(budget.maxConnectionsBySku)) {
      expect({ sku, maxConnections }).toEqual({ sku, maxConnections: AZURE_DEFAULT_MAX_CONNECTIONS[sku] });
    }
  });

  it("computes the pool size with the app's formula, from the values it gives the app", () => {
    expect(problems).toEqual([]);
    expect(budget.ceiling).toBe(POOL_MAX_CEILING);
  });

  it("reserves Azure's 15 connections plus headroom for the administrator and migrations", () => {
    expect(budget.defaults.dbReservedConnections).toBeGreaterThan(AZURE_RESERVED_CONNECTIONS);
    expect(main).toMatch(/@minValue\(15\)\s*\n\s*@maxValue\(\d+\)\s*\n\s*param dbReservedConnections int/);
  });

  it('refuses at deploy time, before any resource exists, what the app would refuse at start-up', () => {
    // The identity is the first resource and carries the guarded value as a tag.
    expect(resourceBlock(main, 'appIdentity')).toMatch(/'db-pool-max-per-instance': string\(poolMaxApplied\)/);
    expect(main).toMatch(/^output dbPoolMaxPerInstance int = poolMaxApplied$/m);
  });

  const files = Object.entries(paramFiles).map(([file, source]) => {
    const values = params(source);
    const number = (name: 'maximumInstanceCount' | 'httpAlwaysReadyInstances' | 'dbReservedConnections') =>
      values.has(name) ? intLiteral(values.get(name), `${file} ${name}`) : budget.defaults[name];
    const sku = (values.get('postgresSkuName') ?? `'${budget.defaults.postgresSkuName}'`).replace(/'/g, '');
    const tier = (values.get('postgresSkuTier') ?? '').replace(/'/g, '');
    const instances = number('maximumInstanceCount');
    const alwaysReady = number('httpAlwaysReadyInstances');
    const shape = (maxConnections: number): Shape => ({
      maxConnections,
      reserved: number('dbReservedConnections'),
      httpInstances: instances + alwaysReady,
      timers: budget.timerFunctions.length,
    });
    return { file, instances, alwaysReady, sku, tier, values, shape };
  });

  it('has a dev and a prod parameter file', () => {
    expect(files.map(({ file }) => file).sort()).toEqual(['dev.bicepparam', 'prod.bicepparam']);
  });

  it("counts one scale group per timer the app registers, each with the timers' small pool", () => {
    expect(registeredTimers).toEqual([
      'agreement-reminders',
      'audit-retention',
      'maintenance',
      'outbox-sender',
      'refunds-due',
    ]);
    expect(budget.timerFunctions).toEqual(registeredTimers);
    expect(budget.timerPoolMax).toBe(TIMER_POOL_MAX);
    expect(TIMER_POOL_MAX).toBeLessThanOrEqual(2);
    // Every timer takes its connections from timerDb (TIMER_POOL_MAX), never from the HTTP pool.
    for (const file of [
      'agreement-reminders.ts',
      'audit-retention.ts',
      'maintenance.ts',
      'outbox-sender.ts',
      'refunds-due.ts',
    ]) {
      const source = readFileSync(join(FUNCTIONS, file), 'utf8');
      expect(source, file).toMatch(/timerDb\(\)/);
      expect(source, file).not.toMatch(/\bdb\(\)/);
    }
  });

  it.each(files)('$file deploys: its SKU gives each instance of every scale group a pool that fits', (f) => {
    const maxConnections = budget.maxConnectionsBySku[f.sku];
    expect(maxConnections, `${f.sku} is not in maxConnectionsBySku`).toBeDefined();
    expect(f.instances).toBeGreaterThanOrEqual(1);
    expect(f.instances).toBeLessThanOrEqual(1000);
    expect(f.tier).toBe(f.sku.startsWith('Standard_B') ? 'Burstable' : 'GeneralPurpose');
    const shape = f.shape(maxConnections ?? 0);
    const poolMax = appPoolMax(shape);
    expect(poolMax).not.toBe('fail');
    expect(bicepPoolMax(shape, budget.ceiling, budget.timerPoolMax)).toBe(poolMax);
    expect(poolMax).toBeGreaterThanOrEqual(1);
    expect(worstCase(shape, Number(poolMax))).toBeLessThanOrEqual(maxConnections ?? 0);
  });

  const matrix = files.flatMap((f) =>
    Object.keys(AZURE_DEFAULT_MAX_CONNECTIONS).flatMap((sku) =>
      [f.alwaysReady, f.alwaysReady + 5].map((alwaysReady) => ({
        ...f,
        sku,
        alwaysReady,
        label: `${sku} x ${f.instances} + ${alwaysReady} always-ready HTTP instances + timers (${f.file.replace('.bicepparam', '')})`,
      })),
    ),
  );

  it.each(matrix)('$label: the Bicep guard and derivePoolMax agree, and what deploys fits', (f) => {
    const maxConnections = budget.maxConnectionsBySku[f.sku];
    expect(maxConnections, `${f.sku} is not in maxConnectionsBySku`).toBeDefined();
    const shape = { ...f.shape(maxConnections ?? 0), httpInstances: f.instances + f.alwaysReady };
    const app = appPoolMax(shape);
    expect(bicepPoolMax(shape, budget.ceiling, budget.timerPoolMax)).toBe(app);
    if (app === 'fail') {
      // Refused by both (e.g. Standard_B1ms: 19 connections left after the reserve and the timers
      // cannot serve 40 instances).
      expect(worstCase(shape, 1)).toBeGreaterThan(maxConnections ?? 0);
    } else {
      expect(app).toBeGreaterThanOrEqual(1);
      expect(worstCase(shape, app)).toBeLessThanOrEqual(maxConnections ?? 0);
    }
  });

  it('gives the always-ready instances to the site and counts them as HTTP instances', () => {
    expect(moduleBlock(main, 'functionApp')).toMatch(/^\s*httpAlwaysReadyInstances: httpAlwaysReadyInstances$/m);
    expect(resourceBlock(modules['functionapp.bicep'] ?? '', 'site')).toMatch(
      /alwaysReady: httpAlwaysReadyInstances > 0 \? \[\{ name: 'http', instanceCount: httpAlwaysReadyInstances \}\] : \[\]/,
    );
  });

  it('pins max_connections on the server to the value the budget is computed from', () => {
    const postgres = modules['postgres.bicep'] ?? '';
    expect(moduleBlock(main, 'postgres')).toMatch(/^\s*maxConnections: maxConnections$/m);
    expect(postgres).toMatch(/^param maxConnections int$/m);
    expect(postgres).toMatch(/name: 'max_connections'\s*\n\s*value: string\(maxConnections\)/);
    // Applied as a user override, like every server parameter of the list.
    expect(postgres).toMatch(/resource serverParameterSettings '[^']+' = \[\s*for setting in serverParameters: \{/);
  });

  it('keeps password authentication off in prod (and refuses it in the template)', () => {
    const prod = files.find(({ file }) => file === 'prod.bicepparam');
    expect(prod?.values.get('postgresPasswordAuthEnabled')).toBe('false');
    expect(main).toMatch(/environmentName == 'prod' \? 'Password authentication stays disabled in prod/);
    expect(variable(main, 'postgresPasswordAuth')).toMatch(/^!postgresPasswordAuthEnabled \? 'Disabled'/);
  });
});

describe('infra resources', () => {
  const functionApp = modules['functionapp.bicep'] ?? '';
  const postgres = modules['postgres.bicep'] ?? '';
  const keyVault = modules['keyvault.bicep'] ?? '';
  const alerts = modules['alerts.bicep'] ?? '';

  it('runs a Flex Consumption app on Node 22 with the scale settings as parameters', () => {
    expect(resourceBlock(functionApp, 'plan')).toMatch(/name: 'FC1'\s*\n\s*tier: 'FlexConsumption'/);
    const site = resourceBlock(functionApp, 'site');
    expect(site).toMatch(/kind: 'functionapp,linux'/);
    expect(site).toMatch(/runtime: \{\s*name: 'node'\s*version: '22'\s*\}/);
    expect(site).toMatch(/maximumInstanceCount: maximumInstanceCount/);
    expect(site).toMatch(/instanceMemoryMB: instanceMemoryMB/);
    expect(site).toMatch(/http: \{\s*perInstanceConcurrency: httpPerInstanceConcurrency\s*\}/);
    expect(moduleBlock(main, 'functionApp')).toMatch(/^\s*maximumInstanceCount: maximumInstanceCount$/m);
    expect(site).toMatch(/type: 'blobContainer'/);
    expect(site).toMatch(/authentication: \{\s*type: 'UserAssignedIdentity'/);
  });

  it('serves HTTPS only with TLS 1.2 and no FTP or basic publishing credentials', () => {
    const site = resourceBlock(functionApp, 'site');
    expect(site).toMatch(/httpsOnly: true/);
    expect(site).toMatch(/minTlsVersion: '1\.2'/);
    expect(site).toMatch(/ftpsState: 'Disabled'/);
    expect(resourceBlock(functionApp, 'ftpCredentials')).toMatch(/allow: false/);
    expect(resourceBlock(functionApp, 'scmCredentials')).toMatch(/allow: false/);
    expect(resourceBlock(functionApp, 'storage')).toMatch(/allowSharedKeyAccess: false/);
  });

  it('creates PostgreSQL with Entra ID authentication, the database and pg_stat_statements', () => {
    expect(params(main).get('postgresVersion')).toBe("'16'");
    const server = resourceBlock(postgres, 'server');
    expect(server).toMatch(/activeDirectoryAuth: 'Enabled'/);
    expect(server).toMatch(/passwordAuth: passwordAuth/);
    expect(resourceBlock(postgres, 'entraAdmin')).toMatch(/principalType: entraAdminType/);
    expect(moduleBlock(main, 'postgres')).toMatch(/databaseName: databaseName/);
    // Azure's default shared_preload_libraries (16 and later) preloads pg_stat_statements and pg_cron;
    // an override would drop what it does not list and need a restart.
    expect(allBicep).not.toMatch(/name: 'shared_preload_libraries'/);
    expect(params(main).get('postgresAllowedExtensions')).toContain("'pg_stat_statements'");
    expect(resourceBlock(postgres, 'allowAzureServices')).toMatch(/startIpAddress: '0\.0\.0\.0'/);
  });

  it('uses one PostgreSQL API version that accepts every major version the template allows', () => {
    const versions = [...postgres.matchAll(/'Microsoft\.DBforPostgreSQL\/flexibleServers[^@']*@([^']+)'/g)].map(
      (m) => m[1],
    );
    expect(versions.length).toBeGreaterThanOrEqual(5);
    expect(new Set(versions).size).toBe(1);
    const accepted = POSTGRES_MAJORS_BY_API_VERSION[versions[0] ?? ''];
    expect(accepted, `no version list recorded for API version ${versions[0]}`).toBeDefined();
    const allowed = (src: string, name: string) =>
      [
        ...(new RegExp(`@allowed\\(\\[([^\\]]*)\\]\\)\\s*\\n\\s*param ${name} string`).exec(src)?.[1] ?? '').matchAll(
          /'(\d+)'/g,
        ),
      ].map((m) => m[1] ?? '');
    const offered = [...allowed(main, 'postgresVersion'), ...allowed(postgres, 'version')];
    expect(offered).toContain('17');
    for (const version of offered) {
      expect(accepted, `PostgreSQL ${version} with API version ${versions[0]}`).toContain(version);
      // 16 and later preload pg_stat_statements by default (no shared_preload_libraries override).
      expect(Number(version)).toBeGreaterThanOrEqual(16);
    }
    for (const [file, source] of Object.entries(paramFiles)) {
      expect(offered, file).toContain((params(source).get('postgresVersion') ?? '').replace(/'/g, ''));
    }
  });

  it('refuses high availability on a Burstable SKU', () => {
    expect(variable(main, 'postgresHa')).toMatch(
      /^postgresHighAvailability == 'Disabled' \|\| postgresTier != 'Burstable' \? postgresHighAvailability : fail\(/,
    );
    expect(moduleBlock(main, 'postgres')).toMatch(/^\s*highAvailability: postgresHa$/m);
    for (const [file, source] of Object.entries(paramFiles)) {
      const values = params(source);
      if (values.get('postgresSkuTier') === "'Burstable'") {
        expect(values.get('postgresHighAvailability'), file).toBe("'Disabled'");
      }
    }
  });

  it('keeps documents in their own account: identity only, the app a blob contributor, agreements under WORM', () => {
    const files = modules['files.bicep'] ?? '';
    expect(resourceBlock(files, 'account')).toMatch(/allowSharedKeyAccess: false/);
    expect(resourceBlock(files, 'account')).toMatch(/allowBlobPublicAccess: false/);
    expect(files).toMatch(/blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'/);
    expect(resourceBlock(files, 'appBlobAccess')).toMatch(/principalId: identityPrincipalId/);
    expect(resourceBlock(files, 'retainedImmutability')).toMatch(/immutabilityPeriodSinceCreationInDays: retainedDays/);
    expect(main).toMatch(/param agreementRetentionDays int = 1826/);
    expect(main).toMatch(/retainedDays: agreementRetentionDays/);
    expect(main).toMatch(/BLOB_ENDPOINT: files\.outputs\.blobEndpoint/);
  });

  it('keeps secrets in an RBAC Key Vault with purge protection, readable by the app', () => {
    const vault = resourceBlock(keyVault, 'vault');
    expect(vault).toMatch(/enableRbacAuthorization: true/);
    expect(vault).toMatch(/enableSoftDelete: true/);
    expect(vault).toMatch(/enablePurgeProtection: true/);
    expect(keyVault).toMatch(/keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'/);
    expect(resourceBlock(keyVault, 'appReadsSecrets')).toMatch(/principalId: secretsUserPrincipalId/);
  });

  it("alerts on the 5xx rate and on PostgreSQL's own metrics: slow queries, active and failed connections", () => {
    expect(alerts).toMatch(/AppRequests[\s\S]*toint\(ResultCode\) >= 500/);
    expect(resourceBlock(alerts, 'slowQueryAlert')).toMatch(/metricName: 'longest_query_time_sec'/);
    const active = resourceBlock(alerts, 'activeConnectionsAlert');
    expect(active).toMatch(/metricName: 'active_connections'/);
    expect(active).toMatch(/threshold: maxConnections \* activeConnectionsPercentThreshold \/ 100/);
    expect(moduleBlock(main, 'alerts')).toMatch(/^\s*maxConnections: maxConnections$/m);
    expect(resourceBlock(alerts, 'failedConnectionsAlert')).toMatch(/metricName: 'connections_failed'/);
    for (const name of ['activeConnectionsAlert', 'failedConnectionsAlert', 'slowQueryAlert', 'http5xxAlert']) {
      expect(resourceBlock(alerts, name), name).toMatch(/enabled: true/);
    }
  });

  it('creates no alert on an app metric the app does not emit', () => {
    const appCode = ['lib', 'functions']
      .flatMap((dir) =>
        readdirSync(join(__dirname, '..', dir))
          .filter((file) => file.endsWith('.ts'))
          .map((file) => readFileSync(join(__dirname, '..', dir, file), 'utf8')),
      )
      .join('\n');
    const metrics = [...alerts.matchAll(/AppMetrics\s*\n\| where Name == "([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(metrics).toEqual(['db.pool.waiting']);
    for (const metric of metrics) {
      if (appCode.includes(`'${metric}'`)) continue; // emitted: the rule may stand
      // Not emitted (yet): its rule exists only behind a switch that is off by default.
      expect(alerts).toMatch(/^resource poolSaturationAlert '[^']+' = if \(poolWaitingAlertEnabled\) \{/m);
      expect(params(main).get('poolWaitingAlertEnabled')).toBe('false');
      for (const source of Object.values(paramFiles)) expect(source).not.toMatch(/poolWaitingAlertEnabled = true/);
    }
  });

  it("binds the app's database role to the identity's object id, not its display name", () => {
    expect(main).toMatch(/^output databaseUserObjectId string = appIdentity\.properties\.principalId$/m);
    const runbook = read('README.md');
    expect(runbook).toMatch(
      /pgaadauth_create_principal_with_oid\('\$APP_ROLE', '\$APP_OID', 'service', false, false\)/,
    );
    expect(runbook).not.toMatch(/pgaadauth_create_principal\(/);
  });

  it('names operator firewall rules after their address, so one deploy does not replace another operator', () => {
    expect(postgres).toMatch(
      /for ip in operatorIpAddresses: \{\s*parent: server\s*name: 'operator-\$\{replace\(ip, '\.', '-'\)\}'/,
    );
    for (const [file, source] of Object.entries(paramFiles)) {
      expect(source, file).toMatch(/readEnvironmentVariable\('AADA_OPERATOR_IPS', ''\)/);
      expect(source, file).toMatch(
        /param operatorIpAddresses = empty\(operatorIps\) \? \[\] : split\(operatorIps, ','\)/,
      );
    }
  });

  it('documents a first publish that works: --node, and the role the publisher needs', () => {
    const docs = [read('README.md'), readFileSync(join(__dirname, '..', 'README.md'), 'utf8')];
    for (const doc of docs) {
      const publishes = [...doc.matchAll(/func azure functionapp publish [^\n`]*/g)].map((m) => m[0]);
      expect(publishes.length).toBeGreaterThan(0);
      for (const command of publishes) expect(command).toMatch(/ --node\b/);
    }
    expect(read('README.md')).toMatch(/--role "Website Contributor" --scope \$APP_ID/);
  });

  it('keeps the Key Vault reachable (Flex Consumption cannot resolve references to a restricted vault)', () => {
    const vault = resourceBlock(keyVault, 'vault');
    expect(vault).toMatch(/publicNetworkAccess: 'Enabled'/);
    expect(vault).toMatch(/defaultAction: 'Allow'/);
    expect(read('README.md')).not.toMatch(/Key Vault to\s+`publicNetworkAccess: 'Disabled'`/);
    expect(read('README.md')).toMatch(/configreferences\/appsettings\/refresh/);
    expect(read('README.md')).toMatch(/value\[\?properties\.status!='Resolved'\]/);
  });

  it('outputs the app name, host name, database server FQDN and vault name', () => {
    for (const output of [
      'functionAppName',
      'functionAppHostName',
      'postgresFqdn',
      'keyVaultName',
      'emailSenderAddress',
    ]) {
      expect(main).toMatch(new RegExp(`^output ${output} string = `, 'm'));
    }
  });
});

describe('the checks catch a broken main.bicep', () => {
  it('a deleted setting', () => {
    const broken = main.replace(/^\s*DB_NAME: .*\n/m, '\n');
    expect(broken).not.toBe(main);
    expect(missingRequiredSettings(broken)).toEqual(['DB_NAME']);
  });

  it('a secret given as a value', () => {
    const broken = main.replace(/^(\s*JWT_SIGNING_KEY: ).*$/m, "$1'a-literal-signing-key'");
    expect(broken).not.toBe(main);
    expect(secretSettingProblems(broken)).toHaveLength(1);
  });

  it('a pool formula that forgets the timers', () => {
    const broken = main.replace(
      '(maxConnections - dbReservedConnections - timerInstances * timerPoolMax) / httpInstances',
      '(maxConnections - dbReservedConnections) / httpInstances',
    );
    expect(broken).not.toBe(main);
    expect(budgetOf(broken).problems).toContain(
      'var poolMaxPerInstance is not (maxConnections-dbReservedConnections-timerInstances*timerPoolMax)/httpInstances',
    );
  });

  it('an instance count without the always-ready instances', () => {
    const broken = main.replace(/^var httpInstances = .*$/m, 'var httpInstances = maximumInstanceCount');
    expect(budgetOf(broken).problems).toContain(
      'var httpInstances is not maximumInstanceCount+httpAlwaysReadyInstances',
    );
  });

  it('a timer the budget does not know', () => {
    const broken = main.replace("'audit-retention', ", '');
    expect(budgetOf(broken).problems.some((problem) => problem.startsWith('timerFunctionNames '))).toBe(true);
  });

  it('a guard that no longer fails', () => {
    const broken = main.replace(/^(var poolMax = ).*$/m, '$1min(poolMaxPerInstance, poolMaxCeiling)');
    expect(budgetOf(broken).problems.some((problem) => problem.startsWith('var poolMax is not'))).toBe(true);
  });

  it('an instance count the app would derive a different pool from', () => {
    const broken = main.replace('MAX_INSTANCES: string(httpInstances)', 'MAX_INSTANCES: string(maximumInstanceCount)');
    expect(broken).not.toBe(main);
    expect(budgetOf(broken).problems).toContain('MAX_INSTANCES is not string(httpInstances)');
  });

  it('a combination that would not fit is refused by both sides', () => {
    const shape = { maxConnections: 50, reserved: 25, httpInstances: 100, timers: 3 };
    expect(appPoolMax(shape)).toBe('fail');
    expect(bicepPoolMax(shape, POOL_MAX_CEILING, TIMER_POOL_MAX)).toBe('fail');
    // 19 connections after the reserve and the timers: 19 HTTP instances fit, 20 do not.
    expect(appPoolMax({ ...shape, httpInstances: 19 })).toBe(1);
    expect(appPoolMax({ ...shape, httpInstances: 20 })).toBe('fail');
    expect(bicepPoolMax({ ...shape, httpInstances: 20 }, POOL_MAX_CEILING, TIMER_POOL_MAX)).toBe('fail');
  });
});
