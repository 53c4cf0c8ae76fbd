// A real Prometheus (Debian's `prometheus`) scraping a real service (issue #14 item 3): the
// repository's scrape config, with the target moved to the running service's ops listener and
// the intervals shortened to 1 s, and the repository's rule files. Through Prometheus' HTTP API
// the series exist with the labels the README documents and every rule loads and evaluates;
// then the database is cut off (the service reaches PostgreSQL through a TCP proxy) and
// OpsServiceDatabaseDown goes pending (its `for: 1m` is kept, so it cannot fire in this test).
import { randomUUID } from 'node:crypto';
import { MAIN, type ServiceProcess, startService } from '../helpers/service-process';
import { tempDir, type TempDir } from '../helpers/temp-dir';
import { getPath, orderBody, postOrder } from '../orders/support/orders-client';
import { startTcpProxy, type TcpProxy } from '../orders/support/tcp-proxy';
import { createTestDatabase, type TestDatabase, urlOf } from '../orders/support/test-database';
import {
  type Alert,
  api,
  eventually,
  has,
  JOB,
  type Prometheus,
  query,
  type RuleInfo,
  series,
  startPrometheus,
  testConfig,
} from '../../scripts/incidents/kit/prometheus';

jest.setTimeout(60_000);

// ---------------------------------------------------------------------------------------------

let database: TestDatabase;
let proxy: TcpProxy;
let dir: TempDir;
let service: ServiceProcess | undefined;
let prometheus: Prometheus | undefined;

