// Telemetry over real HTTP: the app exports OTLP (lib/telemetry.ts) to a receiver this file runs, a
// stand-in for Application Insights' ingestion (a collector the app's users never run). It checks a span
// per request named by route template with its status, the SQL statements as its children with placeholders
// only, the request id that correlates a response with its trace, that no personal data, id or token
// reaches any exported byte, and that the pool's db.pool.waiting (what infra/modules/alerts.bicep watches)
// is above 0 while the pool is saturated and 0 once it is not.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { flushTelemetry, telemetryOn } from '../lib/telemetry';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createTestUser, TEST_PASSWORD, type TestUser } from './helpers/users';

const POOL_MAX = 2;

/** What the receiver got, in arrival order: the JSON bodies of /v1/traces and /v1/metrics. */
const received = { traces: [] as string[], metrics: [] as string[] };
let receiver: Server;
const env: Record<string, string> = { DB_POOL_MAX: String(POOL_MAX), OTEL_METRIC_EXPORT_INTERVAL: '3600000' };

// Registered before useTestApp's hook, so the endpoint is known when the app starts.
beforeAll(async () => {
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (request.url === '/v1/traces') received.traces.push(body);
      if (request.url === '/v1/metrics') received.metrics.push(body);
      response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => receiver.close(resolve));
});

const app = useTestApp({ env, fixtures: ['wrapper-routes.ts'] });

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
}

function attributeValue(value: OtlpValue): string | number | boolean | undefined {
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.stringValue ?? value.doubleValue ?? value.boolValue;
}

function attributes(span: OtlpSpan): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(span.attributes.map((a) => [a.key, attributeValue(a.value)]));
}

function spans(): OtlpSpan[] {
  return received.traces.flatMap((body) =>
    (JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }).resourceSpans.flatMap((r) =>
      r.scopeSpans.flatMap((s) => s.spans),
    ),
  );
}

/** The last exported value of each db.pool gauge of the HTTP pool. */
function latestPoolGauges(): Record<string, number> {
  const latest: Record<string, number> = {};
  for (const body of received.metrics) {
    const parsed = JSON.parse(body) as {
      resourceMetrics: {
        scopeMetrics: {
          metrics: {
            name: string;
            gauge?: { dataPoints: { asInt?: string | number; asDouble?: number; attributes: OtlpAttribute[] }[] };
          }[];
        }[];
      }[];
    };
    for (const metric of parsed.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))) {
      for (const point of metric.gauge?.dataPoints ?? []) {
        const pool = point.attributes.find((a) => a.key === 'db.pool.name')?.value.stringValue;
        if (pool === 'http') latest[metric.name] = Number(point.asInt ?? point.asDouble);
      }
    }
  }
  return latest;
}

let admin: TestUser;
let student: TestUser;

beforeAll(async () => {
  admin = await createTestUser(app.db.sql, { roles: ['admin'], email: 'ops-admin-7q@example.test' });
  student = await createTestUser(app.db.sql, {
    roles: ['student'],
    email: 'zoe.quillfeather@example.test',
    firstName: 'Zoë',
    lastName: 'Quillfeather',
  });
});

