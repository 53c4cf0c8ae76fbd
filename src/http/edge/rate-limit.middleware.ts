// Per-client rate limit: 429 RATE_LIMITED with Retry-After and the IETF `RateLimit` /
// `RateLimit-Policy` headers on every response, in the current draft's structured form
// (draft-ietf-httpapi-ratelimit-headers -10 and later, contract section 4):
//   RateLimit-Policy: "default";q=1200;w=60     RateLimit: "default";r=1199;t=60
// The policy header is one constant string; the library's draft-8 mode would hash the client key
// into a partition key on every request (measured ~15 us of CPU per request).
//
// Counts live in a RateLimitStore (this process's memory, or Redis: redis-rate-limit.store.ts);
// express-rate-limit gives the IPv6 key only, its middleware is not on the request path (see
// rateLimitMiddleware). Per request: a synchronous key (the TCP peer's address, computed once per
// connection when no proxy is trusted, or the caller's tenant) and one increment.
import type { Socket } from 'node:net';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type * as ExpressRateLimit from 'express-rate-limit';
import type { AppConfig } from '../../config/schema';
import { authenticatedCaller } from '../caller';
import type { Reply } from '../problem-reply';

/** The library's default for IPv6 clients: one key per /56 (one customer's whole network). */
const IPV6_SUBNET = 56;

interface Client {
  totalHits: number;
  resetTime: Date;
}

/** A client's count in the current window (a store's answer to one hit). */
export interface RateLimitCount {
  readonly totalHits: number;
  /** When the window ends; undefined when the store cannot say. */
  readonly resetTime: Date | undefined;
}

/**
 * Where the counts live: this process's memory (SyncMemoryStore) or Redis
 * (redis-rate-limit.store.ts). A store whose increment answers synchronously costs the request no
 * promise.
 */
export interface RateLimitStore {
  /** The window's length, set once before the first increment. */
  init(windowMs: number): void;
  increment(key: string): RateLimitCount | Promise<RateLimitCount>;
}

/**
 * express-rate-limit's MemoryStore algorithm (a window per client, starting at its first hit;
 * clients idle for a whole window are dropped in bulk), with a synchronous increment.
 */
export class SyncMemoryStore implements RateLimitStore {
  private windowMs = 60_000;
  private previous = new Map<string, Client>();
  private current = new Map<string, Client>();
  private interval: NodeJS.Timeout | undefined;

  init(windowMs: number): void {
    this.windowMs = windowMs;
    if (this.interval !== undefined) clearInterval(this.interval);
    this.interval = setInterval(() => {
      this.previous = this.current;
      this.current = new Map();
    }, this.windowMs);
    this.interval.unref();
  }

  increment(key: string): RateLimitCount {
    const client = this.clientOf(key);
    const now = Date.now();
    if (client.resetTime.getTime() <= now) {
      client.totalHits = 0;
      client.resetTime = new Date(now + this.windowMs);
    }
    client.totalHits += 1;
    return client;
  }

  shutdown(): void {
    if (this.interval !== undefined) clearInterval(this.interval);
    this.current.clear();
    this.previous.clear();
  }

  private clientOf(key: string): Client {
    let client = this.current.get(key);
    if (client !== undefined) return client;
    client = this.previous.get(key);
    if (client !== undefined) this.previous.delete(key);
    else client = { totalHits: 0, resetTime: new Date(Date.now() + this.windowMs) };
    this.current.set(key, client);
    return client;
  }
}

// One key per connection when the key is the TCP peer: keep-alive requests reuse it.
const socketKeys = new WeakMap<Socket, string>();

/**
 * The caller's key: its tenant once a token said who it is (issue #15: the limit is per tenant,
 * not per address), otherwise its address, IPv6 addresses by /56 (as the library's default key).
 */
export function clientKeyGenerator(
  trustProxyHops: number,
): (req: Request, res: Response) => string {
  const byAddress = addressKeyGenerator(trustProxyHops);
  return (req, res) => {
    const caller = authenticatedCaller(res);
    return caller === undefined ? byAddress(req) : `tenant:${caller.tenant}`;
  };
}

// express-rate-limit (10-12 ms of CPU to load here) serves requests only: it is required at the
// first client key, not at startup (issue 16, start to /ready).
let ipKeyOf: typeof ExpressRateLimit.ipKeyGenerator | undefined;
function ipKeyGenerator(ip: string, ipv6Subnet: number): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use only
  ipKeyOf ??= (require('express-rate-limit') as typeof ExpressRateLimit).ipKeyGenerator;
  return ipKeyOf(ip, ipv6Subnet);
}

function addressKeyGenerator(trustProxyHops: number): (req: Request) => string {
  if (trustProxyHops > 0) return (req) => ipKeyGenerator(req.ip ?? '', IPV6_SUBNET);
  return (req) => {
    const socket = req.socket;
    let key = socketKeys.get(socket);
    if (key === undefined) {
      const address = socket.remoteAddress;
      // A socket already gone has no address: count it under '' without remembering it.
      if (address === undefined) return '';
      key = ipKeyGenerator(address, IPV6_SUBNET);
      socketKeys.set(socket, key);
    }
    return key;
  };
}

export function rateLimitMiddleware(
  limits: AppConfig['limits'],
  trustProxyHops: number,
  reply: Reply,
  /** Where the counts live: this process's memory unless given (Redis: redis-rate-limit.store.ts). */
  store: RateLimitStore = new SyncMemoryStore(),
): RequestHandler {
  if (limits.rateLimitMax === 0) return (_req, _res, next) => next();
  const limit = limits.rateLimitMax;
  const windowSeconds = Math.max(1, Math.ceil(limits.rateLimitWindowMs / 1000));
  const policy = `"default";q=${limit};w=${windowSeconds}`;
  const keyOf = clientKeyGenerator(trustProxyHops);
  store.init(limits.rateLimitWindowMs);

  const secondsLeft = (reset: Date | undefined, floor: number): number =>
    reset === undefined
      ? windowSeconds
      : Math.max(floor, Math.ceil((reset.getTime() - Date.now()) / 1000));

  const answer = (
    req: Request,
    res: Response,
    next: NextFunction,
    counted: RateLimitCount,
  ): void => {
    const remaining = Math.max(limit - counted.totalHits, 0);
    res.setHeader('RateLimit-Policy', policy);
    res.setHeader('RateLimit', `"default";r=${remaining};t=${secondsLeft(counted.resetTime, 0)}`);
    if (counted.totalHits <= limit) {
      next();
      return;
    }
    reply(
      res,
      'RATE_LIMITED',
      `More than ${limit} requests in ${windowSeconds} s from this client.`,
      {
        retryAfterSeconds: secondsLeft(counted.resetTime, 1),
      },
    );
  };

  // Counted without the library's middleware: it awaits each of its steps (skip, key, store,
  // limit), five promises per request even with a store that answers synchronously, each one also
  // seen by the request scope's async hooks (measured: ~6 us of CPU per request). A store that
  // answers synchronously (this process's memory) costs no promise at all here.
  return (req, res, next) => {
    const counted = store.increment(keyOf(req, res));
    if (counted instanceof Promise) {
      counted.then(
        (result) => answer(req, res, next, result),
        (error: unknown) => next(error),
      );
      return;
    }
    answer(req, res, next, counted);
  };
}
