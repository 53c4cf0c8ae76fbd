// The Prometheus text an OpenTelemetry PrometheusExporter serves, through a real HTTP request to
// its handler (the way the ops listener mounts it), for tests that build their own MeterProvider.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

export async function scrapeExporter(exporter: PrometheusExporter): Promise<string> {
  const server = http.createServer((req, res) => exporter.getMetricsRequestHandler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
