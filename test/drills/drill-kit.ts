// Tools for whole-process shutdown drills: spawn the drill service, keep keep-alive connections
// busy like a load balancer would, and account for every request sent.
import http from 'node:http';
import type { ServiceProcess } from '../helpers/service-process';

export interface Outcome {
  readonly ok: boolean;
  readonly status?: number;
  readonly error?: string;
  readonly connection?: string;
  readonly sentAt: number;
  readonly doneAt: number;
}

/** One GET; resolves with what happened, never rejects. A response counts only if complete. */
export function get(port: number, pathname: string, agent: http.Agent | false): Promise<Outcome> {
  const sentAt = Date.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('error', (error) =>
        resolve({ ok: false, error: error.message, sentAt, doneAt: Date.now() }),
      );
      res.once('end', () => {
        const expected = Number(res.headers['content-length']);
        const complete = Number.isNaN(expected) || Buffer.byteLength(body) === expected;
        let parsed = complete;
        try {
          if (complete) JSON.parse(body);
        } catch {
          parsed = false;
        }
        resolve({
          ok: parsed && res.statusCode === 200,
          status: res.statusCode,
          ...(parsed ? {} : { error: 'incomplete body' }),
          ...(res.headers.connection === undefined ? {} : { connection: res.headers.connection }),
          sentAt,
          doneAt: Date.now(),
        });
      });
    });
    req.once('error', (error: NodeJS.ErrnoException) => {
      resolve({ ok: false, error: error.code ?? error.message, sentAt, doneAt: Date.now() });
    });
  });
}

export interface LoadOptions {
  readonly port: number;
  readonly connections: number;
  /** Request durations are drawn from this range (ms), seeded for repeatability. */
  readonly minMs: number;
  readonly maxMs: number;
  /** The load stops sending new requests when this resolves (the load balancer has moved on). */
  readonly stopSending: Promise<void>;
}

/** A small seeded PRNG (mulberry32): drills vary durations the same way on every run. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Keeps `connections` keep-alive connections busy: each loop sends a request of random duration
 * as soon as its previous one is answered, until `stopSending`. Resolves with every outcome once
 * all requests sent are settled.
 */
export async function runLoad(options: LoadOptions): Promise<Outcome[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const random = seeded(42);
  const outcomes: Outcome[] = [];
  let sending = true;
  void options.stopSending.then(() => {
    sending = false;
  });
  const loop = async (): Promise<void> => {
    while (sending) {
      const ms = Math.round(options.minMs + random() * (options.maxMs - options.minMs));
      const bytes = 64 + Math.round(random() * 16_000);
      outcomes.push(await get(options.port, `/drill/work?ms=${ms}&bytes=${bytes}`, agent));
    }
  };
  await Promise.all(Array.from({ length: options.connections }, loop));
  agent.destroy();
  return outcomes;
}

export { setTimeout as delay } from 'node:timers/promises';

export { CONTRACT_SHUTDOWN_ORDER, contractEvents } from '../../scripts/incidents/kit/contract';

export function timeOf(service: ServiceProcess, event: string): number {
  const line = service.lines.find((l) => l.event === event);
  if (line === undefined) throw new Error(`no ${event} line`);
  return Date.parse(line.ts);
}
