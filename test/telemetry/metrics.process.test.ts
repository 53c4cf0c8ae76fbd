// Whole-process: the ops listener's /metrics after real traffic.
import http from 'node:http';
import { get } from '../drills/drill-kit';
import { parsePrometheusText, type Sample } from '../helpers/prometheus-text';
import { startService } from '../helpers/service-process';

function scrape(port: number): Promise<{ contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.once('end', () => resolve({ contentType: String(res.headers['content-type']), body }));
      })
      .once('error', reject);
  });
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

it('when traffic has been served, then /metrics parses as Prometheus text and has the contract series with bounded labels', async () => {
  const spawnedAt = Date.now();
  const { service, port, opsPort } = await startService({ SHUTDOWN_DELAY_MS: '0' });
  try {
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => get(port, `/drill/work?ms=${i}&bytes=10`, false)),
    );
    await get(port, '/no/such/route/123', false);
    await get(port, '/no/such/route/456', false);
    const { contentType, body } = await scrape(opsPort);
    const samples = parsePrometheusText(body);

    expect(contentType).toMatch(/^text\/plain/);
    // Request count and duration per route, method and status class; seconds, with real buckets.
    expect(
      find(samples, 'http_server_request_duration_count', {
        http_route: '/drill/work',
        http_request_method: 'GET',
        http_response_status_class: '2xx',
      })[0]?.value,
    ).toBe(5);
    expect(
      find(samples, 'http_server_request_duration_bucket', {
        http_route: '/drill/work',
        le: '0.5',
      })[0]?.value,
    ).toBe(5);
    expect(body).toContain('# UNIT http_server_request_duration s');
    // Raw paths never become labels: both unknown paths share one series.
    expect(
      find(samples, 'http_server_request_duration_count', { http_route: '(unmatched)' })[0]?.value,
    ).toBe(2);
    expect(body).not.toContain('/no/such/route');
    // Errors by catalogue code.
    expect(
      find(samples, 'ops_errors_total', {
        error_code: 'ROUTE_NOT_FOUND',
        error_category: 'expected',
      })[0]?.value,
    ).toBe(2);
    // In-flight requests and the lifecycle state.
    expect(find(samples, 'http_server_active_requests')).toHaveLength(1);
    expect(find(samples, 'ops_lifecycle_state', { state: 'ready' })[0]?.value).toBe(1);
    expect(find(samples, 'ops_lifecycle_state', { state: 'draining' })[0]?.value).toBe(0);
    // Dependency and breaker state, outbox backlog (the orders module's database).
    expect(find(samples, 'ops_dependency_up', { dependency: 'database' })[0]?.value).toBe(1);
    expect(
      find(samples, 'ops_circuit_breaker_state', { dependency: 'database', state: 'closed' })[0]
        ?.value,
    ).toBe(1);
    expect(
      find(samples, 'ops_circuit_breaker_state', { dependency: 'database', state: 'open' })[0]
        ?.value,
    ).toBe(0);
    expect(find(samples, 'ops_outbox_backlog')).toHaveLength(1);
    // Node runtime.
    expect(find(samples, 'nodejs_eventloop_delay_p99')).toHaveLength(1);
    expect(find(samples, 'process_memory_heap_used')[0]?.value).toBeGreaterThan(0);
    // The start time (restarts show as its changes): this process's, in seconds.
    const startedAt = find(samples, 'process_start_time_seconds')[0]?.value ?? 0;
    expect(Math.abs(startedAt - spawnedAt / 1000)).toBeLessThan(5);
    // Broker series exist from the start, at 0, so the first dead letter is an increase.
    expect(
      find(samples, 'ops_broker_messages_total', { flow: 'payments', outcome: 'dead_lettered' })[0]
        ?.value,
    ).toBe(0);
    expect(find(samples, 'target_info')[0]?.labels).toMatchObject({
      service_name: 'ops-service',
      deployment_environment_name: 'test',
    });
  } finally {
    service.kill('SIGTERM');
    await service.exited();
  }
});
