// The span exports' real outcomes, which decide what telemetry.flush says.
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ExportLedger, flushOutcome } from '../../src/telemetry/export-ledger';

/** An exporter whose answers the test gives, one per export call, in order. */
function scripted() {
  const waiting: ((result: ExportResult) => void)[] = [];
  const exporter: SpanExporter = {
    export: (_spans, callback) => void waiting.push(callback),
    shutdown: () => Promise.resolve(),
  };
  return { exporter, answer: (result: ExportResult) => waiting.shift()?.(result) };
}
const spans = (n: number): ReadableSpan[] => Array.from({ length: n }, () => ({}) as ReadableSpan);
const deadline = Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 });
const refused = Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
  code: 14,
});

describe('the export ledger', () => {
  it('when exports succeed, fail, time out or never answer, then each is counted by its own result and passed on', () => {
    const { exporter, answer } = scripted();
    const ledger = new ExportLedger(exporter);
    const results: ExportResult[] = [];
    for (const n of [3, 2, 4, 5]) ledger.export(spans(n), (r) => results.push(r));
    expect(ledger.counts()).toEqual({ exported: 0, failed: 0, timedOut: 0, pending: 14 });
    answer({ code: ExportResultCode.SUCCESS });
    answer({ code: ExportResultCode.FAILED, error: refused });
    answer({ code: ExportResultCode.FAILED, error: deadline });
    expect(ledger.counts()).toEqual({ exported: 3, failed: 2, timedOut: 4, pending: 5 });
    expect(results.map((r) => r.code)).toEqual([
      ExportResultCode.SUCCESS,
      ExportResultCode.FAILED,
      ExportResultCode.FAILED,
    ]);
    expect(ledger.lastError).toBe(deadline.message);
  });

  it('when a flush ends, then its status is error if an export failed, timeout if one timed out or is still waiting, ok otherwise', () => {
    const zero = { exported: 0, failed: 0, timedOut: 0, pending: 0 };
    expect(flushOutcome(zero, { ...zero, exported: 9 })).toEqual({ status: 'ok', spansDropped: 0 });
    expect(flushOutcome(zero, { ...zero, timedOut: 3 })).toEqual({
      status: 'timeout',
      spansDropped: 3,
    });
    expect(flushOutcome(zero, { ...zero, pending: 2 })).toEqual({
      status: 'timeout',
      spansDropped: 2,
    });
    expect(flushOutcome(zero, { ...zero, failed: 1, timedOut: 1 })).toEqual({
      status: 'error',
      spansDropped: 2,
    });
    // Failures before the flush began are not the flush's.
    const before = { ...zero, failed: 7 };
    expect(flushOutcome(before, { ...before, exported: 1 })).toEqual({
      status: 'ok',
      spansDropped: 0,
    });
  });
});
