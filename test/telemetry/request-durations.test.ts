// The request duration histogram is aggregated by the service and read as a MetricProducer; what
// Prometheus scrapes must be exactly what the SDK's own Histogram instrument would have made.
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { DURATION_BUCKETS_SECONDS, REQUEST_DURATION } from '../../src/telemetry/metrics';
import { RequestDurationHistogram } from '../../src/telemetry/request-durations';
import { scrapeExporter as scrape } from '../helpers/scrape-exporter';

const resource = resourceFromAttributes({ 'service.name': 'ops-service' });
const scope = { name: 'ops-service', version: '1.2.3' };

type Sample = readonly [method: string, route: string, statusClass: string, seconds: number];

// Values on the bucket bounds (inclusive upper bounds), between them, below the first and above
// the last, over several series.
const SAMPLES: readonly Sample[] = [
  ['GET', '/v1/orders/:id', '2xx', 0.0004],
  ['GET', '/v1/orders/:id', '2xx', 0.001],
  ['GET', '/v1/orders/:id', '2xx', 0.0011],
  ['GET', '/v1/orders/:id', '4xx', 0.05],
  ['POST', '/v1/orders', '2xx', 0.0049],
  ['POST', '/v1/orders', '2xx', 0.25],
  ['POST', '/v1/orders', '5xx', 12],
  ['GET', '(unmatched)', '4xx', 10],
  ['GET', '/v1/orders/:id', '2xx', 0],
];

function sdkExport(samples: readonly Sample[]): PrometheusExporter {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ resource, readers: [exporter] });
  const histogram = provider
    .getMeter(scope.name, scope.version)
    .createHistogram(REQUEST_DURATION.name, {
      description: REQUEST_DURATION.description,
      unit: REQUEST_DURATION.unit,
      advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_SECONDS] },
    });
  for (const [method, route, statusClass, seconds] of samples) {
    histogram.record(seconds, {
      'http.request.method': method,
      'http.route': route,
      'http.response.status_class': statusClass,
    });
  }
  return exporter;
}

function ownExport(
  samples: readonly Sample[],
  maxSeries?: number,
): { exporter: PrometheusExporter; histogram: RequestDurationHistogram } {
  const histogram = new RequestDurationHistogram({
    ...REQUEST_DURATION,
    scope,
    resource,
    ...(maxSeries === undefined ? {} : { maxSeries }),
  });
  const exporter = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [histogram],
  });
  // The service's reader also has the SDK's instruments; none here, so only the histogram is read.
  new MeterProvider({ resource, readers: [exporter] });
  for (const [method, route, statusClass, seconds] of samples) {
    histogram.record(method, route, statusClass, seconds);
  }
  return { exporter, histogram };
}

/** The text without the target_info block, which is the same for both and not under test. */
function durationLines(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.includes('http_server_request_duration'))
    .sort();
}

describe('request duration histogram', () => {
  it('when the same requests are recorded, then Prometheus reads exactly what the SDK histogram gives', async () => {
    const expected = durationLines(await scrape(sdkExport(SAMPLES)));
    const actual = durationLines(await scrape(ownExport(SAMPLES).exporter));

    expect(expected.length).toBeGreaterThan(40);
    expect(actual).toEqual(expected);
  });

  it('when nothing has been recorded, then no duration series is served, as with the SDK', async () => {
    expect(durationLines(await scrape(ownExport([]).exporter))).toEqual(
      durationLines(await scrape(sdkExport([]))),
    );
  });

  it('when a value sits on a bucket bound, then it is counted in that bucket (bounds are inclusive)', async () => {
    const { exporter } = ownExport([['GET', '/r', '2xx', 0.005]]);
    const text = await scrape(exporter);

    expect(text).toMatch(/http_server_request_duration_bucket\{[^}]*le="0\.0025"[^}]*\} 0/);
    expect(text).toMatch(/http_server_request_duration_bucket\{[^}]*le="0\.005"[^}]*\} 1/);
  });

  it('when more series than the limit appear, then the rest are counted in one overflow series', async () => {
    const { exporter } = ownExport(
      [
        ['GET', '/a', '2xx', 0.001],
        ['GET', '/b', '2xx', 0.001],
        ['GET', '/c', '2xx', 0.001],
        ['GET', '/d', '2xx', 0.001],
        ['GET', '/c', '2xx', 0.001],
      ],
      2,
    );
    const text = await scrape(exporter);

    expect(text).toMatch(/http_server_request_duration_count\{[^}]*http_route="\/a"[^}]*\} 1/);
    expect(text).toMatch(/http_server_request_duration_count\{[^}]*http_route="\/b"[^}]*\} 1/);
    expect(text).not.toContain('http_route="/c"');
    expect(text).toMatch(
      /http_server_request_duration_count\{[^}]*otel_metric_overflow="true"[^}]*\} 3/,
    );
  });

  it('when collected twice, then the counts are cumulative and the first reading is not changed by later records', async () => {
    const { histogram } = ownExport([['GET', '/r', '2xx', 0.002]]);
    const first = await histogram.collect();
    histogram.record('GET', '/r', '2xx', 0.002);
    const second = await histogram.collect();

    const countOf = (result: typeof first): unknown => {
      const metric = result.resourceMetrics.scopeMetrics[0]?.metrics[0];
      return metric?.dataPoints.map((point) => point.value);
    };
    expect(countOf(first)).toEqual([expect.objectContaining({ count: 1, sum: 0.002 })]);
    expect(countOf(second)).toEqual([expect.objectContaining({ count: 2, sum: 0.004 })]);
  });
});
