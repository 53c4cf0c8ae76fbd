// The shared rate limit store on the real Redis (TEST_REDIS_URL, default 127.0.0.1:6379): two
// stores stand for two replicas. Outages go through a TCP proxy the test breaks (cut: Redis is
// gone; stall: a black hole only a timeout notices).
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import Redis from 'ioredis';
import { RedisRateLimitStore, RETRY_AFTER_MS } from '../../../src/http/edge/redis-rate-limit.store';
import { captureLogger, type CapturedLogger } from '../../helpers/log-capture';
import { startTcpProxy, type TcpProxy } from '../../orders/support/tcp-proxy';
import { eventually } from '../../orders/support/nats';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WINDOW_MS = 60_000;

interface Recorded {
  fallbacks: number;
  up: () => boolean;
}

interface Replica {
  readonly store: RedisRateLimitStore;
  readonly log: CapturedLogger;
  readonly metrics: Recorded;
}

let admin: Redis;
const opened: RedisRateLimitStore[] = [];
const proxies: TcpProxy[] = [];

beforeAll(() => {
  admin = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await Promise.all(opened.map((store) => store.close()));
  await Promise.all(proxies.map((proxy) => proxy.close()));
  await admin.quit();
});

function prefix(): string {
  return `ops-test:${randomBytes(4).toString('hex')}:`;
}

async function replica(
  keyPrefix: string,
  options: { url?: string; windowMs?: number; timeoutMs?: number } = {},
): Promise<Replica> {
  const log = captureLogger();
  const metrics: Recorded = { fallbacks: 0, up: () => true };
  const store = new RedisRateLimitStore({
    url: options.url ?? TEST_REDIS_URL,
    keyPrefix,
    timeoutMs: options.timeoutMs ?? 100,
    logger: log.logger,
    metrics: {
      countRateLimitFallback: () => {
        metrics.fallbacks += 1;
      },
      observeRateLimitStore: (up) => {
        metrics.up = up;
      },
    },
  });
  store.init(options.windowMs ?? WINDOW_MS);
  opened.push(store);
  expect(await store.connected(5_000)).toBe(true);
  return { store, log, metrics };
}

function events(log: CapturedLogger): unknown[] {
  return log.records().map((record) => record.event);
}

it('when two replicas count the same client, then they share one budget and one window', async () => {
  const keyPrefix = prefix();
  const a = await replica(keyPrefix);
  const b = await replica(keyPrefix);

  const hits: number[] = [];
  for (let n = 0; n < 6; n += 1) {
    const store = n % 2 === 0 ? a.store : b.store;
    hits.push((await store.increment('198.51.100.7')).totalHits);
  }

  expect(hits).toEqual([1, 2, 3, 4, 5, 6]);
  expect(await admin.get(`${keyPrefix}198.51.100.7`)).toBe('6');
  const ttl = await admin.pttl(`${keyPrefix}198.51.100.7`);
  expect(ttl).toBeGreaterThan(WINDOW_MS - 5_000);
  expect(ttl).toBeLessThanOrEqual(WINDOW_MS);
  // Another client has a budget of its own; the counts never fell back to memory.
  expect((await b.store.increment('198.51.100.8')).totalHits).toBe(1);
  expect(a.metrics.fallbacks + b.metrics.fallbacks).toBe(0);
  expect([a.metrics.up(), b.metrics.up()]).toEqual([true, true]);
});

it('when the window has passed, then the client starts over, and a counter left without an expiry gets one', async () => {
  const keyPrefix = prefix();
  const { store } = await replica(keyPrefix, { windowMs: 300 });
  expect((await store.increment('c')).totalHits).toBe(1);
  expect((await store.increment('c')).totalHits).toBe(2);
  await delay(400);
  const fresh = await store.increment('c');
  expect(fresh.totalHits).toBe(1);
  expect(fresh.resetTime?.getTime()).toBeGreaterThan(Date.now());

  await admin.set(`${keyPrefix}stuck`, '41');
  expect((await store.increment('stuck')).totalHits).toBe(42);
  expect(await admin.pttl(`${keyPrefix}stuck`)).toBeGreaterThan(0);
});

it('when Redis goes away, then requests are counted in memory at once, one warn line and a metric say so, and counting is shared again once it is back', async () => {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
  proxies.push(proxy);
  const keyPrefix = prefix();
  const { store, log, metrics } = await replica(keyPrefix, {
    url: `redis://127.0.0.1:${proxy.port}`,
  });

  await proxy.cut();
  const local: number[] = [];
  for (let n = 0; n < 5; n += 1) local.push((await store.increment('d')).totalHits);

  expect(local).toEqual([1, 2, 3, 4, 5]);
  expect(metrics.fallbacks).toBe(5);
  expect(metrics.up()).toBe(false);
  const warnings = log.records().filter((r) => r.event === 'rate_limit.store_unavailable');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({
    level: 'warn',
    error_code: 'RATE_LIMIT_STORE_UNAVAILABLE',
    error_category: 'expected',
    counting: 'per replica',
  });
  expect(warnings[0]).not.toHaveProperty('request_id');

  await proxy.restore();
  await eventually(
    'shared counting again',
    async () => ((await store.increment('d')).totalHits === 1 ? true : undefined),
    RETRY_AFTER_MS + 5_000,
  );
  expect(metrics.up()).toBe(true);
  expect(events(log).filter((e) => e === 'rate_limit.store_recovered')).toHaveLength(1);
  expect(await admin.get(`${keyPrefix}d`)).toBe('1');
});

it('when Redis stops answering (a black hole), then a request waits at most the store timeout once, and the next ones do not wait for Redis', async () => {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
  proxies.push(proxy);
  const { store, metrics } = await replica(prefix(), {
    url: `redis://127.0.0.1:${proxy.port}`,
    timeoutMs: 150,
  });

  proxy.stall();
  const first = Date.now();
  expect((await store.increment('e')).totalHits).toBe(1);
  const firstMs = Date.now() - first;
  const next = Date.now();
  for (let n = 2; n <= 20; n += 1) expect((await store.increment('e')).totalHits).toBe(n);
  const nextMs = Date.now() - next;

  // The first call is cut by the timeout (never held until a TCP timeout); the 19 after it are
  // counted locally without a round trip (19 waits would take 19 x 150 ms).
  expect(firstMs).toBeGreaterThanOrEqual(140);
  expect(firstMs).toBeLessThan(2_000);
  expect(nextMs).toBeLessThan(19 * 150);
  expect(metrics.fallbacks).toBe(20);
  expect(metrics.up()).toBe(false);
  await proxy.restore();
});
