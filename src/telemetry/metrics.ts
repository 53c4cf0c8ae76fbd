// The service's metrics. Label cardinality is bounded by construction: routes are templates
// (`/v1/orders/:id`, never a raw path), status is a class (`2xx`), states are a fixed set.
import type { Attributes, Meter, ObservableResult } from '@opentelemetry/api';
import type { EventLoopMonitor } from './event-loop-monitor';
import type { RequestDurationHistogram } from './request-durations';

/** Seconds; the SDK's default buckets are made for milliseconds (see ../shared/STACK.md). */
export const DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export const LIFECYCLE_PHASES = ['starting', 'ready', 'draining', 'flushing', 'stopped'] as const;

export type BreakerState = 'closed' | 'open' | 'half_open';
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

export interface ServiceMetrics {
  recordRequest(method: string, route: string, status: number, seconds: number): void;
  countError(code: string, category: string): void;
  /** A connection the main listener closed at once: MAX_CONNECTIONS were open. */
  countRefusedConnection(): void;
  /** Broker messages handled: the outbox relay (`published`) and the payments consumer (`paid`, ...). */
  countBrokerMessages(flow: 'outbox' | 'payments', outcome: string, count?: number): void;
  /** Sets what the in-flight, lifecycle and dependency gauges read at each scrape. */
  observe(sources: {
    inFlight(): number;
    phase(): string;
    dependencies(): Readonly<Record<string, { readonly status: string }>>;
  }): void;
  setBreakerState(dependency: string, state: BreakerState): void;
  /** For the outbox relay: how many events wait to be published. */
  observeOutboxBacklog(read: () => number): void;
  /** A request counted in this process's memory because the shared store (Redis) could not. */
  countRateLimitFallback(): void;
  /** Whether the shared rate limit store answers (read at each scrape). */
  observeRateLimitStore(up: () => boolean): void;
  /** A call refused by authentication, by reason (a closed set: src/auth/verifier.ts). */
  countAuthFailure(reason: string): void;
  /** What the breaker and backlog gauges read now (for /lifecycle and its live page). */
  readings(): MetricReadings;
}

