// The OTLP/gRPC trace exporter, loaded on its first export instead of at start. Its packages (the
// exporter, the OTLP transformer, the exporter base) take tens of milliseconds to load, and the
// batch processor's first export comes a second after the first span at the earliest, long after
// the service is ready: loading them at start only delayed readiness. Until then nothing is
// loaded; a flush or shutdown with nothing ever exported has nothing to wait for.
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export class LazySpanExporter implements SpanExporter {
  private loading: Promise<SpanExporter> | undefined;

  constructor(private readonly load: () => Promise<SpanExporter>) {}

  /** Whether the exporter has been asked for (loaded, or being loaded). */
  get loaded(): boolean {
    return this.loading !== undefined;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.loading ??= this.load();
    this.loading.then(
      (inner) => inner.export(spans, resultCallback),
      (error: unknown) =>
        resultCallback({
          code: ExportResultCode.FAILED,
          error: error instanceof Error ? error : new Error(String(error)),
        }),
    );
  }

  async shutdown(): Promise<void> {
    const inner = await this.loading?.catch(() => undefined);
    await inner?.shutdown();
  }

  async forceFlush(): Promise<void> {
    const inner = await this.loading?.catch(() => undefined);
    await inner?.forceFlush?.();
  }
}

/** OTLPTraceExporter to `url`, made at its first export. */
export function lazyOtlpTraceExporter(url: string, timeoutMillis: number): LazySpanExporter {
  return new LazySpanExporter(async () => {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc');
    return new OTLPTraceExporter({ url, timeoutMillis });
  });
}
