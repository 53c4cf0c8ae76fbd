// An HTTP client for the orders API that never rejects: every request ends in an outcome
// (a complete response, or the error that cut it off), so tests and incident drills can account
// for each one.
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

export interface OrderBody {
  customer_id: string;
  currency: string;
  items: { sku: string; quantity: number; unit_price_cents: number }[];
}

export interface Outcome {
  readonly key: string | undefined;
  readonly status?: number;
  readonly headers?: http.IncomingHttpHeaders;
  readonly text?: string;
  readonly json?: Record<string, unknown>;
  /** Set when no complete response arrived (ECONNRESET, ECONNREFUSED, a truncated body). */
  readonly error?: string;
  readonly ms: number;
}

export function orderBody(customer = 'customer-1', items = 1): OrderBody {
  return {
    customer_id: customer,
    currency: 'EUR',
    items: Array.from({ length: items }, (_, index) => ({
      sku: `SKU-${index + 1}`,
      quantity: index + 1,
      unit_price_cents: 1999,
    })),
  };
}

export function send(
  port: number,
  options: {
    method: string;
    path: string;
    key?: string;
    body?: unknown;
    agent?: http.Agent | false;
    headers?: Record<string, string>;
    /** Gives up after this long with the error `TIMEOUT` (default: waits as long as it takes). */
    timeoutMs?: number;
  },
): Promise<Outcome> {
  const startedAt = Date.now();
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve) => {
    const done = (outcome: Omit<Outcome, 'ms' | 'key'>): void =>
      resolve({ ...outcome, key: options.key, ms: Date.now() - startedAt });
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: options.method,
        path: options.path,
        agent: options.agent ?? false,
        headers: {
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...(options.key === undefined ? {} : { 'idempotency-key': options.key }),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.once('error', (error) => done({ error: error.message }));
        res.once('end', () => {
          const expected = Number(res.headers['content-length']);
          if (!Number.isNaN(expected) && Buffer.byteLength(text) !== expected) {
            done({ status: res.statusCode, error: 'incomplete body' });
            return;
          }
          let json: Record<string, unknown> | undefined;
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
          done({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            ...(json ? { json } : {}),
          });
        });
      },
    );
    req.once('error', (error: NodeJS.ErrnoException) =>
      done({ error: error.code ?? error.message }),
    );
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () =>
        req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })),
      );
    }
    req.end(payload);
  });
}

export function postOrder(
  port: number,
  key: string | undefined,
  body: unknown,
  agent?: http.Agent | false,
): Promise<Outcome> {
  return send(port, {
    method: 'POST',
    path: '/v1/orders',
    ...(key === undefined ? {} : { key }),
    body,
    ...(agent === undefined ? {} : { agent }),
  });
}

export function getPath(port: number, path: string): Promise<Outcome> {
  return send(port, { method: 'GET', path });
}

export { delay };

/** Polls `check` every `everyMs` until it returns true; resolves with the time it took. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<number> {
  const startedAt = Date.now();
  while (Date.now() - startedAt < timeoutMs) {
    if (await check()) return Date.now() - startedAt;
    await delay(everyMs);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** GET /ready: its status and body. */
export async function readiness(
  port: number,
): Promise<{ status?: number; body?: Record<string, unknown> }> {
  const res = await getPath(port, '/ready');
  return {
    ...(res.status === undefined ? {} : { status: res.status }),
    ...(res.json ? { body: res.json } : {}),
  };
}
