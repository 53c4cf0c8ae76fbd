// Whole-process: the real service exports spans over OTLP/gRPC to a real receiver (auto and
// manual instrumentation alike need a real process; jest's module system hides require hooks).
import http from 'node:http';
import { get, delay } from '../drills/drill-kit';
import {
  closedPortEndpoint,
  type OtlpReceiver,
  startBlackHole,
  startOtlpReceiver,
} from '../helpers/otlp-receiver';
import { startService } from '../helpers/service-process';

jest.setTimeout(30_000);

const SERVER_KIND = 2; // OTLP SpanKind: SERVER (the API's SpanKind + 1)
const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

function traceparent(sampled: boolean): string {
  return `00-${PARENT_TRACE}-${PARENT_SPAN}-${sampled ? '01' : '00'}`;
}

function getWith(port: number, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; requestId: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers }, (res) => {
        res.resume();
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            requestId: String(res.headers['x-request-id']),
          }),
        );
      })
      .once('error', reject);
  });
}

let receiver: OtlpReceiver;
beforeEach(async () => {
  receiver = await startOtlpReceiver();
});
afterEach(async () => {
  await receiver.close();
});

describe('traces over OTLP/gRPC', () => {
  it('when N requests are served, then N server spans arrive named by route with the resource attributes, and each log line carries its span ids', async () => {
    const { service, port } = await startService({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: 'orders-drill',
      CLOUD_REGION: 'eu-west-3',
      SHUTDOWN_DELAY_MS: '0',
    });
    const N = 12;
    const outcomes = await Promise.all(
      Array.from({ length: N }, () => get(port, '/drill/work?ms=5', false)),
    );
    expect(outcomes.every((o) => o.ok)).toBe(true);
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);

    const spans = receiver.spans.filter((span) => span.kind === SERVER_KIND);
    expect(spans).toHaveLength(N);
    for (const span of spans) {
      expect(span.name).toBe('GET /drill/work');
      expect(span.parentSpanId).toBe('');
      expect(span.attributes).toMatchObject({
        'http.request.method': 'GET',
        'http.route': '/drill/work',
        'http.response.status_code': 200,
        'url.path': '/drill/work',
      });
      expect(span.resource).toMatchObject({
        'service.name': 'orders-drill',
        'service.version': '0.1.0',
        'deployment.environment.name': 'test',
        'cloud.region': 'eu-west-3',
        'process.runtime.name': 'nodejs',
      });
      expect(typeof span.resource['host.name']).toBe('string');
    }
    const accessLines = service.lines.filter((line) => line.event === 'http.request');
    expect(accessLines).toHaveLength(N);
    for (const line of accessLines) {
      const span = spans.find((s) => s.attributes['request.id'] === line.request_id);
      expect(span).toBeDefined();
      expect(line).toMatchObject({
        trace_id: span?.traceId,
        span_id: span?.spanId,
        route: '/drill/work',
        status: 200,
        method: 'GET',
      });
      expect(typeof line.duration_ms).toBe('number');
      expect(line.bytes).toBeGreaterThan(0);
    }
    expect(service.lines.find((l) => l.event === 'telemetry.flush')).toMatchObject({
      status: 'ok',
    });
  });

  it('when a request carries a sampled traceparent, then the server span continues that trace under that parent', async () => {
    const { service, port } = await startService({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      SHUTDOWN_DELAY_MS: '0',
    });
    await getWith(port, '/drill/work?ms=1', { traceparent: traceparent(true) });
    service.kill('SIGTERM');
    await service.exited();
    const [span] = receiver.spans;
    expect(span).toMatchObject({
      traceId: PARENT_TRACE,
      parentSpanId: PARENT_SPAN,
      kind: SERVER_KIND,
    });
  });

  it('when the sampling ratio is 0, then a sampled parent is still followed and new roots are not exported', async () => {
    const { service, port } = await startService({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_TRACES_SAMPLER_ARG: '0',
      SHUTDOWN_DELAY_MS: '0',
    });
    const followed = await getWith(port, '/drill/work?ms=1', { traceparent: traceparent(true) });
    await getWith(port, '/drill/work?ms=1', {});
    const notSampledParent = await getWith(port, '/drill/work?ms=1', {
      traceparent: traceparent(false),
    });
    service.kill('SIGTERM');
    await service.exited();
    expect(receiver.spans).toHaveLength(1);
    expect(receiver.spans[0]?.attributes['request.id']).toBe(followed.requestId);
    // Unsampled spans still have ids: they reach the logs.
    const line = service.lines.find(
      (l) => l.event === 'http.request' && l.request_id === notSampledParent.requestId,
    );
    expect(line?.trace_id).toBe(PARENT_TRACE);
  });

  it('when requests finish during the drain, then their spans are exported before the process exits', async () => {
    const { service, port } = await startService({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      SHUTDOWN_DELAY_MS: '100',
    });
    const slow = Array.from({ length: 4 }, () => get(port, '/drill/work?ms=800', false));
    await delay(100);
    service.kill('SIGTERM');
    const outcomes = await Promise.all(slow);
    expect(await service.exited()).toBe(0);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const begin = Date.parse(service.lines.find((l) => l.event === 'shutdown.begin')?.ts ?? '');
    const endedDuringDrain = receiver.spans.filter(
      (span) => Number(BigInt(span.endTimeUnixNano) / 1_000_000n) > begin,
    );
    expect(endedDuringDrain).toHaveLength(4);
  });
});

describe('a collector that is down or never answers does not hold the service', () => {
  const budget = { delay: 100, drain: 1000, flush: 800 };
  const env = {
    SHUTDOWN_DELAY_MS: String(budget.delay),
    SHUTDOWN_DRAIN_TIMEOUT_MS: String(budget.drain),
    SHUTDOWN_FLUSH_TIMEOUT_MS: String(budget.flush),
    SHUTDOWN_HARD_STOP_MS: '10000',
  };

  it('when the collector port is closed, then requests are served, shutdown ends within budget + 1 s, and telemetry.flush says error', async () => {
    const { service, port } = await startService({
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: await closedPortEndpoint(),
    });
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => get(port, '/drill/work?ms=5', false)),
    );
    const signalAt = Date.now();
    service.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(Date.now() - signalAt).toBeLessThan(budget.delay + budget.drain + budget.flush + 1000);
    expect(service.lines.find((l) => l.event === 'telemetry.flush')).toMatchObject({
      level: 'warn',
      status: 'error',
    });
  });

  it('when the collector accepts connections and never answers, then shutdown ends within budget + 1 s, and telemetry.flush says timeout', async () => {
    const blackHole = await startBlackHole();
    try {
      const { service, port } = await startService({
        ...env,
        OTEL_EXPORTER_OTLP_ENDPOINT: blackHole.endpoint,
      });
      const outcomes = await Promise.all(
        Array.from({ length: 5 }, () => get(port, '/drill/work?ms=5', false)),
      );
      const signalAt = Date.now();
      service.kill('SIGTERM');
      expect(await service.exited()).toBe(0);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(Date.now() - signalAt).toBeLessThan(budget.delay + budget.drain + budget.flush + 1000);
      const flush = service.lines.find((l) => l.event === 'telemetry.flush');
      expect(flush).toMatchObject({ level: 'warn', status: 'timeout' });
      expect(Number(flush?.flush_ms)).toBeLessThanOrEqual(budget.flush + 100);
    } finally {
      await blackHole.close();
    }
  });
});
