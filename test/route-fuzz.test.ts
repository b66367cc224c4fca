// A property-based fuzz of the whole route table (fast-check). For every declared route and method,
// requests built from its own zod schemas: path parameters, query strings and bodies inside the
// schema and outside it (wrong types, missing and extra keys, hostile strings, malformed JSON, wrong
// content types), each sent anonymously or as a role the access policy lets in. Whatever comes in:
// never a 5xx, never a stack trace or SQL text in the answer, and the host still answers at the end.
//
// Bounded for a 2-core machine: a few runs per route, a time limit per route, a few routes at once.
// A failure prints fast-check's seed and the request; `FUZZ_SEED=… FUZZ_RUNS=…` replays or widens it.
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { keyOf, type PolicyRow, readPolicy } from '../dev/access-policy';
import { ROLES, type Role } from '../lib/access';
import type { DeclaredRoute } from '../lib/endpoint';
import { useTestApp } from './helpers/app';
import { hostileString, inside, jsonSchemaOf, malformedJsonText, outside } from './helpers/arbitraries';
import { inBatches, paramNames, pathOf } from './helpers/routes';
import { createTestUser } from './helpers/users';

const app = useTestApp();

const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 14);
const MIN_RUNS_PER_ROUTE = 3;
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** Per route after its first runs, so a slow machine shortens the run instead of overrunning it. */
const ROUTE_TIME_LIMIT_MS = 2_500;
const ROUTES_AT_ONCE = 4;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** What must never reach a client: stack frames, module paths, PostgreSQL's words and SQL text. */
const LEAKS: [string, RegExp][] = [
  ['a stack frame', /\bat (?:async )?(?:[\w$.<>[\]]+ )?\(?(?:file:\/\/|node:|\/)[^\s()]*:\d+:\d+\)?/],
  ['a module path', /node:internal|node_modules\/|\/(?:lib|functions|dev)\/[\w-]+\.(?:ts|js)\b/],
  [
    'a PostgreSQL error',
    /PostgresError|syntax error at or near|violates [a-z-]+ constraint|duplicate key value|invalid input syntax for|(?:relation|column) "[^"]*" does not exist/i,
  ],
  [
    'SQL text',
    /\bselect\b[^{}]{0,200}\bfrom\s+[a-z_]+\b|\binsert\s+into\b|\bupdate\s+[a-z_]+\s+set\b|\bdelete\s+from\b/i,
  ],
];

type Body = { json: unknown; contentType: string } | { raw: string; contentType: string } | undefined;

interface FuzzCase {
  anonymous: boolean;
  params: Record<string, string>;
  query: unknown;
  body: Body;
}

interface Target {
  route: DeclaredRoute;
  method: string;
  /** A role the policy lets call the route (admin where it may). */
  role: Role;
}

/** Query values as a client would write them: scalars as text, arrays as repeated keys; a bare value as is. */
function queryString(query: unknown): string {
  if (query === null || query === undefined) return '';
  if (typeof query !== 'object' || Array.isArray(query)) return `?${encodeURIComponent(JSON.stringify(query))}`;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item === undefined) continue;
      search.append(key, typeof item === 'object' && item !== null ? JSON.stringify(item) : String(item));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function caseOf(target: Target): fc.Arbitrary<FuzzCase> {
  const { params, query, body } = target.route.schemas;
  const names = paramNames(target.route.route);
  const paramSchema = params ? jsonSchemaOf(params) : undefined;
  const paramsInside = fc.record(
    Object.fromEntries(names.map((name) => [name, inside(paramSchema?.properties?.[name]).map(String)])),
  );
  const paramsOutside = fc.record(Object.fromEntries(names.map((name) => [name, hostileString])));
  const querySchema = query ? jsonSchemaOf(query) : undefined;
  const knownKeys = Object.keys(querySchema?.properties ?? {});
  const queryOutside = fc.oneof(
    outside(querySchema),
    fc.dictionary(knownKeys.length ? fc.constantFrom(...knownKeys) : hostileString, hostileString, { maxKeys: 3 }),
  );
  const bodySchema = body ? jsonSchemaOf(body) : undefined;
  const json = (value: fc.Arbitrary<unknown>) => value.map((v) => ({ json: v, contentType: 'application/json' }));
  const bodyArbitrary: fc.Arbitrary<Body> = BODY_METHODS.has(target.method)
    ? fc.oneof(
        { arbitrary: json(inside(bodySchema)), weight: 3 },
        { arbitrary: json(outside(bodySchema)), weight: 3 },
        { arbitrary: malformedJsonText.map((raw) => ({ raw, contentType: 'application/json' })), weight: 1 },
        {
          arbitrary: fc.record({
            raw: fc.constant('{}'),
            contentType: fc.constantFrom(
              'text/plain',
              'application/json; charset=utf-16',
              'application/x-www-form-urlencoded',
            ),
          }),
          weight: 1,
        },
        { arbitrary: fc.constant(undefined), weight: 1 },
      )
    : fc.constant(undefined);
  return fc.record({
    // Mostly as the allowed role: anonymously, a protected route only ever answers 401.
    anonymous: fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 }),
    params: fc.oneof({ arbitrary: paramsInside, weight: 2 }, { arbitrary: paramsOutside, weight: 1 }),
    query: fc.oneof({ arbitrary: inside(querySchema), weight: 2 }, { arbitrary: queryOutside, weight: 1 }),
    body: bodyArbitrary,
  });
}

