// Traces (OTLP/gRPC, parent-based sampling) and metrics (Prometheus text on the ops listener).
// Created once per process from the frozen config; flushed once, under a deadline, by the
// lifecycle machine's `flushing` state. Telemetry never installs signal handlers and never holds
// the process: the lifecycle owns both.
import os from 'node:os';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { diag, DiagLogLevel, type Tracer } from '@opentelemetry/api';
import { callWithTimeout, TimeoutError } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { BuildInfo } from '../build-info';
import type { AppConfig } from '../config/schema';
import type { Logger } from './logger';
import { createEventLoopMonitor, type EventLoopMonitor } from './event-loop-monitor';
import { observeGc } from './gc-monitor';
import { createServiceMetrics, REQUEST_DURATION, type ServiceMetrics } from './metrics';
import { RequestDurationHistogram } from './request-durations';
import { ExportLedger, type ExportOutcome, flushOutcome, type LedgerCounts } from './export-ledger';
import { lazyOtlpTraceExporter } from './lazy-exporter';
import { outsideRequest } from './request-scope';

export type FlushStatus = ExportOutcome;

/** How the flush really ended, from the exporter's own results (see export-ledger.ts). */
export interface FlushReport {
  readonly status: FlushStatus;
  /** Spans whose export failed, timed out or never answered during the flush. */
  readonly spansDropped: number;
  /** The same since the process started (exports that failed while serving too). */
  readonly spansDroppedTotal: number;
  /** Why, when not ok. */
  readonly reason?: string;
}

export interface Telemetry {
  readonly tracer: Tracer;
  readonly metrics: ServiceMetrics;
  readonly eventLoop: EventLoopMonitor;
  /** Whether spans leave the process (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  /** Serves the Prometheus text format (mounted at the ops listener's /metrics). */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void;
  /**
   * Flushes and shuts down traces and metrics, each bounded by the flush budget, and says how it
   * really ended: `error` when an export failed, `timeout` when one hit its deadline or never
   * answered. Never rejects. Idempotent: a second call returns the first call's promise.
   */
  flush(): Promise<FlushReport>;
  /** The flush's report once it has ended (undefined before, or while it runs). */
  lastFlush(): FlushReport | undefined;
  /** Span export outcomes so far (undefined when nothing is exported). */
  exportCounts(): LedgerCounts | undefined;
}

