// The steady light load of a drill, open loop as a load balancer's traffic is: a new round every
// 1/rate s (an order with a fresh Idempotency-Key, then a read of it), whatever the earlier rounds
// are doing, over one keep-alive pool, at most `maxInFlight` rounds at once (a round that would
// exceed it is held back and counted). Every request ends in an outcome (an answer or the error
// that cut it off), kept with its times, so a drill can count what clients saw in each phase and
// retry what was cut off.
import http from 'node:http';
import { type OrderBody, orderBody, type Outcome, send } from './kit/orders-client';

export type Operation = 'POST /v1/orders' | 'GET /v1/orders/:id';

export interface LoadOutcome {
  readonly op: Operation;
  readonly sentAt: number;
  readonly doneAt: number;
  readonly key?: string;
  readonly status?: number;
  /** The problem+json `code` of an error answer. */
  readonly code?: string;
  /** Set when no complete answer came (ECONNRESET, ECONNREFUSED, socket hang up...). */
  readonly error?: string;
  readonly retryAfter?: string;
  readonly replayed?: boolean;
  readonly orderId?: string;
}

export interface LoadOptions {
  /** Rounds (an order, then its read) started per second. */
  readonly ratePerSecond: number;
  /** Rounds in flight at most; a round due beyond it is held back. */
  readonly maxInFlight: number;
  /** Prefix of the Idempotency-Keys (unique per drill run). */
  readonly keyPrefix: string;
  /** Sent with every request (the bearer token). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Load {
  readonly outcomes: readonly LoadOutcome[];
  /** When a round was due but held back (maxInFlight rounds in flight). */
  readonly heldBack: readonly number[];
  /** The body each key was sent with (a retry must send the same one). */
  bodyOf(key: string): OrderBody | undefined;
  stop(): Promise<void>;
}

export function outcomeOf(op: Operation, sentAt: number, res: Outcome): LoadOutcome {
  const code = res.json?.code;
  const id = res.json?.id;
  const retryAfter = res.headers?.['retry-after'];
  return {
    op,
    sentAt,
    doneAt: Date.now(),
    ...(res.key === undefined ? {} : { key: res.key }),
    ...(res.status === undefined ? {} : { status: res.status }),
    ...(res.error === undefined ? {} : { error: res.error }),
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof retryAfter === 'string' ? { retryAfter } : {}),
    ...(res.headers?.['idempotent-replayed'] === 'true' ? { replayed: true } : {}),
    ...(op === 'POST /v1/orders' && typeof id === 'string' ? { orderId: id } : {}),
  };
}

export function startLoad(port: number, options: LoadOptions): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.maxInFlight });
  const outcomes: LoadOutcome[] = [];
  const heldBack: number[] = [];
  const bodies = new Map<string, OrderBody>();
  const rounds = new Set<Promise<void>>();
  let running = true;
  let n = 0;
  const round = async (): Promise<void> => {
    const key = `${options.keyPrefix}-${n}`;
    const body = orderBody(`customer-${n % 7}`, 1 + (n % 3));
    n += 1;
    bodies.set(key, body);
    const headers = { ...options.headers };
    const sentAt = Date.now();
    const post = { method: 'POST', path: '/v1/orders', key, body, agent, headers };
    const created = outcomeOf('POST /v1/orders', sentAt, await send(port, post));
    outcomes.push(created);
    if (created.orderId !== undefined && running) {
      const readAt = Date.now();
      const get = { method: 'GET', path: `/v1/orders/${created.orderId}`, agent, headers };
      outcomes.push(outcomeOf('GET /v1/orders/:id', readAt, await send(port, get)));
    }
  };
  const timer = setInterval(() => {
    if (!running) return;
    if (rounds.size >= options.maxInFlight) {
      heldBack.push(Date.now());
      return;
    }
    const started = round().finally(() => rounds.delete(started));
    rounds.add(started);
  }, 1000 / options.ratePerSecond);
  return {
    outcomes,
    heldBack,
    bodyOf: (key) => bodies.get(key),
    async stop() {
      running = false;
      clearInterval(timer);
      await Promise.all([...rounds]);
      agent.destroy();
    },
  };
}

/** What clients saw in one phase: answers by class, the codes and errors, latency of answers. */
export interface OutcomeSummary {
  readonly sent: number;
  readonly ok2xx: number;
  readonly client4xx: number;
  readonly server5xx: number;
  readonly noAnswer: number;
  /** `503 CIRCUIT_OPEN` -> count, `ECONNRESET` -> count, ... (2xx not listed). */
  readonly details: ReadonlyMap<string, number>;
  readonly p50Ms?: number;
  readonly p95Ms?: number;
  readonly maxMs?: number;
}

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export function summarize(outcomes: readonly LoadOutcome[]): OutcomeSummary {
  const details = new Map<string, number>();
  const bump = (what: string): void => {
    details.set(what, (details.get(what) ?? 0) + 1);
  };
  let ok2xx = 0;
  let client4xx = 0;
  let server5xx = 0;
  let noAnswer = 0;
  const durations: number[] = [];
  for (const outcome of outcomes) {
    if (outcome.status === undefined || outcome.error !== undefined) {
      noAnswer += 1;
      bump(outcome.error ?? 'no answer');
      continue;
    }
    durations.push(outcome.doneAt - outcome.sentAt);
    if (outcome.status < 300) ok2xx += 1;
    else {
      if (outcome.status < 500) client4xx += 1;
      else server5xx += 1;
      bump(`${outcome.status} ${outcome.code ?? ''}`.trim());
    }
  }
  durations.sort((a, b) => a - b);
  const p50 = quantile(durations, 0.5);
  const p95 = quantile(durations, 0.95);
  const max = durations.at(-1);
  return {
    sent: outcomes.length,
    ok2xx,
    client4xx,
    server5xx,
    noAnswer,
    details,
    ...(p50 === undefined ? {} : { p50Ms: p50 }),
    ...(p95 === undefined ? {} : { p95Ms: p95 }),
    ...(max === undefined ? {} : { maxMs: max }),
  };
}
