// Garbage collection pauses per kind, as a histogram (nodejs.gc.duration, seconds), from Node's
// own `gc` performance entries. Latency with steps of a few milliseconds, or RSS that climbs under
// a steady load, is read here first: with V8's allocation-site pretenuring on, every scavenge of
// the orders path paused 3-5 ms instead of under 1 (runtime/heap-tuning.ts). One record per
// collection, none per request.
import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { Attributes, Meter } from '@opentelemetry/api';

export const GC_DURATION = 'nodejs.gc.duration';

/** Seconds: scavenges take tenths of a millisecond to a few, full collections up to hundreds. */
export const GC_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** Node's `detail.kind` of a gc entry, as the `kind` label (one frozen attribute set each). */
const KINDS: ReadonlyMap<number, Attributes> = new Map<number, Attributes>([
  [constants.NODE_PERFORMANCE_GC_MINOR, Object.freeze({ kind: 'minor' })],
  [constants.NODE_PERFORMANCE_GC_MAJOR, Object.freeze({ kind: 'major' })],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, Object.freeze({ kind: 'incremental' })],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, Object.freeze({ kind: 'weakcb' })],
]);
const OTHER: Attributes = Object.freeze({ kind: 'other' });

export function gcKindOf(detail: unknown): Attributes {
  const kind = (detail as { kind?: unknown } | null | undefined)?.kind;
  return (typeof kind === 'number' ? KINDS.get(kind) : undefined) ?? OTHER;
}

/** Records every collection from now on; the returned function stops (the telemetry flush). */
export function observeGc(meter: Meter): () => void {
  const histogram = meter.createHistogram(GC_DURATION, {
    description: 'Garbage collection pauses, per kind (minor, major, incremental, weakcb).',
    unit: 's',
    advice: { explicitBucketBoundaries: GC_BUCKETS_SECONDS },
  });
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Node's gc entries carry `detail.kind` (not in the PerformanceEntry type).
      histogram.record(entry.duration / 1000, gcKindOf((entry as { detail?: unknown }).detail));
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
