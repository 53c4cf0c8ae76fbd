// What really became of every span export. The SDK cannot say: its provider swallows a failed
// flush (MultiSpanProcessor hands the error to the global handler and resolves), so the flush
// looked `ok` after the collector had timed out and the spans were lost (issue #12). This wrapper
// sits between the batch processor and the OTLP exporter and counts each export's outcome by
// the exporter's own result, and the exports still waiting for one.
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export type ExportOutcome = 'ok' | 'timeout' | 'error';

/** Span counts since the ledger began. */
export interface LedgerCounts {
  readonly exported: number;
  readonly failed: number;
  readonly timedOut: number;
  /** Spans in exports that have not answered yet. */
  readonly pending: number;
}

const DEADLINE_EXCEEDED = 4; // gRPC status

function outcomeOf(result: ExportResult): ExportOutcome {
  if (result.code === ExportResultCode.SUCCESS) return 'ok';
  const error: (Error & { code?: unknown }) | undefined = result.error;
  if (
    error?.code === DEADLINE_EXCEEDED ||
    /deadline exceeded|timeout/i.test(error?.message ?? '')
  ) {
    return 'timeout';
  }
  return 'error';
}

export class ExportLedger implements SpanExporter {
  private exported = 0;
  private failed = 0;
  private timedOut = 0;
  private readonly waiting = new Map<number, number>();
  private nextExport = 0;
  /** The last failure's message, for the flush line. */
  lastError: string | undefined;

  constructor(private readonly inner: SpanExporter) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const id = this.nextExport;
    this.nextExport += 1;
    this.waiting.set(id, spans.length);
    this.inner.export(spans, (result) => {
      this.waiting.delete(id);
      const outcome = outcomeOf(result);
      if (outcome === 'ok') this.exported += spans.length;
      else {
        if (outcome === 'timeout') this.timedOut += spans.length;
        else this.failed += spans.length;
        this.lastError = result.error?.message ?? outcome;
      }
      resultCallback(result);
    });
  }

  counts(): LedgerCounts {
    let pending = 0;
    for (const spans of this.waiting.values()) pending += spans;
    return {
      exported: this.exported,
      failed: this.failed,
      timedOut: this.timedOut,
      pending,
    };
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * The flush's outcome from the counts at its start and end: `error` when an export failed,
 * `timeout` when one hit its deadline or never answered, `ok` only when every export that ended
 * in the flush succeeded and none is left waiting.
 */
export function flushOutcome(
  before: LedgerCounts,
  after: LedgerCounts,
): { status: ExportOutcome; spansDropped: number } {
  const failed = after.failed - before.failed;
  const timedOut = after.timedOut - before.timedOut;
  const spansDropped = failed + timedOut + after.pending;
  if (failed > 0) return { status: 'error', spansDropped };
  if (timedOut > 0 || after.pending > 0) return { status: 'timeout', spansDropped };
  return { status: 'ok', spansDropped };
}
