// Traces (OTLP/gRPC, parent-based sampling) and metrics (Prometheus text on the ops listener).
// Created once per process from the frozen config; flushed once, under a deadline, by the
// lifecycle machine's `flushing` state. Telemetry never installs signal handlers and never holds
// the process: the lifecycle owns both.
import os from 'node:os';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { diag, DiagLogLevel, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
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
import { createServiceMetrics, type ServiceMetrics } from './metrics';

export type FlushStatus = 'ok' | 'timeout';

export interface Telemetry {
  readonly tracer: Tracer;
  readonly metrics: ServiceMetrics;
  readonly eventLoop: EventLoopMonitor;
  /** Whether spans leave the process (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  /** Serves the Prometheus text format (mounted at the ops listener's /metrics). */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void;
  /**
   * Flushes and shuts down traces and metrics, each bounded by the flush budget. Resolves with
   * `timeout` when an export hit its deadline, rejects when an export failed. Idempotent: a second
   * call returns the first call's promise.
   */
  flush(): Promise<FlushStatus>;
}

export function createTelemetry(
  config: Readonly<AppConfig>,
  build: BuildInfo,
  logger: Logger,
): Telemetry {
  // OpenTelemetry's own errors (a failed export, a dropped batch) become log events.
  diag.setLogger(
    {
      error: (message, ...args) =>
        logger.warn('telemetry.error', { message, detail: args.map(String) }),
      warn: (message, ...args) =>
        logger.warn('telemetry.warning', { message, detail: args.map(String) }),
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
  const tracerProvider = new NodeTracerProvider({
    resource,
    // Parent-based: an incoming sampled parent is followed. With nowhere to export, new roots are
    // not recorded at all (their ids are still made, so logs and problems carry them).
    sampler: new ParentBasedSampler({
      root: exporting
        ? new TraceIdRatioBasedSampler(config.telemetry.samplerRatio)
        : new AlwaysOffSampler(),
    }),
    spanProcessors: exporting
      ? [
          new BatchSpanProcessor(
            new OTLPTraceExporter({
              url: config.telemetry.endpoint,
              timeoutMillis: exportTimeoutMs,
            }),
            { exportTimeoutMillis: exportTimeoutMs, scheduledDelayMillis: 1000 },
          ),
        ]
      : [],
  });

  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ resource, readers: [prometheus] });
  const eventLoop = createEventLoopMonitor();
  const metrics = createServiceMetrics(
    meterProvider.getMeter('ops-service', build.version),
    eventLoop,
  );

  let flushing: Promise<FlushStatus> | undefined;
  return {
    tracer: tracerProvider.getTracer('ops-service', build.version),
    metrics,
    eventLoop,
    exporting,
    serveMetrics: (req, res) => prometheus.getMetricsRequestHandler(req, res),
    flush() {
      flushing ??= flushAll(tracerProvider, meterProvider, budget);
      return flushing;
    },
  };
}

const DEADLINE_EXCEEDED = 4; // gRPC status code

function isDeadline(error: unknown): boolean {
  const list = Array.isArray(error) ? (error as unknown[]) : [error];
  return list.some((item) => {
    const code = (item as { code?: unknown } | null)?.code;
    return (
      code === DEADLINE_EXCEEDED ||
      (item instanceof Error && /DEADLINE_EXCEEDED|timeout/i.test(item.message))
    );
  });
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(
          Object.assign(new Error(`${what}: timeout after ${ms} ms`), { code: DEADLINE_EXCEEDED }),
        ),
      ms,
    );
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

async function flushAll(
  tracerProvider: NodeTracerProvider,
  meterProvider: MeterProvider,
  budgetMs: number,
): Promise<FlushStatus> {
  // Traces first (spans of requests that finished during the drain), then metrics; each under the
  // budget. forceFlush and shutdown can reject (forceFlush with an array of errors).
  const results = await Promise.allSettled([
    withDeadline(
      tracerProvider.forceFlush().then(() => tracerProvider.shutdown()),
      budgetMs,
      'traces',
    ),
    withDeadline(meterProvider.shutdown(), budgetMs, 'metrics'),
  ]);
  const failures = results
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => r.reason as unknown);
  if (failures.length === 0) return 'ok';
  if (failures.every(isDeadline)) return 'timeout';
  throw new AggregateError(failures.flat(), 'telemetry flush failed');
}
