// What the bench processes say to each other: the orchestrators (run.ts, rate-limit.ts), the
// servers under test (bare-express.ts, bench-service.ts, minimal-orders.ts, rate-limit-server.ts)
// and the load generator (load.ts). Messages travel over the IPC channel of child_process.fork;
// every message is checked on arrival.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

/** The no-I/O JSON route measured on every server. */
export const NOOP_PATH = '/bench/noop';
/** Bench-only: the server's own CPU time and RSS, read by the load generator around the load. */
export const CPU_PATH = '/bench/cpu';
/** The body of NOOP_PATH, the same on every server. */
export const NOOP_BODY: Readonly<Record<string, string | number>> = Object.freeze({
  status: 'ok',
  bench: 'noop',
  n: 1,
});

/** The orders route measured in scenarios (e)-(h) (contract section 6). */
export const ORDERS_PATH = '/v1/orders';
/** Scenarios (i) and (j): GET of one order, this prefix and the order's id. */
export const ORDER_PATH_PREFIX = '/v1/orders/';
/** A valid POST /v1/orders body of 3 items, the same for every request (only the key changes). */
export const ORDER_BODY = Object.freeze({
  customer_id: 'bench-customer-0001',
  currency: 'EUR',
  items: [
    { sku: 'BENCH-SKU-1', quantity: 2, unit_price_cents: 1999 },
    { sku: 'BENCH-SKU-2', quantity: 1, unit_price_cents: 500 },
    { sku: 'BENCH-SKU-3', quantity: 5, unit_price_cents: 250 },
  ],
});

/** The server's CPU time since it started (process.cpuUsage) and its RSS, as CPU_PATH answers. */
export interface CpuReport {
  readonly userMicros: number;
  readonly systemMicros: number;
  readonly rssBytes: number;
}

export function cpuReport(): CpuReport {
  const cpu = process.cpuUsage();
  return { userMicros: cpu.user, systemMicros: cpu.system, rssBytes: process.memoryUsage().rss };
}

/** Server -> orchestrator, once the main listener accepts connections. */
export interface ListeningMessage {
  readonly type: 'listening';
  readonly port: number;
}

/**
 * A POST instead of a GET: `body` (JSON) with a unique `Idempotency-Key` per request,
 * `<keyPrefix>-w<n>` in the warm-up and `<keyPrefix>-m<n>` in the measured phase.
 */
export interface PostSpec {
  readonly body: string;
  readonly keyPrefix: string;
  /**
   * More request headers, the same on every POST (lower-case names), e.g. `authorization` in
   * scenario (h). Absent: only content-type, content-length and idempotency-key.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Orchestrator -> load generator (argv[2], JSON). */
export interface LoadJob {
  readonly port: number;
  readonly path: string;
  readonly warmup: number;
  readonly count: number;
  readonly concurrency: number;
  /** Pause after the warm-up and after the load, before reading the server's CPU (span export). */
  readonly settleMs: number;
  /** The load generator exits 3 after this long whatever happens. */
  readonly timeoutMs: number;
  /** Absent: GET `path`. */
  readonly post?: PostSpec;
  /**
   * GETs of `path` + one of these in turn (request n gets `ids[n % ids.length]`), e.g. order ids
   * after `/v1/orders/` in scenarios (i) and (j). Absent: GET `path` itself. Not with `post`.
   */
  readonly ids?: readonly string[];
}

/** Load generator -> orchestrator: the measured phase only (the warm-up is not in it). */
export interface LoadResult {
  readonly type: 'result';
  readonly count: number;
  /** Responses by status code, e.g. { "200": 20000 }. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Requests that got no response (socket errors). */
  readonly errors: number;
  readonly elapsedMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly before: CpuReport;
  readonly after: CpuReport;
}

/**
 * Bench-only, rate-limit-server.ts with the Redis store: what the store did (answered by the
 * server outside the rate limiter, so reading it is not counted).
 */
export const RATE_LIMIT_STORE_PATH = '/bench/rate-limit-store';

/** RATE_LIMIT_STORE_PATH's answer: requests counted locally instead of in Redis, warn lines. */
export interface RateLimitStoreReport {
  readonly fallbacks: number;
  readonly warnings: readonly string[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export function isCpuReport(value: unknown): value is CpuReport {
  return (
    isRecord(value) &&
    isNumber(value.userMicros) &&
    isNumber(value.systemMicros) &&
    isNumber(value.rssBytes)
  );
}

export function isListeningMessage(value: unknown): value is ListeningMessage {
  return isRecord(value) && value.type === 'listening' && isNumber(value.port);
}

export function isLoadResult(value: unknown): value is LoadResult {
  return (
    isRecord(value) &&
    value.type === 'result' &&
    isNumber(value.count) &&
    isRecord(value.statuses) &&
    Object.values(value.statuses).every(isNumber) &&
    isNumber(value.errors) &&
    isNumber(value.elapsedMs) &&
    isNumber(value.p50Ms) &&
    isNumber(value.p99Ms) &&
    isCpuReport(value.before) &&
    isCpuReport(value.after)
  );
}

export function isRateLimitStoreReport(value: unknown): value is RateLimitStoreReport {
  return (
    isRecord(value) &&
    isNumber(value.fallbacks) &&
    Array.isArray(value.warnings) &&
    value.warnings.every((line) => typeof line === 'string')
  );
}

function isHeaders(value: unknown): value is Readonly<Record<string, string>> {
  return isRecord(value) && Object.values(value).every((header) => typeof header === 'string');
}

function isPostSpec(value: unknown): value is PostSpec {
  return (
    isRecord(value) &&
    typeof value.body === 'string' &&
    typeof value.keyPrefix === 'string' &&
    (value.headers === undefined || isHeaders(value.headers))
  );
}

export function isLoadJob(value: unknown): value is LoadJob {
  return (
    isRecord(value) &&
    isNumber(value.port) &&
    typeof value.path === 'string' &&
    isNumber(value.warmup) &&
    isNumber(value.count) &&
    isNumber(value.concurrency) &&
    isNumber(value.settleMs) &&
    isNumber(value.timeoutMs) &&
    (value.post === undefined || isPostSpec(value.post)) &&
    (value.ids === undefined ||
      (Array.isArray(value.ids) &&
        value.ids.length > 0 &&
        value.ids.every((id) => typeof id === 'string')))
  );
}

/**
 * Ends this child when its parent goes away (the IPC channel closes), so that no bench process
 * outlives the orchestrator whatever happens to it.
 */
export function exitWithParent(onParentGone: () => void): void {
  if (process.send === undefined) {
    throw new Error('bench: this entry point is started by bench/run.ts (child_process.fork)');
  }
  process.on('disconnect', onParentGone);
}

/**
 * Serves a plain bench app (no runtime): adds the CPU route, stops on SIGTERM/SIGINT or when the
 * orchestrator goes away (after `beforeExit`, bounded to 1 s), and announces its port once
 * `ready` resolves.
 */
export function serveBenchApp(
  app: Express,
  options: { ready?: Promise<unknown>; beforeExit?: () => Promise<unknown> } = {},
): void {
  app.get(CPU_PATH, (_req, res) => {
    res.json(cpuReport());
  });
  const server = createServer(app);
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1_000).unref();
    void (options.beforeExit?.() ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  exitWithParent(stop);
  (options.ready ?? Promise.resolve()).then(
    () => {
      server.listen(0, '127.0.0.1', () => {
        const message: ListeningMessage = {
          type: 'listening',
          port: (server.address() as AddressInfo).port,
        };
        process.send?.(message);
      });
    },
    (error: unknown) => {
      process.stderr.write(`bench server: not ready: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
