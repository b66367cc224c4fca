// postgres.js has no OpenTelemetry instrumentation: this wraps a pool, when telemetry is on, so that every
// statement is a span (its text with placeholders, never a parameter) and the pool reports how busy it is:
// db.pool.in_use (connections running a statement or holding a transaction), db.pool.waiting (statements
// and transactions asked of the pool that no connection runs yet: queued in the pool, or pipelined behind
// another statement on a busy connection) and db.pool.max. infra/modules/alerts.bicep alerts on
// db.pool.waiting staying above 0.
//
// How: a statement is a postgres.js Query, which calls its `handler` when it is executed (a fragment inside
// another statement never is) and `resolve`/`reject` when it is done; `active` is true while it is the one
// its connection runs. The wrapper swaps in a handler that counts and spans the statement, so only the pool's
// own objects are touched, and nothing at all when telemetry is off (lib/db.ts does not call this then).
import type postgres from 'postgres';
import { type OpenSpan, observeGauges, startStatementSpan, telemetryOn } from './telemetry';

/** What the wrapper needs of a postgres.js Query (an internal object; checked at run time). */
interface QueryLike {
  handler: ((query: QueryLike) => unknown) & { debug?: unknown };
  resolve: (value: unknown) => unknown;
  reject: (error: unknown) => unknown;
  active: boolean;
  strings?: readonly string[];
  statement?: { string?: string } | null;
}

function isQuery(value: unknown): value is QueryLike {
  const q = value as Partial<QueryLike> | null;
  return (
    typeof q === 'object' &&
    q !== null &&
    typeof q.handler === 'function' &&
    typeof q.resolve === 'function' &&
    'active' in q
  );
}

/** The pool's statements and transactions in progress. */
class PoolCounts {
  /** Statements sent through the pool itself (not inside a transaction) and not done. */
  readonly statements = new Set<QueryLike>();
  transactionsWaiting = 0;
  transactionsRunning = 0;

  gauges(max: number): Record<string, number> {
    let running = 0;
    for (const statement of this.statements) if (statement.active) running++;
    return {
      'db.pool.in_use': running + this.transactionsRunning,
      'db.pool.waiting': this.statements.size - running + this.transactionsWaiting,
      'db.pool.max': max,
    };
  }
}

const GAUGES = {
  'db.pool.in_use': {
    description: 'Connections of the pool running a statement or holding a transaction',
    unit: '{connection}',
  },
  'db.pool.waiting': {
    description: 'Statements and transactions waiting for a connection of the pool (queued or pipelined)',
    unit: '{request}',
  },
  'db.pool.max': { description: 'The pool size (DB_POOL_MAX or the derived budget)', unit: '{connection}' },
};

/** Longest statement text put on a span (an `in (…)` list of placeholders can be long). */
const MAX_STATEMENT_TEXT = 2048;

/** The statement as sent: postgres.js's built text (values are $n placeholders), else its template parts. */
function statementText(query: QueryLike): string {
  const text = query.statement?.string ?? query.strings?.join('?') ?? '';
  return text.length > MAX_STATEMENT_TEXT ? `${text.slice(0, MAX_STATEMENT_TEXT)}…` : text;
}

/** `select`, `insert`, `with`… : the span's name (the first keyword, lower case). */
function operationOf(query: QueryLike): string {
  const first = /^\s*([A-Za-z]+)/.exec(query.strings?.[0] ?? '')?.[1];
  return first ? first.toLowerCase() : 'sql';
}

/** Calls `done` once when the statement settles; a cursor replaces resolve/reject on each batch, so the setter keeps wrapping. */
function onSettled(query: QueryLike, done: (failed: boolean) => void): void {
  let settled = false;
  const finish = (failed: boolean) => {
    if (settled) return;
    settled = true;
    done(failed);
  };
  for (const key of ['resolve', 'reject'] as const) {
    let current = query[key];
    Object.defineProperty(query, key, {
      configurable: true,
      enumerable: true,
      get: () => (value: unknown) => {
        finish(key === 'reject');
        return current(value);
      },
      set: (next: (value: unknown) => unknown) => {
        current = next;
      },
    });
  }
}

function traceStatement(query: QueryLike, counts: PoolCounts | null, pool: string): void {
  const original = query.handler;
  const handler = (executed: QueryLike) => {
    counts?.statements.add(executed);
    const span: OpenSpan | undefined = startStatementSpan(operationOf(executed), {
      'db.system.name': 'postgresql',
      'db.operation.name': operationOf(executed),
      'db.pool.name': pool,
    });
    onSettled(executed, (failed) => {
      counts?.statements.delete(executed);
      span?.setAttributes({ 'db.query.text': statementText(executed) });
      span?.end(failed);
    });
    return original(executed);
  };
  handler.debug = original.debug;
  query.handler = handler;
}

/**
 * `sql` (the pool, `counts` given) or a transaction's handle (`counts` null: its statements run on the
 * connection the transaction holds), with every statement it creates traced.
 */
function traced<T extends object>(sql: T, counts: PoolCounts | null, pool: string): T {
  const trace = (made: unknown) => {
    if (isQuery(made)) traceStatement(made, counts, pool);
    return made;
  };
  return new Proxy(sql, {
    apply: (target, thisArg, args) => trace(Reflect.apply(target as () => unknown, thisArg, args)),
    get: (target, key, receiver) => {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      if (key === 'unsafe') return (...args: unknown[]) => trace(method(...args));
      if (key === 'begin' || key === 'savepoint') return tracedTransaction(method, counts, pool);
      return value;
    },
  });
}

type TransactionFn = (tx: object) => unknown;

/** `begin` / `savepoint`: the body gets a traced handle; on the pool, the transaction is counted. */
function tracedTransaction(begin: (...args: unknown[]) => Promise<unknown>, counts: PoolCounts | null, pool: string) {
  return (...args: unknown[]) => {
    const index = args.findIndex((arg) => typeof arg === 'function');
    if (index === -1) return begin(...args);
    const body = args[index] as TransactionFn;
    let running = false;
    if (counts) counts.transactionsWaiting++;
    const wrapped = [...args];
    wrapped[index] = (tx: object) => {
      if (counts && !running) {
        counts.transactionsWaiting--;
        counts.transactionsRunning++;
      }
      running = true;
      return body(traced(tx, null, pool));
    };
    const release = () => {
      if (!counts) return;
      if (running) counts.transactionsRunning--;
      else counts.transactionsWaiting--;
    };
    const result = begin(...wrapped);
    result.then(release, release);
    return result;
  };
}

/**
 * The pool with spans and gauges when telemetry is on, else the pool itself. `pool` names it on every
 * span and metric (`http`, `timer`).
 */
export function instrumentPool<S extends postgres.Sql>(sql: S, pool: string, max: number): S {
  if (!telemetryOn()) return sql;
  const counts = new PoolCounts();
  observeGauges(GAUGES, { 'db.pool.name': pool }, () => counts.gauges(max));
  return traced(sql, counts, pool);
}
