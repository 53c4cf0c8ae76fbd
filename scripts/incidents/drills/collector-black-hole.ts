// collector-black-hole: the OTLP collector accepts connections and never answers; then the pod is
// stopped while it still does.
import { summarize } from '../load';
import type { Drill } from '../page';
import {
  between,
  checkCreatedCommitted,
  checkExit,
  checkHealthAlways200,
  checkNoCrash,
  lineAfter,
  metricRows,
  outcomesIn,
  ts,
} from './common';
import { fmt } from './database-down';

const HOLE_MS = 6_000;
const FLUSH_TIMEOUT_MS = 3_000;

export const collectorBlackHole: Drill = {
  name: 'collector-black-hole',
  title: 'The OpenTelemetry collector accepts and never answers',
  summary: `the OTLP collector becomes a black hole for ${HOLE_MS / 1000} s, then the pod is stopped (SIGTERM) while it still is`,
  fault: `The service exports its spans over OTLP/gRPC through a TCP proxy to a collector. At +0 the proxy stops forwarding while keeping the connection open and accepting new ones: exports are sent and never answered (a hung collector, or a network path that drops packets). ${HOLE_MS / 1000} s later, with the collector still silent, the pod gets a SIGTERM, as in a rollout.`,
  via: { collector: 'proxy' },
  env: {},
  load: { ratePerSecond: 6, maxInFlight: 12 },
  metrics: metricRows([]),
  async script(run) {
    await run.until(() => run.collector.exports() > 0, 5_000);
    await run.hold(2_500);
    run.keep('exportsBefore', run.collector.exports());
    await run.fault('the proxy stalls the collector: exports are accepted and never answered', {
      key: 'during',
      label: 'collector black hole',
    });
    run.collectorProxy?.stall();
    await run.hold(HOLE_MS - 500);
    await run.lifecycle('collector black hole');
    await run.hold(500);
    run.keep('exportsAtSigterm', run.collector.exports());
    await run.nextPhase('shutdown', 'SIGTERM, collector still silent');
    run.signal('SIGTERM', 'SIGTERM (a rollout) while the collector is still a black hole');
    run.keep('sigtermAt', Date.now());
    await run.exited(12_000);
    await run.nextPhase('exited', 'process gone');
    await run.hold(1_500);
  },
  async conclude(run) {
    const from = run.mark('fault');
    const before = summarize(outcomesIn(run, 'before'));
    const during = summarize(outcomesIn(run, 'during'));
    run.fact('p95BeforeMs', before.p95Ms);
    run.fact('p95DuringMs', during.p95Ms);
    run.fact('maxDuringMs', during.maxMs);
    run.check(
      'requests are not slowed by the silent collector',
      (during.maxMs ?? 0) < 1_000 && during.server5xx + during.noAnswer === 0,
      `p95 ${String(before.p95Ms)} ms before, ${String(during.p95Ms)} ms during (max ${String(during.maxMs)} ms); ${during.server5xx} 5xx, ${during.noAnswer} without an answer`,
    );
    const exportsBefore = run.kept<number>('exportsBefore') ?? 0;
    const exportsAtSigterm = run.kept<number>('exportsAtSigterm') ?? 0;
    run.fact('exportsAnsweredBefore', exportsBefore);
    run.fact('exportsAnsweredDuring', exportsAtSigterm - exportsBefore);
    const telemetryErrors = run
      .lines()
      .filter(
        ({ line }) =>
          (line.event === 'telemetry.error' || line.event === 'telemetry.warning') &&
          Date.parse(line.ts) >= from,
      );
    const firstError = telemetryErrors[0]?.line;
    run.fact('telemetryErrorLines', telemetryErrors.length);
    run.fact('firstTelemetryErrorAfterMs', between(from, ts(firstError)));
    run.check(
      'the failed exports are logged while serving (telemetry.error)',
      telemetryErrors.length > 0,
      firstError === undefined
        ? 'no telemetry.error or telemetry.warning line'
        : `${telemetryErrors.length} lines, the first at +${fmt((ts(firstError) ?? 0) - from)} s: ${String(firstError.message)}`,
    );
    const sigtermAt = run.kept<number>('sigtermAt') ?? 0;
    const flush = lineAfter(run, 'telemetry.flush', sigtermAt);
    const exit = lineAfter(run, 'service.exit', sigtermAt);
    run.fact('flushStatus', flush?.status as string | undefined);
    run.fact('flushMs', flush?.flush_ms as number | undefined);
    run.fact('spansDropped', flush?.spans_dropped as number | undefined);
    run.fact('spansDroppedTotal', flush?.spans_dropped_total as number | undefined);
    run.fact('exitAfterSigtermMs', between(sigtermAt, ts(exit)));
    run.check(
      'telemetry.flush tells the truth: not ok, with the spans lost',
      flush !== undefined && flush.status !== 'ok' && Number(flush.spans_dropped_total) > 0,
      flush === undefined
        ? 'no telemetry.flush line'
        : `status=${String(flush.status)} flush_ms=${String(flush.flush_ms)} spans_dropped=${String(flush.spans_dropped)} spans_dropped_total=${String(flush.spans_dropped_total)} reason=${String(flush.reason)}`,
    );
    run.check(
      `the flush is bounded by SHUTDOWN_FLUSH_TIMEOUT_MS (${FLUSH_TIMEOUT_MS} ms)`,
      flush !== undefined && Number(flush.flush_ms) <= FLUSH_TIMEOUT_MS + 250,
      `flush_ms=${String(flush?.flush_ms)}; SIGTERM to exit ${String(between(sigtermAt, ts(exit)))} ms`,
    );
    checkHealthAlways200(run, sigtermAt);
    await checkCreatedCommitted(run);
    checkNoCrash(run);
    checkExit(run, 0, 0, 'a lost flush does not change the exit code');
  },
  headline(run) {
    const f = run.facts;
    return `Requests were not slowed (p95 ${String(f.p95BeforeMs)} ms before, ${String(f.p95DuringMs)} ms with the collector silent) and no export was answered for ${HOLE_MS / 1000} s; the first \`telemetry.error\` came ${fmt(f.firstTelemetryErrorAfterMs)} s in. At the SIGTERM the flush gave up after ${String(f.flushMs)} ms with \`status=${String(f.flushStatus)}\` and ${String(f.spansDroppedTotal)} spans lost, and the process exited ${String(f.exitCode)} ${fmt(f.exitAfterSigtermMs)} s after the signal.`;
  },
  meaning: `
Tracing is a passenger, never the driver. Spans leave through a batch processor in the
background, so a collector that never answers does not slow or fail a single request; each
export waits for its timeout (\`OTEL_EXPORTER_OTLP_TIMEOUT\`, capped at
\`SHUTDOWN_FLUSH_TIMEOUT_MS\`, 3 s) and fails, logged as \`telemetry.error\` (level \`warn\`). The spans
of those exports are lost: traces of this period will be missing; logs and metrics are not
affected. At shutdown the flush gets its whole budget and no more: \`telemetry.flush\` says
\`status=timeout\` (or \`error\`) with \`spans_dropped\`, and the exit code is unchanged.

While serving, nothing but those log lines says spans are being lost: \`/ready\`, \`/lifecycle\` and
\`/metrics\` do not show the exporter. Watch the collector's own metrics (accepted/refused spans)
to see this from the outside.
`,
  actions: [
    "Confirm: `telemetry.error` lines in the pods' logs (`jq -cR 'fromjson? | select(.event==\"telemetry.error\")'`), traces missing in the tracing backend; requests, `/ready` and error rates normal.",
    'Nothing to do on the pods: do not restart them (it changes nothing and loses the spans in memory). Fix the collector: is it up, reachable on `OTEL_EXPORTER_OTLP_ENDPOINT`, not stuck on its own exporter (queue full, backend down)?',
    'During a rollout expect `telemetry.flush` with `status=timeout` and `error_code` `TELEMETRY_FLUSH_FAILED` on each stopping pod, bounded by `SHUTDOWN_FLUSH_TIMEOUT_MS`: see [TELEMETRY_FLUSH_FAILED](../errors.md#telemetry_flush_failed) and [Flush timeout](../shutdown.md#flush-timeout). The exit code stays 0.',
    'If pods take longer than usual to stop, check that delay + drain + close + flush still fit in `terminationGracePeriodSeconds` ([Budgets](../shutdown.md#budgets)).',
  ],
};