export function createTelemetry(
  config: Readonly<AppConfig>,
  build: BuildInfo,
  logger: Logger,
): Telemetry {
  // OpenTelemetry's own errors (a failed export, a dropped batch) become log events.
  // They run in whatever async scope started the exporter's timer (often a request's): these lines
  // are the exporter's, never a request's.
  diag.setLogger(
    {
      error: (message, ...args) =>
        outsideRequest(() => logger.warn('telemetry.error', { message, detail: args.map(String) })),
      warn: (message, ...args) =>
        outsideRequest(() =>
          logger.warn('telemetry.warning', { message, detail: args.map(String) }),
        ),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );

  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: config.telemetry.serviceName,
    [ATTR_SERVICE_VERSION]: build.version,
    'deployment.environment.name': config.env,
    'cloud.region': config.telemetry.cloudRegion,
    'host.name': os.hostname(),
    'host.arch': os.arch(),
    'process.pid': process.pid,
    'process.runtime.name': 'nodejs',
    'process.runtime.version': process.versions.node,
  });

  const exporting = config.telemetry.endpoint !== '';
  const budget = config.shutdown.flushTimeoutMs;
  // A collector that accepts TCP and never answers would hold each export for the exporter's
  // timeout: keep it inside the flush budget (see ../shared/STACK.md, OpenTelemetry shutdown).
  const exportTimeoutMs = Math.max(1, Math.min(config.telemetry.exportTimeoutMs, budget));
  // The exporter's packages load at its first export, after the service is ready (lazy-exporter.ts).
  const ledger = exporting
    ? new ExportLedger(lazyOtlpTraceExporter(config.telemetry.endpoint, exportTimeoutMs))
    : undefined;
  const tracerProvider = new NodeTracerProvider({
    resource,
    // Parent-based: an incoming sampled parent is followed. With nowhere to export, new roots are
    // not recorded at all (their ids are still made, so logs and problems carry them).
    sampler: new ParentBasedSampler({
      root: exporting
        ? new TraceIdRatioBasedSampler(config.telemetry.samplerRatio)
        : new AlwaysOffSampler(),
    }),
    spanProcessors:
      ledger === undefined
        ? []
        : [
            new BatchSpanProcessor(ledger, {
              exportTimeoutMillis: exportTimeoutMs,
              scheduledDelayMillis: 1000,
            }),
          ],
  });

  const scope = { name: 'ops-service', version: build.version };
  // Read with the SDK's instruments at each scrape (see request-durations.ts).
  const durations = new RequestDurationHistogram({ ...REQUEST_DURATION, scope, resource });
  const prometheus = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [durations],
  });
  const meterProvider = new MeterProvider({ resource, readers: [prometheus] });
  const eventLoop = createEventLoopMonitor();
  const meter = meterProvider.getMeter(scope.name, scope.version);
  const metrics = createServiceMetrics(meter, eventLoop, durations);
  const stopGcObserver = observeGc(meter);

  let flushing: Promise<FlushReport> | undefined;
  let flushed: FlushReport | undefined;
  return {
    tracer: tracerProvider.getTracer('ops-service', build.version),
    metrics,
    eventLoop,
    exporting,
    serveMetrics: (req, res) => prometheus.getMetricsRequestHandler(req, res),
    flush() {
      // Nothing is recorded after the meter provider shuts down.
      stopGcObserver();
      flushing ??= outsideRequest(() =>
        flushAll(tracerProvider, meterProvider, ledger, budget),
      ).then((report) => {
        flushed = report;
        return report;
      });
      return flushing;
    },
    lastFlush: () => flushed,
    exportCounts: () => ledger?.counts(),
  };
}

async function flushAll(
  tracerProvider: NodeTracerProvider,
  meterProvider: MeterProvider,
  ledger: ExportLedger | undefined,
  budgetMs: number,
): Promise<FlushReport> {
  const before = ledger?.counts();
  // Traces (spans of requests that finished during the drain) and metrics, each under the budget.
  // The trace provider resolves even when its exports fail: the ledger says what happened.
  const [traces, metrics] = await Promise.allSettled([
    callWithTimeout(
      tracerProvider.forceFlush().then(() => tracerProvider.shutdown()),
      budgetMs,
    ),
    callWithTimeout(meterProvider.shutdown(), budgetMs),
  ]);
  const after = ledger?.counts();
  const spans =
    before === undefined || after === undefined
      ? { status: 'ok' as const, spansDropped: 0 }
      : flushOutcome(before, after);
  const spansDroppedTotal = after === undefined ? 0 : after.failed + after.timedOut + after.pending;
  const failures = [traces, metrics].filter(
    (r): r is PromiseRejectedResult => r.status === 'rejected',
  );
  const timedOut = failures.some((f) => f.reason instanceof TimeoutError);
  const failed = failures.some((f) => !(f.reason instanceof TimeoutError));
  const status: FlushStatus =
    spans.status === 'error' || failed
      ? 'error'
      : spans.status === 'timeout' || timedOut
        ? 'timeout'
        : 'ok';
  const reason =
    status === 'ok'
      ? undefined
      : (ledger?.lastError ?? describe(failures[0]?.reason) ?? 'an export did not finish');
  return {
    status,
    spansDropped: spans.spansDropped,
    spansDroppedTotal,
    ...(reason === undefined ? {} : { reason }),
  };
}

function describe(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : 'unknown error';
}
