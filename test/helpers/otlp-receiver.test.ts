// Proves the test OTLP receiver against the real @opentelemetry/exporter-trace-otlp-grpc
// exporter, and pins how that exporter behaves when the collector is down or silent.
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { closedPortEndpoint, startBlackHole, startOtlpReceiver } from './otlp-receiver';

interface RecordedExport {
  code: ExportResultCode;
  error: Error | undefined;
  elapsedMs: number;
}

/** Wraps the real exporter to record each export's result and how long it took to settle. */
class RecordingExporter implements SpanExporter {
  readonly results: RecordedExport[] = [];

  constructor(private readonly inner: SpanExporter) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const started = performance.now();
    this.inner.export(spans, (result) => {
      this.results.push({
        code: result.code,
        error: result.error,
        elapsedMs: performance.now() - started,
      });
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** Settles to 'resolved' / 'rejected' so a test can assert on the outcome and its timing. */
async function outcome(promise: Promise<unknown>): Promise<'resolved' | 'rejected'> {
  try {
    await promise;
    return 'resolved';
  } catch {
    return 'rejected';
  }
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  // Providers first (they close their gRPC clients), then the servers they talk to.
  for (const cleanup of cleanups.splice(0).reverse()) {
    await cleanup();
  }
});

function providerFor(
  url: string,
  exporterOptions: { timeoutMillis?: number } = {},
): { provider: BasicTracerProvider; recorder: RecordingExporter } {
  const recorder = new RecordingExporter(new OTLPTraceExporter({ url, ...exporterOptions }));
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': 'otlp-receiver-test',
      'deployment.environment.name': 'test',
    }),
    spanProcessors: [new SimpleSpanProcessor(recorder)],
  });
  cleanups.push(() => provider.shutdown());
  return { provider, recorder };
}

