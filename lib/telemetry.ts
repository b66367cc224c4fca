// Telemetry: OpenTelemetry traces and metrics, started once per instance and only when asked for.
//
// - APPLICATIONINSIGHTS_CONNECTION_STRING set (Azure): Azure Monitor's distribution
//   (@azure/monitor-opentelemetry) exports to Application Insights, authenticating with the managed
//   identity when APPLICATIONINSIGHTS_AUTHENTICATION_STRING names one, and
//   @azure/functions-opentelemetry-instrumentation makes the host's trace the parent of the app's spans.
// - else OTEL_EXPORTER_OTLP_ENDPOINT set: plain OTLP over HTTP (JSON) to that collector, for a local
//   Jaeger or Aspire dashboard and for the tests (which receive it themselves).
// - else nothing: no OpenTelemetry module is loaded at all, so a cold start pays nothing for it.
//
// What is exported is decided here and in the two places that call it (the route wrapper, the pool in
// lib/db-telemetry.ts): route templates, methods, status codes, roles, request ids, SQL text with its
// placeholders, pool gauges. Never a path or query string, a parameter value, a user id, a name, an
// email or a token (docs/telemetry.md).
//
// It reads process.env itself rather than config(): it starts before the configuration is read, and an
// instance whose configuration is wrong must still be able to report why.
import type * as Api from '@opentelemetry/api';

/** Which exporter this instance started (`off`: none). */
export type TelemetryMode = 'azure-monitor' | 'otlp' | 'off';

interface Started {
  mode: TelemetryMode;
  api: typeof Api;
  tracer: Api.Tracer;
  meter: Api.Meter;
  flush: () => Promise<void>;
  shutdown: () => Promise<void>;
}

let started: Started | undefined;
let mode: TelemetryMode | undefined;

/** The service name on every span and metric (Application Insights shows it as the cloud role). */
export const SERVICE_NAME = 'aada-lms-api';
const INSTRUMENTATION_SCOPE = 'aada-lms-api';

/**
 * Starts telemetry for this instance, once (later calls return the mode of the first): with the
 * variables above unset it does nothing and loads nothing.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): TelemetryMode {
  if (mode) return mode;
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (connectionString) started = startAzureMonitor(connectionString, env);
  else if (otlpEndpoint) started = startOtlp(otlpEndpoint, env);
  mode = started?.mode ?? 'off';
  return mode;
}

/** Whether spans and metrics are being exported (the callers skip all their work when not). */
export function telemetryOn(): boolean {
  return started !== undefined;
}

/** Exports whatever is buffered now (spans, and one collection of every metric). */
export async function flushTelemetry(): Promise<void> {
  await started?.flush();
}

/** Flushes and stops the exporters (the host is terminating the app). */
export async function stopTelemetry(): Promise<void> {
  const stopping = started;
  started = undefined;
  // What could not be sent by now is lost either way; a failed export must not fail the shutdown.
  await stopping?.shutdown().catch(() => undefined);
}

function startAzureMonitor(connectionString: string, env: NodeJS.ProcessEnv): Started {
  // Loaded here only: with telemetry off none of these modules is read from disk.
  const api = require('@opentelemetry/api') as typeof Api;
  const { useAzureMonitor, shutdownAzureMonitor } =
    require('@azure/monitor-opentelemetry') as typeof import('@azure/monitor-opentelemetry');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString, credential: managedIdentityCredential(env) },
    resource: resourceFromAttributes({ 'service.name': SERVICE_NAME }),
    instrumentationOptions: {
      // Outgoing calls (Blob Storage, email, Entra ID) become dependencies. Incoming requests are the
      // wrapper's span: the HTTP instrumentation would name them by their path and query string, which
      // hold ids and email addresses.
      http: { enabled: true, ignoreIncomingRequestHook: () => true } as object,
      azureSdk: { enabled: true },
      // postgres.js is not `pg`: lib/db-telemetry.ts makes its spans. The others are not used here.
      postgreSql: { enabled: false },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false },
      // Console lines are the host's log already (AzureFunctionsInstrumentation sends context.log).
      console: { enabled: false },
    },
  });
  hookAzureFunctions(api);
  return {
    mode: 'azure-monitor',
    api,
    tracer: api.trace.getTracer(INSTRUMENTATION_SCOPE),
    meter: api.metrics.getMeter(INSTRUMENTATION_SCOPE),
    flush: async () => {
      // The distribution registers global providers with forceFlush.
      const provider = api.trace.getTracerProvider() as unknown as { forceFlush?: () => Promise<void> };
      await provider.forceFlush?.();
    },
    shutdown: () => shutdownAzureMonitor(),
  };
}

/**
 * The app's managed identity for the exporter, from the setting the Functions host reads too
 * (`ClientId=<id>;Authorization=AAD`): with it, Application Insights can refuse key-only telemetry
 * (infra's appInsightsLocalAuthDisabled). Without it, the connection string's key alone.
 */
