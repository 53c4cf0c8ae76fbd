// Garbage collection pauses reach /metrics as nodejs_gc_duration, per kind, from Node's own gc
// performance entries (telemetry/gc-monitor.ts), recorded by the SDK and scraped as Prometheus text.
import { constants } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { gcKindOf, observeGc } from '../../src/telemetry/gc-monitor';
import { scrapeExporter as scrape } from '../helpers/scrape-exporter';

/** Short-lived garbage that escapes (so the compiler cannot drop it), enough for several scavenges. */
function makeGarbage(): number {
  let sink: { i: number; s: string }[] = [];
  let made = 0;
  for (let i = 0; i < 400_000; i++) {
    sink.push({ i, s: `x${i}` });
    if (sink.length > 1_000) {
      made += sink.length;
      sink = [];
    }
  }
  return made + sink.length;
}

/** The count of minor collections in the scraped text. */
function minorCount(text: string): number {
  const line = text.split('\n').find((l) => /^nodejs_gc_duration_count\{.*kind="minor"/.test(l));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

it('when Node reports a collection, then its kind becomes the label, and an unknown kind is other', () => {
  expect(gcKindOf({ kind: constants.NODE_PERFORMANCE_GC_MINOR })).toEqual({ kind: 'minor' });
  expect(gcKindOf({ kind: constants.NODE_PERFORMANCE_GC_MAJOR })).toEqual({ kind: 'major' });
  expect(gcKindOf({ kind: constants.NODE_PERFORMANCE_GC_INCREMENTAL })).toEqual({
    kind: 'incremental',
  });
  expect(gcKindOf({ kind: constants.NODE_PERFORMANCE_GC_WEAKCB })).toEqual({ kind: 'weakcb' });
  expect(gcKindOf({ kind: 12345 })).toEqual({ kind: 'other' });
  expect(gcKindOf(undefined)).toEqual({ kind: 'other' });
});

it('when V8 collects garbage, then /metrics counts the pauses per kind in seconds buckets, until the observer stops', async () => {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [exporter] });
  const stop = observeGc(provider.getMeter('ops-service'));
  try {
    makeGarbage();
    // Performance entries reach their observer asynchronously.
    await delay(50);
    const text = await scrape(exporter);
    expect(text).toContain('# TYPE nodejs_gc_duration histogram');
    expect(minorCount(text)).toBeGreaterThan(0);
    expect(text).toMatch(/^nodejs_gc_duration_bucket\{.*kind="minor".*le="0\.005"\} \d+$/m);
    stop();
    const counted = minorCount(await scrape(exporter));
    makeGarbage();
    await delay(50);
    expect(minorCount(await scrape(exporter))).toBe(counted);
  } finally {
    stop();
    await provider.shutdown();
  }
});