describe('otlp-receiver', () => {
  test('when the real OTLP gRPC exporter sends a parent and child span, then the receiver decodes both with ids, parent link, names, attributes and resource', async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    expect(receiver.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const { provider, recorder } = providerFor(receiver.endpoint);
    const tracer = provider.getTracer('otlp-receiver-test-scope', '1.2.3');

    const parent = tracer.startSpan('orders.place', {
      kind: SpanKind.SERVER,
      attributes: { 'order.id': 'o-42', 'order.items': 3 },
    });
    const child = tracer.startSpan(
      'db.insert',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system': 'postgresql',
          'db.ok': true,
          'db.ratio': 0.25,
          'db.tables': ['orders', 'order_items'],
        },
      },
      trace.setSpan(context.active(), parent),
    );
    child.addEvent('row.written', { 'db.rows': 2 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'constraint violated' });
    child.end();
    parent.end();
    await provider.forceFlush();

    const spans = await receiver.waitForSpans(2);
    expect(spans).toHaveLength(2);
    expect(recorder.results.map((r) => r.code)).toEqual([
      ExportResultCode.SUCCESS,
      ExportResultCode.SUCCESS,
    ]);
    // SimpleSpanProcessor exports each span as it ends: child first, one Export call each.
    expect(receiver.exportCalls).toBe(2);

    const received = (name: string) => spans.find((s) => s.name === name);
    const parentSpan = received('orders.place');
    const childSpan = received('db.insert');
    if (parentSpan === undefined || childSpan === undefined) {
      throw new Error(`missing spans, got ${spans.map((s) => s.name).join(', ')}`);
    }

    const parentContext = parent.spanContext();
    const childContext = child.spanContext();
    expect(parentSpan.traceId).toBe(parentContext.traceId);
    expect(parentSpan.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(parentSpan.spanId).toBe(parentContext.spanId);
    expect(parentSpan.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(parentSpan.parentSpanId).toBe('');
    expect(childSpan.traceId).toBe(parentContext.traceId);
    expect(childSpan.spanId).toBe(childContext.spanId);
    expect(childSpan.parentSpanId).toBe(parentContext.spanId);

    // OTLP SpanKind is the API's SpanKind + 1.
    expect(parentSpan.kind).toBe(SpanKind.SERVER + 1);
    expect(childSpan.kind).toBe(SpanKind.CLIENT + 1);
    expect(parentSpan.statusCode).toBe(0);
    expect(childSpan.statusCode).toBe(2);

    expect(parentSpan.attributes).toEqual({ 'order.id': 'o-42', 'order.items': 3 });
    expect(childSpan.attributes).toEqual({
      'db.system': 'postgresql',
      'db.ok': true,
      'db.ratio': 0.25,
      'db.tables': ['orders', 'order_items'],
    });
    expect(childSpan.events).toEqual([{ name: 'row.written', attributes: { 'db.rows': 2 } }]);

    for (const span of spans) {
      expect(span.resource).toMatchObject({
        'service.name': 'otlp-receiver-test',
        'deployment.environment.name': 'test',
      });
      expect(typeof span.startTimeUnixNano).toBe('bigint');
      expect(BigInt(span.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(span.startTimeUnixNano));
      // A 2020s timestamp in nanoseconds: proves fixed64 decoding, not just a non-zero value.
      expect(BigInt(span.startTimeUnixNano)).toBeGreaterThan(1_600_000_000_000_000_000n);
    }
  });

  test('when fewer spans than awaited arrive before the timeout, then waitForSpans rejects saying how many arrived', async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());

    await expect(receiver.waitForSpans(1, 100)).rejects.toThrow(
      /expected at least 1 span\(s\) within 100 ms, but 0 arrived/,
    );
  });

  test('when the receiver closes while a waitForSpans is pending, then the wait rejects instead of hanging', async () => {
    const receiver = await startOtlpReceiver();
    const pending = receiver.waitForSpans(1, 10_000);
    await receiver.close();

    await expect(pending).rejects.toThrow(/receiver was closed after 0 span/);
  });

  test('when a client sends bytes that are not an ExportTraceServiceRequest, then the receiver answers INVALID_ARGUMENT and records nothing', async () => {
    const receiver = await startOtlpReceiver();
    cleanups.push(() => receiver.close());
    // A bare grpc-js client: no OTLP encoding at all, just raw bytes on the Export path.
    const client = new grpc.Client(
      receiver.endpoint.replace('http://', ''),
      grpc.credentials.createInsecure(),
    );
    cleanups.push(() => Promise.resolve(client.close()));

    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.makeUnaryRequest(
        '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        (value: Buffer): Buffer => value,
        (bytes: Buffer): Buffer => bytes,
        Buffer.from([0x0a, 0xff, 0xff, 0xff]),
        (err) => resolve(err),
      );
    });

    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(receiver.exportCalls).toBe(0);
    expect(receiver.spans).toEqual([]);
  });

  test('when the exporter targets a port nothing listens on, then the export fails quickly', async () => {
    const { provider, recorder } = providerFor(await closedPortEndpoint());
    const started = performance.now();

    provider.getTracer('t').startSpan('lost').end();
    const flushed = await outcome(provider.forceFlush());
    const elapsedMs = performance.now() - started;

    // In sdk-trace-base 2.12 forceFlush surfaces the failed export: it rejects.
    expect(flushed).toBe('rejected');
    expect(recorder.results).toHaveLength(1);
    expect(recorder.results[0]?.code).toBe(ExportResultCode.FAILED);
    expect(recorder.results[0]?.error?.message).toMatch(/UNAVAILABLE/);
    expect(elapsedMs).toBeLessThan(1000);
  });

  test('when the exporter targets a black hole with timeoutMillis 500, then the export fails within 2 s', async () => {
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const { provider, recorder } = providerFor(hole.endpoint, { timeoutMillis: 500 });
    const started = performance.now();

    provider.getTracer('t').startSpan('swallowed').end();
    const flushed = await outcome(provider.forceFlush());
    const elapsedMs = performance.now() - started;

    expect(hole.connections).toBeGreaterThanOrEqual(1);
    expect(flushed).toBe('rejected');
    expect(recorder.results).toHaveLength(1);
    expect(recorder.results[0]?.code).toBe(ExportResultCode.FAILED);
    expect(recorder.results[0]?.error?.message).toMatch(/DEADLINE_EXCEEDED/);
    expect(elapsedMs).toBeGreaterThanOrEqual(400);
    expect(elapsedMs).toBeLessThan(2000);
  });
});