const excerpt = (text: string) => (text.length > 300 ? `${text.slice(0, 300)}…` : text);

/** Sends one case; throws (failing the property) on a 5xx or a leak, saying what was sent. */
async function check(target: Target, headers: Record<string, string>, fuzz: FuzzCase, statuses: Map<number, number>) {
  const path = `${pathOf(target.route.route, (name) => fuzz.params[name] ?? '')}${queryString(fuzz.query)}`;
  const payload = fuzz.body && ('raw' in fuzz.body ? fuzz.body.raw : JSON.stringify(fuzz.body.json));
  const response = await app.api(path, {
    method: target.method,
    headers: {
      ...(fuzz.anonymous ? {} : headers),
      ...(fuzz.body ? { 'Content-Type': fuzz.body.contentType } : {}),
    },
    ...(payload === undefined ? {} : { body: payload }),
  });
  const text = await response.text();
  statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
  const sent = `${target.method} ${path.slice(0, 300)} as ${fuzz.anonymous ? 'anonymous' : target.role}${
    payload === undefined ? '' : ` with ${excerpt(payload)}`
  }`;
  if (response.status >= 500) throw new Error(`${sent} → ${response.status}: ${excerpt(text)}`);
  for (const [what, pattern] of LEAKS) {
    if (pattern.test(text)) throw new Error(`${sent} → ${response.status} shows ${what}: ${excerpt(text)}`);
  }
}

function allowedRole(row: PolicyRow | undefined): Role {
  if (!row || row.anonymous) return 'admin';
  return (['admin', ...ROLES] as Role[]).find((role) => row.grants[role] !== 'no') ?? 'admin';
}

test('no request built from the route table, inside or outside its schemas, gets a 5xx or leaks internals', async () => {
  const { declaredRoutes } = await import('../lib/endpoint');
  const policy = new Map(readPolicy().map((row) => [keyOf(row), row]));
  const targets: Target[] = declaredRoutes().flatMap((route) =>
    route.methods.map((method) => ({ route, method, role: allowedRole(policy.get(`${method} ${route.route}`)) })),
  );
  expect(targets.length).toBeGreaterThan(40);

  const statuses = new Map<number, number>();
  const failures: string[] = [];
  const started = performance.now();
  await inBatches(
    targets.map((target) => async () => {
      // One account per route: a fuzzed logout-all or password change ends only that route's caller.
      const caller = await createTestUser(app.db.sql, { roles: [target.role], password: null });
      const property = fc.asyncProperty(caseOf(target), (fuzz) => check(target, caller.headers, fuzz, statuses));
      try {
        // A floor every route gets however slow the machine, then more runs while its time lasts.
        await fc.assert(property, { numRuns: MIN_RUNS_PER_ROUTE, seed: SEED, endOnFailure: true });
        await fc.assert(property, {
          numRuns: RUNS_PER_ROUTE - MIN_RUNS_PER_ROUTE,
          seed: SEED === undefined ? undefined : SEED + 1,
          interruptAfterTimeLimit: ROUTE_TIME_LIMIT_MS,
          endOnFailure: true,
        });
      } catch (error) {
        // fast-check's report (seed, counterexample) and, as its cause, what the request got. A time
        // limit reached before the second round's first run is no failure: the floor ran.
        const { message, cause } = error as Error & { cause?: Error };
        if (!cause && /^Property interrupted after 0 tests/.test(message.trim())) return;
        failures.push(`${cause?.message ?? ''}\n  ${message.split('\n').slice(0, 2).join(' ')}`);
      }
    }),
    ROUTES_AT_ONCE,
  );
  const sent = [...statuses.values()].reduce((sum, count) => sum + count, 0);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const byStatus = [...statuses.entries()].sort(([a], [b]) => a - b).map(([status, count]) => `${status}: ${count}`);
  console.log(
    `route fuzz: ${sent} requests over ${targets.length} operations in ${seconds} s (${byStatus.join(', ')})`,
  );

  expect(failures).toEqual([]);
  // Enough of the table was really exercised, not just interrupted.
  expect(sent).toBeGreaterThanOrEqual(targets.length * MIN_RUNS_PER_ROUTE);
  // The host is still up and its database still reachable.
  expect((await app.api('/health')).status).toBe(200);
  expect((await app.api('/health/ready')).status).toBe(200);
}, 120_000);