export interface MetricReadings {
  readonly breakers: Readonly<Record<string, BreakerState>>;
  /** Undefined when no outbox relay runs. */
  readonly outboxBacklog: number | undefined;
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** The request duration histogram's description (http.server.request.duration, in seconds). */
export const REQUEST_DURATION = {
  name: 'http.server.request.duration',
  description: 'Duration of HTTP server requests, per route, method and status class.',
  unit: 's',
  boundaries: DURATION_BUCKETS_SECONDS,
} as const;

/**
 * `durations` holds the request duration histogram: aggregated by the service itself and read by
 * the metric reader as a MetricProducer (request-durations.ts), not an SDK instrument.
 */
export function createServiceMetrics(
  meter: Meter,
  eventLoop: EventLoopMonitor,
  durations: RequestDurationHistogram,
): ServiceMetrics {
  const brokerMessages = meter.createCounter('ops.broker.messages', {
    description:
      'Broker messages handled, per flow (outbox, payments) and outcome (published; paid, duplicate, retry, dead_lettered).',
  });
  // Every series exists from the start at 0, so `increase()` sees the first dead letter too.
  for (const outcome of ['paid', 'duplicate', 'retry', 'dead_lettered'])
    brokerMessages.add(0, { flow: 'payments', outcome });
  brokerMessages.add(0, { flow: 'outbox', outcome: 'published' });
  const errors = meter.createCounter('ops.errors', {
    description: 'Error responses and unexpected errors, per catalogue code and category.',
  });
  const refusedConnections = meter.createCounter('ops.http.connections.refused', {
    description: 'Connections the main listener closed at once because MAX_CONNECTIONS were open.',
  });
  const rateLimitFallbacks = meter.createCounter('ops.rate_limit.store.fallbacks', {
    description:
      "Requests counted in the replica's own memory because the shared rate limit store (Redis) could not count them.",
  });
  const rateLimitStoreGauge = meter.createObservableGauge('ops.rate_limit.store.up', {
    description: 'Whether the shared rate limit store (Redis) answers (1) or not (0).',
  });
  const authFailures = meter.createCounter('ops.auth.failures', {
    description:
      'Calls to /v1 refused by authentication, per reason (missing, expired, bad_signature, ..., insufficient_scope).',
  });
  const authAttributes = new Map<string, Attributes>();
  const inFlightGauge = meter.createObservableUpDownCounter('http.server.active_requests', {
    description: 'Requests in flight on the main listener.',
  });
  const lifecycleGauge = meter.createObservableGauge('ops.lifecycle.state', {
    description: 'The lifecycle phase: 1 for the current one, 0 for the others.',
  });
  const dependencyGauge = meter.createObservableGauge('ops.dependency.up', {
    description: 'Whether a dependency is up (1) or not (0).',
  });
  const breakerGauge = meter.createObservableGauge('ops.circuit_breaker.state', {
    description: 'Circuit breaker state per dependency: 1 for the current state, 0 for the others.',
  });
  const backlogGauge = meter.createObservableGauge('ops.outbox.backlog', {
    description: 'Events in the outbox waiting to be published.',
  });
  const loopDelay = meter.createObservableGauge('nodejs.eventloop.delay.p99', {
    description: 'p99 event loop delay over the last second.',
    unit: 's',
  });
  const heapUsed = meter.createObservableGauge('process.memory.heap_used', {
    description: 'V8 heap in use.',
    unit: 'By',
  });
  const rss = meter.createObservableGauge('process.memory.rss', {
    description: 'Resident set size.',
    unit: 'By',
  });

  // Prometheus' conventional name: a restart shows as a change of this value (the restart alert).
  const startTime = meter.createObservableGauge('process.start_time_seconds', {
    description: 'Start time of the process since the Unix epoch, in seconds.',
  });
  const startedAtSeconds = Math.round(Date.now() / 1000 - process.uptime());
  startTime.addCallback((result) => result.observe(startedAtSeconds));

  loopDelay.addCallback((result) => result.observe(eventLoop.p99Ms() / 1000));
  heapUsed.addCallback((result) => result.observe(process.memoryUsage().heapUsed));
  rss.addCallback((result) => result.observe(process.memoryUsage.rss()));

  const breakers = new Map<string, BreakerState>();
  breakerGauge.addCallback((result) => {
    for (const [dependency, current] of breakers) {
      for (const state of BREAKER_STATES)
        result.observe(state === current ? 1 : 0, { dependency, state });
    }
  });

  let readBacklog: (() => number) | undefined;
  return {
    recordRequest(method, route, status, seconds) {
      durations.record(method, route, statusClass(status), seconds);
    },
    countBrokerMessages(flow, outcome, count = 1) {
      brokerMessages.add(count, { flow, outcome });
    },
    countError(code, category) {
      errors.add(1, { 'error.code': code, 'error.category': category });
    },
    countRefusedConnection() {
      refusedConnections.add(1);
    },
    observe(sources) {
      inFlightGauge.addCallback((result) => result.observe(sources.inFlight()));
      lifecycleGauge.addCallback((result: ObservableResult) => {
        const phase = sources.phase();
        for (const name of LIFECYCLE_PHASES)
          result.observe(name === phase ? 1 : 0, { state: name });
      });
      dependencyGauge.addCallback((result) => {
        for (const [dependency, state] of Object.entries(sources.dependencies())) {
          result.observe(state.status === 'up' ? 1 : 0, { dependency });
        }
      });
    },
    setBreakerState(dependency, state) {
      breakers.set(dependency, state);
    },
    observeOutboxBacklog(read) {
      readBacklog = read;
      backlogGauge.addCallback((result) => result.observe(read()));
    },
    countAuthFailure(reason) {
      let attributes = authAttributes.get(reason);
      if (attributes === undefined) {
        attributes = { reason };
        authAttributes.set(reason, attributes);
      }
      authFailures.add(1, attributes);
    },
    countRateLimitFallback() {
      rateLimitFallbacks.add(1);
    },
    observeRateLimitStore(up) {
      rateLimitStoreGauge.addCallback((result) => result.observe(up() ? 1 : 0));
    },
    readings() {
      return { breakers: Object.fromEntries(breakers), outboxBacklog: readBacklog?.() };
    },
  };
}