beforeAll(async () => {
  database = await createTestDatabase();
  const target = new URL(database.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  dir = tempDir('ops-service-prometheus-');
});

afterAll(async () => {
  await prometheus?.stop();
  if (service !== undefined) {
    service.kill('SIGTERM');
    await service.exited().catch(() => undefined);
  }
  await proxy?.close();
  await database?.drop();
  dir?.remove();
});

it('when Prometheus scrapes the service with the repository config and rules, then the documented series are there and a lost database makes OpsServiceDatabaseDown pending', async () => {
  const startedAt = Date.now();
  const started = await startService(
    {
      RATE_LIMIT_MAX: '0',
      SHUTDOWN_DELAY_MS: '0',
      DATABASE_URL: urlOf(database.name, `postgres://postgres@127.0.0.1:${proxy.port}/`),
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
    },
    { script: MAIN },
  );
  service = started.service;
  const { port, opsPort } = started;
  // Traffic first, so the per-route series and an error code exist at the first scrape.
  expect((await postOrder(port, `scrape-${randomUUID()}`, orderBody())).status).toBe(201);
  expect((await getPath(port, `/v1/orders/${randomUUID()}`)).status).toBe(404);
  expect((await getPath(port, '/no/such/route')).status).toBe(404);

  prometheus = await startPrometheus(dir, testConfig(`127.0.0.1:${opsPort}`));
  const prom = prometheus.port;

  // The target is scraped.
  await eventually('the ops-service target to be up', async () => {
    const up = await query(prom, `up{job="${JOB}"}`);
    return up[0]?.value[1] === '1' ? up : undefined;
  });

  // The documented series with their labels (README, Metrics): route template, method and
  // status class on the histogram; code and category on errors; state; dependency.
  const durations = await series(prom, `http_server_request_duration_count{job="${JOB}"}`);
  expect(durations).toEqual(
    expect.arrayContaining([
      expect.objectContaining({
        http_route: '/v1/orders',
        http_request_method: 'POST',
        http_response_status_class: '2xx',
        instance: `127.0.0.1:${opsPort}`,
      }),
      expect.objectContaining({
        http_route: '/v1/orders/:id',
        http_request_method: 'GET',
        http_response_status_class: '4xx',
      }),
      expect.objectContaining({ http_route: '(unmatched)', http_response_status_class: '4xx' }),
    ]),
  );
  // No raw path ever becomes a label.
  expect(JSON.stringify(durations)).not.toContain('/no/such/route');
  const buckets = await series(
    prom,
    `http_server_request_duration_bucket{job="${JOB}",http_route="/v1/orders"}`,
  );
  expect(buckets.map((s) => s.le)).toEqual(expect.arrayContaining(['0.5', '+Inf']));
  expect(await series(prom, `ops_errors_total{job="${JOB}"}`)).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ error_code: 'ORDER_NOT_FOUND', error_category: 'expected' }),
      expect.objectContaining({ error_code: 'ROUTE_NOT_FOUND', error_category: 'expected' }),
    ]),
  );
  const lifecycle = await query(prom, `ops_lifecycle_state{job="${JOB}"}`);
  expect(lifecycle.map((s) => s.metric.state).sort()).toEqual(
    ['draining', 'flushing', 'ready', 'starting', 'stopped'].sort(),
  );
  expect(lifecycle.find((s) => s.metric.state === 'ready')?.value[1]).toBe('1');
  const databaseUp = await query(prom, `ops_dependency_up{job="${JOB}",dependency="database"}`);
  expect(databaseUp.map((s) => s.value[1])).toEqual(['1']);
  const breaker = await query(
    prom,
    `ops_circuit_breaker_state{job="${JOB}",dependency="database"}`,
  );
  expect(breaker.map((s) => [s.metric.state, s.value[1]]).sort()).toEqual([
    ['closed', '1'],
    ['half_open', '0'],
    ['open', '0'],
  ]);
  for (const name of [
    'http_server_active_requests',
    'ops_outbox_backlog',
    'nodejs_eventloop_delay_p99',
    'process_memory_heap_used',
    'process_memory_rss',
  ]) {
    expect(await query(prom, `${name}{job="${JOB}"}`)).toHaveLength(1);
  }
  expect(await query(prom, `nodejs_gc_duration_count{job="${JOB}",kind="minor"}`)).toHaveLength(1);

  // Every rule loaded and evaluates without error; the per-route recording rules have data.
  const rules = await eventually('every rule to be evaluated', async () => {
    const groups = await api<{ groups: { rules: RuleInfo[] }[] }>(prom, 'rules');
    const all = groups.groups.flatMap((g) => g.rules);
    return all.length > 0 && all.every((r) => r.health === 'ok') ? all : undefined;
  });
  expect(rules.filter((r) => r.type === 'alerting').map((r) => r.name)).toContain(
    'OpsServiceDatabaseDown',
  );
  expect(rules.filter((r) => r.lastError !== undefined && r.lastError !== '')).toEqual([]);
  await eventually('the per-route request rate to be recorded', async () => {
    const recorded = await query(
      prom,
      `job_route:http_server_requests:rate5m{job="${JOB}",http_route="/v1/orders",http_request_method="POST"}`,
    );
    return recorded.length === 1 ? recorded : undefined;
  });
  const alertsBefore = await api<{ alerts: Alert[] }>(prom, 'alerts');
  expect(
    alertsBefore.alerts.filter((a) => a.labels.alertname === 'OpsServiceDatabaseDown'),
  ).toEqual([]);

  // The database goes away: the gauge reads 0 within seconds, the alert is pending (for: 1m).
  await proxy.cut();
  const cutAt = Date.now();
  const pending = await eventually('OpsServiceDatabaseDown to be pending', async () => {
    const { alerts } = await api<{ alerts: Alert[] }>(prom, 'alerts');
    return alerts.find((a) => a.labels.alertname === 'OpsServiceDatabaseDown');
  });
  const pendingAfterMs = Date.now() - cutAt;
  expect(pending.state).toBe('pending');
  expect(
    has(pending.labels, {
      job: JOB,
      instance: `127.0.0.1:${opsPort}`,
      dependency: 'database',
      severity: 'critical',
    }),
  ).toBe(true);
  expect(pending.labels).not.toHaveProperty('otel_scope_name');
  expect(
    (await query(prom, `ops_dependency_up{job="${JOB}",dependency="database"}`))[0]?.value[1],
  ).toBe('0');
  process.stdout.write(
    `prometheus scrape: OpsServiceDatabaseDown pending ${pendingAfterMs} ms after the database was cut; ` +
      `whole test ${Date.now() - startedAt} ms\n`,
  );
  expect(prometheus.output()).not.toMatch(/level=error/);
});
