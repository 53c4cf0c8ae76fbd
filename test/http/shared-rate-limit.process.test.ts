// Rate limits that hold across replicas (issue #13), as an operator runs them: two real service
// processes on one PostgreSQL, both with REDIS_URL, behind a balancer that sends X-Forwarded-For
// (the test sets the header; the replicas trust one hop). Then Redis is taken away from one
// replica through a TCP proxy: no client gets a 500, the outage is visible in the log and in
// /metrics, and it ends by itself.
import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';
import { eventually } from '../orders/support/nats';
import { startTcpProxy, type TcpProxy } from '../orders/support/tcp-proxy';
import { parsePrometheusText } from '../helpers/prometheus-text';
import { type Started, startService } from '../helpers/service-process';

jest.setTimeout(30_000);

const REDIS_PORT = 6379;
const LIMIT = 10;
const CLIENT = '203.0.113.50';

let database: TestDatabase;
let proxy: TcpProxy;
const started: Started[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: REDIS_PORT });
});
afterAll(async () => {
  for (const { service } of started) service.kill('SIGKILL');
  await proxy.close();
  await database.drop();
});

async function replica(redisPort: number, keyPrefix: string): Promise<Started> {
  const replica = await startService({
    DATABASE_URL: database.url,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    RATE_LIMIT_REDIS_PREFIX: keyPrefix,
    RATE_LIMIT_MAX: String(LIMIT),
    TRUST_PROXY_HOPS: '1',
  });
  started.push(replica);
  return replica;
}

function call(port: number, client = CLIENT): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/drill/work`, { headers: { 'X-Forwarded-For': client } });
}

async function metric(opsPort: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  return parsePrometheusText(text).find((sample) => sample.name === name)?.value;
}

it('when two replicas share REDIS_URL, then one client gets RATE_LIMIT_MAX in all, whichever replica answers, and SIGTERM closes the store cleanly', async () => {
  const keyPrefix = `ops-test:${randomBytes(4).toString('hex')}:`;
  const a = await replica(REDIS_PORT, keyPrefix);
  const b = await replica(REDIS_PORT, keyPrefix);
  expect((await a.service.waitForEvent('service.ready')).rate_limit).toBe('redis');

  const statuses: number[] = [];
  const remaining: string[] = [];
  for (let n = 0; n < LIMIT + 4; n += 1) {
    const res = await call(n % 2 === 0 ? a.port : b.port);
    statuses.push(res.status);
    remaining.push(res.headers.get('ratelimit') ?? '');
    await res.arrayBuffer();
  }

  // One budget: ten answers in all across both replicas (five each), then 429 from both.
  expect(statuses).toEqual([...Array<number>(LIMIT).fill(200), 429, 429, 429, 429]);
  expect(remaining.slice(0, 3).map((h) => /r=(\d+)/.exec(h)?.[1])).toEqual(['9', '8', '7']);
  // Another client, behind the same balancer address, has its own budget.
  expect((await call(b.port, '203.0.113.51')).status).toBe(200);

  a.service.kill('SIGTERM');
  expect(await a.service.exited()).toBe(0);
  expect(
    a.service.lines.find((l) => l.event === 'resource.closed' && l.resource === 'rate-limit-store'),
  ).toBeDefined();
  expect(a.service.events()).not.toContain('rate_limit.store_unavailable');
  b.service.kill('SIGTERM');
  expect(await b.service.exited()).toBe(0);
});

it('when Redis goes away under load, then no client gets a 500, the replica counts alone and says so once, and it shares counts again when Redis is back', async () => {
  const keyPrefix = `ops-test:${randomBytes(4).toString('hex')}:`;
  const { service, port, opsPort } = await replica(proxy.port, keyPrefix);
  expect(await metric(opsPort, 'ops_rate_limit_store_up')).toBe(1);

  await proxy.cut();
  const during: number[] = [];
  for (let n = 0; n < LIMIT + 2; n += 1) {
    const res = await call(port);
    during.push(res.status);
    await res.arrayBuffer();
  }
  // Counted in the replica's memory: the limit still holds for this replica.
  expect(during).toEqual([...Array<number>(LIMIT).fill(200), 429, 429]);
  const warning = await service.waitForEvent('rate_limit.store_unavailable');
  expect(warning).toMatchObject({
    level: 'warn',
    error_code: 'RATE_LIMIT_STORE_UNAVAILABLE',
    error_category: 'expected',
  });
  expect(warning).not.toHaveProperty('request_id');
  expect(service.events().filter((e) => e === 'rate_limit.store_unavailable')).toHaveLength(1);
  expect(await metric(opsPort, 'ops_rate_limit_store_up')).toBe(0);
  expect(await metric(opsPort, 'ops_rate_limit_store_fallbacks_total')).toBe(LIMIT + 2);
  // Readiness does not depend on Redis.
  expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);

  await proxy.restore();
  // Back in Redis, this client's count starts from what Redis holds (nothing yet).
  await eventually(
    'shared counting again',
    async () => {
      const res = await call(port, '203.0.113.60');
      await res.arrayBuffer();
      return service.events().includes('rate_limit.store_recovered') ? true : undefined;
    },
    10_000,
  );
  expect(await metric(opsPort, 'ops_rate_limit_store_up')).toBe(1);
  service.kill('SIGTERM');
  expect(await service.exited()).toBe(0);
});