function managedIdentityCredential(env: NodeJS.ProcessEnv): import('@azure/identity').TokenCredential | undefined {
  const setting = env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
  if (!setting || !/Authorization=AAD/i.test(setting)) return undefined;
  const clientId = /ClientId=([^;]+)/i.exec(setting)?.[1]?.trim();
  const { ManagedIdentityCredential } = require('@azure/identity') as typeof import('@azure/identity');
  return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
}

/**
 * The Functions worker's part: the host's trace context becomes the parent of each invocation's spans
 * and context.log lines go out as OpenTelemetry logs, correlated with the trace. The module is given to
 * the instrumentation directly, so it works whichever function file Azure loads first.
 */
function hookAzureFunctions(api: typeof Api): void {
  const { AzureFunctionsInstrumentationESM } =
    require('@azure/functions-opentelemetry-instrumentation') as typeof import('@azure/functions-opentelemetry-instrumentation');
  const instrumentation = new AzureFunctionsInstrumentationESM();
  instrumentation.setTracerProvider(api.trace.getTracerProvider());
  instrumentation.registerAzFunc(require('@azure/functions'));
}

function startOtlp(endpoint: string, env: NodeJS.ProcessEnv): Started {
  const api = require('@opentelemetry/api') as typeof Api;
  const { NodeTracerProvider } =
    require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } =
    require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { MeterProvider, PeriodicExportingMetricReader } =
    require('@opentelemetry/sdk-metrics') as typeof import('@opentelemetry/sdk-metrics');
  const { OTLPTraceExporter } =
    require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { OTLPMetricExporter } =
    require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const base = endpoint.replace(/\/+$/, '');
  const resource = resourceFromAttributes({ 'service.name': SERVICE_NAME });
  const tracerProvider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base}/v1/traces` }))],
  });
  tracerProvider.register();
  const exportIntervalMillis =
    Number(env.OTEL_METRIC_EXPORT_INTERVAL) > 0 ? Number(env.OTEL_METRIC_EXPORT_INTERVAL) : 60_000;
  const meterProvider = new MeterProvider({
    resource,
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
        exportIntervalMillis,
        exportTimeoutMillis: Math.min(30_000, exportIntervalMillis),
      }),
    ],
  });
  api.metrics.setGlobalMeterProvider(meterProvider);
  return {
    mode: 'otlp',
    api,
    tracer: api.trace.getTracer(INSTRUMENTATION_SCOPE),
    meter: api.metrics.getMeter(INSTRUMENTATION_SCOPE),
    flush: async () => {
      await tracerProvider.forceFlush();
      await meterProvider.forceFlush();
    },
    shutdown: async () => {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// What the app's mechanisms record
// ---------------------------------------------------------------------------------------------------------

/** Attribute values the app puts on spans: fixed vocabularies and numbers only (see the header). */
export type SafeAttributes = Record<string, string | number | boolean>;

/** A span in progress; `end` once. */
export interface OpenSpan {
  /** The trace this span belongs to (32 hex digits): what correlates a request id with a trace. */
  traceId: string;
  setAttributes(attributes: SafeAttributes): void;
  rename(name: string): void;
  end(failed?: boolean): void;
  /** Runs `work` with this span as the active one, so spans started inside become its children. */
  within<T>(work: () => T): T;
}

function openSpan(run: Started, span: Api.Span): OpenSpan {
  const { api } = run;
  return {
    traceId: span.spanContext().traceId,
    setAttributes: (attributes) => span.setAttributes(attributes),
    rename: (name) => span.updateName(name),
    end: (failed = false) => {
      if (failed) span.setStatus({ code: api.SpanStatusCode.ERROR });
      span.end();
    },
    within: (work) => api.context.with(api.trace.setSpan(api.context.active(), span), work),
  };
}

/** The span of one HTTP request (server kind: Application Insights lists it under requests). */
export function startRequestSpan(name: string, attributes: SafeAttributes): OpenSpan | undefined {
  if (!started) return undefined;
  const span = started.tracer.startSpan(name, { kind: started.api.SpanKind.SERVER, attributes });
  return openSpan(started, span);
}

/** The span of one SQL statement (client kind: a dependency), child of whatever span is active. */
export function startStatementSpan(name: string, attributes: SafeAttributes): OpenSpan | undefined {
  if (!started) return undefined;
  const span = started.tracer.startSpan(name, { kind: started.api.SpanKind.CLIENT, attributes });
  return openSpan(started, span);
}

/**
 * Gauges read when metrics are collected: `read` returns every gauge's current value by name (each
 * registered here once).
 */
export function observeGauges(
  gauges: Record<string, { description: string; unit: string }>,
  attributes: SafeAttributes,
  read: () => Record<string, number>,
): void {
  if (!started) return;
  const instruments = Object.entries(gauges).map(([name, { description, unit }]) => ({
    name,
    gauge: started?.meter.createObservableGauge(name, { description, unit }),
  }));
  started.meter.addBatchObservableCallback(
    (result) => {
      const values = read();
      for (const { name, gauge } of instruments) if (gauge) result.observe(gauge, values[name] ?? 0, attributes);
    },
    instruments.flatMap(({ gauge }) => (gauge ? [gauge] : [])),
  );
}
