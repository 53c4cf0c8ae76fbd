// The trace exporter loaded at its first export (src/telemetry/lazy-exporter.ts): nothing before,
// the real OTLP/gRPC exporter from then on, and a loading failure counted as a failed export.
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ExportLedger } from '../../src/telemetry/export-ledger';
import { LazySpanExporter, lazyOtlpTraceExporter } from '../../src/telemetry/lazy-exporter';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver';

function exportOnce(exporter: LazySpanExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

describe('the lazily loaded trace exporter', () => {
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('when nothing was ever exported, then nothing is loaded and flush and shutdown end at once', async () => {
    let loads = 0;
    const exporter = new LazySpanExporter(() => {
      loads += 1;
      return Promise.reject(new Error('must not load'));
    });
    await exporter.forceFlush();
    await exporter.shutdown();
    expect(loads).toBe(0);
    expect(exporter.loaded).toBe(false);
  });

  it('when spans end, then the OTLP exporter is loaded and every span reaches the collector', async () => {
    const exporter = lazyOtlpTraceExporter(receiver.endpoint, 5_000);
    expect(exporter.loaded).toBe(false);
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('lazy-exporter-test');
    tracer.startSpan('first').end();
    tracer.startSpan('second').end();
    await provider.forceFlush();
    expect(exporter.loaded).toBe(true);
    expect(receiver.spans.map((span) => span.name).sort()).toEqual(['first', 'second']);
    await provider.shutdown();
  });

  it('when the exporter cannot be loaded, then each export fails with that error and the ledger counts the spans as failed', async () => {
    const exporter = new LazySpanExporter(() => Promise.reject(new Error('module not found')));
    const ledger = new ExportLedger(exporter);
    const spans = [{} as ReadableSpan, {} as ReadableSpan];
    const result = await new Promise<ExportResult>((resolve) => ledger.export(spans, resolve));
    expect(result.code).toBe(ExportResultCode.FAILED);
    expect(result.error?.message).toBe('module not found');
    expect(ledger.counts()).toEqual({ exported: 0, failed: 2, timedOut: 0, pending: 0 });
    expect((await exportOnce(exporter, spans)).code).toBe(ExportResultCode.FAILED);
    await exporter.shutdown();
  });
});
