// The server of `bench/rate-limit.ts`: bare-express-preshaped.ts (Express 5 with keepShapes,
// GET /bench/noop answering NOOP_BODY) with one rate limit layer in front of the routes, chosen by
// BENCH_RATE_LIMIT_VARIANT:
//   0  none (the baseline)
//   1  express-rate-limit, standardHeaders 'draft-8', its MemoryStore
//   2  express-rate-limit, standardHeaders 'draft-7', its MemoryStore
//   3  the service's rateLimitMiddleware (its structured headers, SyncMemoryStore)
//   4  the service's rateLimitMiddleware with RedisRateLimitStore (BENCH_REDIS_URL,
//      keys under BENCH_REDIS_KEY_PREFIX)
// The limit is BENCH_RATE_LIMIT_MAX per BENCH_RATE_LIMIT_WINDOW_MS, the same for every variant.
// Everything else about the service's limiter is its defaults (APP_ENV=test): trust proxy hops,
// the store timeout. Started by bench/rate-limit.ts; reports its port over IPC.
import express, { type RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { loadConfig } from '../src/config/load-config';
import type { AppConfig } from '../src/config/schema';
import { RedisRateLimitStore } from '../src/http/edge/redis-rate-limit.store';
import { rateLimitMiddleware } from '../src/http/edge/rate-limit.middleware';
import type { Reply } from '../src/http/problem-reply';
import { keepShapes } from '../src/http/stable-shapes';
import type { Logger } from '../src/telemetry/logger';
import {
  NOOP_BODY,
  NOOP_PATH,
  RATE_LIMIT_STORE_PATH,
  type RateLimitStoreReport,
  serveBenchApp,
} from './protocol';

/** How long startup waits for the Redis connection (the orchestrator's own deadline is 20 s). */
const REDIS_CONNECT_MS = 10_000;

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`rate-limit-server: ${name} is not set`);
  return value;
}

function positiveInt(name: string): number {
  const value = Number(required(name));
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

const variant = required('BENCH_RATE_LIMIT_VARIANT');
const max = positiveInt('BENCH_RATE_LIMIT_MAX');
const windowMs = positiveInt('BENCH_RATE_LIMIT_WINDOW_MS');

/** The service's defaults with the bench's limit: only these two differ from production. */
function serviceLimits(): { limits: AppConfig['limits']; trustProxyHops: number } {
  const loaded = loadConfig({ env: { APP_ENV: 'test' } });
  if (!loaded.ok) throw new Error(`service config: ${JSON.stringify(loaded.problems)}`);
  return {
    limits: { ...loaded.config.limits, rateLimitMax: max, rateLimitWindowMs: windowMs },
    trustProxyHops: loaded.config.http.trustProxyHops,
  };
}

/** Never called within a run (the limit is not reached): a 429 would fail the status check. */
const reply: Reply = (res, code, detail, options = {}) => {
  if (options.retryAfterSeconds !== undefined) {
    res.setHeader('Retry-After', String(options.retryAfterSeconds));
  }
  res.status(429).json({ code, detail });
};

/** What the Redis store reports, kept for RATE_LIMIT_STORE_PATH (an outage would skew (4)). */
const report: { fallbacks: number; warnings: string[] } = { fallbacks: 0, warnings: [] };

function benchLogger(): Logger {
  const logger: Logger = {
    error: (event, fields) => report.warnings.push(`error ${event} ${JSON.stringify(fields)}`),
    warn: (event, fields) => report.warnings.push(`warn ${event} ${JSON.stringify(fields)}`),
    info: () => undefined,
    debug: () => undefined,
    child: () => logger,
    isLevelEnabled: (level) => level === 'warn' || level === 'error',
    flush: () => Promise.resolve(),
  };
  return logger;
}

interface Layer {
  readonly limiter: RequestHandler | undefined;
  readonly ready?: Promise<unknown>;
  readonly close?: () => Promise<unknown>;
}

function layerOf(id: string): Layer {
  switch (id) {
    case '0':
      return { limiter: undefined };
    case '1':
    case '2':
      // The library's defaults but for the limit and the header mode; legacyHeaders off, so
      // the headers written are the same pair as the service's (RateLimit, RateLimit-Policy).
      return {
        limiter: rateLimit({
          windowMs,
          limit: max,
          standardHeaders: id === '1' ? 'draft-8' : 'draft-7',
          legacyHeaders: false,
        }),
      };
    case '3': {
      const { limits, trustProxyHops } = serviceLimits();
      return { limiter: rateLimitMiddleware(limits, trustProxyHops, reply) };
    }
    case '4': {
      const { limits, trustProxyHops } = serviceLimits();
      const store = new RedisRateLimitStore({
        url: required('BENCH_REDIS_URL'),
        keyPrefix: required('BENCH_REDIS_KEY_PREFIX'),
        timeoutMs: limits.storeTimeoutMs,
        logger: benchLogger(),
        metrics: {
          countRateLimitFallback: () => {
            report.fallbacks += 1;
          },
          observeRateLimitStore: () => undefined,
        },
      });
      const ready = store.connected(REDIS_CONNECT_MS).then((connected) => {
        if (!connected) throw new Error(`no Redis connection within ${REDIS_CONNECT_MS} ms`);
      });
      return {
        limiter: rateLimitMiddleware(limits, trustProxyHops, reply, store),
        ready,
        close: () => store.close(),
      };
    }
    default:
      throw new Error(`BENCH_RATE_LIMIT_VARIANT must be 0-4, not "${id}"`);
  }
}

const layer = layerOf(variant);
const app = express();
keepShapes(app);
// Before the limiter: reading it is not counted as a hit.
app.get(RATE_LIMIT_STORE_PATH, (_req, res) => {
  const body: RateLimitStoreReport = report;
  res.json(body);
});
if (layer.limiter !== undefined) app.use(layer.limiter);
app.get(NOOP_PATH, (_req, res) => {
  res.json(NOOP_BODY);
});
// serveBenchApp adds CPU_PATH after this, so the two CPU reads go through the limiter too.
serveBenchApp(app, { ready: layer.ready, beforeExit: layer.close });