describe('telemetry', () => {
  test('the app started the OTLP exporter (the variable turns it on)', () => {
    expect(telemetryOn()).toBe(true);
  });

  test('a span per request: route template, method, status, roles, request id; SQL as its children', async () => {
    const read = await send('GET', `/students/${student.id}`, { as: admin });
    expect(read.status).toBe(200);
    const requestId = read.headers.get('x-request-id');
    const byEmail = await send('GET', `/users?email=${encodeURIComponent(student.email)}`, { as: admin });
    expect(byEmail.status).toBe(200);
    const login = await send('POST', '/auth/login', {
      body: { email: student.email, password: TEST_PASSWORD, client: 'tool' },
    });
    expect(login.status).toBe(200);
    const { accessToken, refreshToken } = (await login.json()) as { accessToken: string; refreshToken: string };
    expect((await send('GET', '/auth/me', { as: accessToken })).status).toBe(200);
    expect((await send('POST', '/auth/refresh', { body: { refreshToken } })).status).toBe(200);
    expect((await send('GET', `/no-such-route/${encodeURIComponent(student.email)}`)).status).toBe(404);
    expect((await send('GET', `/students/${student.id}`, { as: `${accessToken}x` })).status).toBe(401);
    await flushTelemetry();

    const all = spans();
    const requests = all.filter((span) => span.kind === 2); // SERVER
    const studentRead = requests.find((span) => attributes(span)['aada.request_id'] === requestId);
    expect(studentRead?.name).toBe('GET students/{id}');
    expect(attributes(studentRead as OtlpSpan)).toMatchObject({
      'http.route': 'students/{id}',
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'aada.caller.roles': 'admin',
    });
    const names = requests.map((span) => `${span.name} ${attributes(span)['http.response.status_code']}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'GET users 200',
        'POST auth/login 200',
        'GET auth/me 200',
        'POST auth/refresh 200',
        'GET (unknown route) 404',
        'GET students/{id} 401',
      ]),
    );
    // The statements of the student read are its children, in its trace, with placeholders for values.
    const statements = all.filter((span) => span.parentSpanId === studentRead?.spanId);
    expect(statements.length).toBeGreaterThan(0);
    for (const statement of statements) {
      expect(statement.kind).toBe(3); // CLIENT
      expect(statement.traceId).toBe(studentRead?.traceId);
      expect(attributes(statement)['db.system.name']).toBe('postgresql');
    }
    expect(statements.some((s) => /\$1/.test(String(attributes(s)['db.query.text'])))).toBe(true);
    // A change runs in its transaction: its statements (the audit row's among them) are the request's children too.
    const loginSpan = requests.find((span) => span.name === 'POST auth/login');
    const loginStatements = all.filter((span) => span.parentSpanId === loginSpan?.spanId);
    expect(loginStatements.map((span) => span.name)).toContain('insert');

    // Nothing personal, no id of a record, no credential in any exported byte (spans and metrics).
    await flushTelemetry();
    const exported = [...received.traces, ...received.metrics].join('\n');
    const secrets = [
      student.email,
      encodeURIComponent(student.email),
      'Quillfeather',
      student.id,
      admin.id,
      admin.email,
      TEST_PASSWORD,
      accessToken,
      refreshToken,
      admin.token,
    ];
    for (const secret of secrets) expect(exported, `exported telemetry holds ${secret}`).not.toContain(secret);
  });

  test('db.pool.waiting is above 0 while the pool is saturated, and 0 once it drains', async () => {
    // Eight requests each hold a statement for 1.5 s on a pool of two: six wait (pipelined or queued).
    let answered = false;
    const requests = Promise.all(Array.from({ length: 8 }, () => app.api('/fixture/sleep/1500'))).finally(() => {
      answered = true;
    });
    // Collected again and again until one collection saw the queue (or every request was answered without it).
    let during: Record<string, number> = {};
    while (!answered && !((during['db.pool.waiting'] ?? 0) > 0)) {
      await flushTelemetry();
      during = latestPoolGauges();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(during['db.pool.waiting']).toBeGreaterThan(0);
    expect(during['db.pool.in_use']).toBeLessThanOrEqual(POOL_MAX);
    expect(during['db.pool.max']).toBe(POOL_MAX);
    const statuses = (await requests).map((response) => response.status);
    expect(statuses).toEqual(Array(8).fill(200));
    await flushTelemetry();
    const after = latestPoolGauges();
    expect(after['db.pool.waiting']).toBe(0);
    expect(after['db.pool.in_use']).toBe(0);
  });

  test('the alert reads the metric the app exports, by the name it exports', () => {
    const alerts = readFileSync(path.join(__dirname, '..', 'infra', 'modules', 'alerts.bicep'), 'utf8');
    const gauges = latestPoolGauges();
    const alerted = /Name == "([^"]+)"/.exec(alerts)?.[1];
    expect(alerted).toBe('db.pool.waiting');
    expect(Object.keys(gauges)).toContain(alerted);
  });
});
