// Rate limit counts shared by every replica (issue #13): with REDIS_URL set, a client's hits live
// in Redis, so N replicas behind a load balancer allow RATE_LIMIT_MAX in all, not N times it.
//
// One atomic call per request: a Lua script (sent once, then run by its SHA; ioredis resends it
// after a Redis restart) increments the client's counter and returns it with the time left in
// its window. The window is the memory store's: fixed, starting at the client's first hit.
//
// Redis is not a dependency the service needs to serve orders, so losing it never refuses a
// request and never makes the service unready. While Redis cannot be reached (disconnected, or a
// call slower than RATE_LIMIT_STORE_TIMEOUT_MS), each replica counts in its own memory (the limit
// still holds per replica) and leaves Redis alone for RETRY_AFTER_MS before trying again. The
// outage is one warn line when it starts (`rate_limit.store_unavailable`) and one info line when
// counting is shared again (`rate_limit.store_recovered`); `ops_rate_limit_store_up` reads 0 and
// `ops_rate_limit_store_fallbacks_total` counts the requests counted locally meanwhile.
import Redis from 'ioredis';
import type { Logger } from '../../telemetry/logger';
import { outsideRequest } from '../../telemetry/request-scope';
import type { ServiceMetrics } from '../../telemetry/metrics';
import { type RateLimitCount, type RateLimitStore, SyncMemoryStore } from './rate-limit.middleware';

/** After a failed or slow call, requests are counted locally for this long before Redis again. */
export const RETRY_AFTER_MS = 1_000;

// KEYS[1]: the client's counter; ARGV[1]: the window in ms. Returns {hits, ms left in window}.
// A counter without an expiry (PTTL -1: written by hand, or its PEXPIRE lost) gets one here.
const HIT_SCRIPT = `
local hits = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if hits == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {hits, ttl}
`;

interface RedisWithHit extends Redis {
  rateLimitHit(key: string, windowMs: number): Promise<[number, number]>;
}

export interface RedisRateLimitOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly metrics: Pick<ServiceMetrics, 'countRateLimitFallback' | 'observeRateLimitStore'>;
}

export class RedisRateLimitStore implements RateLimitStore {
  readonly prefix: string;
  private readonly client: RedisWithHit;
  private readonly local = new SyncMemoryStore();
  private windowMs = 60_000;
  /** Whether the last call answered; starts true so the first outage is reported. */
  private shared = true;
  private skipUntil = 0;
  private closed = false;

  constructor(private readonly options: RedisRateLimitOptions) {
    this.prefix = options.keyPrefix;
    this.client = new Redis(options.url, {
      // Requests never queue behind a reconnect: a call while disconnected fails at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1_000, options.timeoutMs),
      // Reconnect forever, at most every 2 s: Redis coming back ends the outage by itself.
      retryStrategy: (times) => Math.min(times * 100, 2_000),
      lazyConnect: false,
    }) as RedisWithHit;
    this.client.defineCommand('rateLimitHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
    // Without a listener ioredis prints every connection error to the console.
    this.client.on('error', (error: Error) => this.unavailable(error.message));
    this.client.on('ready', () => {
      this.skipUntil = 0;
    });
    options.metrics.observeRateLimitStore(() => this.shared);
  }

  /**
   * Resolves true once connected, false after `timeoutMs` without a connection (never rejects:
   * startup waits for this briefly, but a missing Redis does not stop the service).
   */
  connected(timeoutMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(value);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  init(windowMs: number): void {
    this.windowMs = windowMs;
    this.local.init(windowMs);
  }

  async increment(key: string): Promise<RateLimitCount> {
    if (this.closed || this.client.status !== 'ready' || Date.now() < this.skipUntil) {
      return this.countLocally(key, `redis ${this.client.status}`);
    }
    try {
      const [hits, ttl] = await this.client.rateLimitHit(this.prefix + key, this.windowMs);
      if (!this.shared) this.recovered();
      return { totalHits: Number(hits), resetTime: new Date(Date.now() + Number(ttl)) };
    } catch (error) {
      this.skipUntil = Date.now() + RETRY_AFTER_MS;
      return this.countLocally(key, error instanceof Error ? error.message : String(error));
    }
  }

  /** The connection, closed with the service's resources (after the drain). */
  async close(): Promise<void> {
    this.closed = true;
    this.local.shutdown();
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private countLocally(key: string, reason: string): RateLimitCount {
    this.options.metrics.countRateLimitFallback();
    this.unavailable(reason);
    return this.local.increment(key);
  }

  private unavailable(reason: string): void {
    if (!this.shared || this.closed) return;
    this.shared = false;
    // A state of the process, not of the request that noticed it: no request ids on the line.
    outsideRequest(() =>
      this.options.logger.warn('rate_limit.store_unavailable', {
        error_code: 'RATE_LIMIT_STORE_UNAVAILABLE',
        error_category: 'expected',
        reason: reason.slice(0, 200),
        counting: 'per replica',
      }),
    );
  }

  private recovered(): void {
    this.shared = true;
    outsideRequest(() =>
      this.options.logger.info('rate_limit.store_recovered', { counting: 'shared' }),
    );
  }
}
