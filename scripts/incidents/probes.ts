// What a kubelet or a load balancer sees during a drill: GET /health and GET /ready every
// PROBE_EVERY_MS on a new connection each, with a timeout, answers recorded as they came.
import { setTimeout as delay } from 'node:timers/promises';
import { send, type Outcome } from './kit/orders-client';

export const PROBE_EVERY_MS = 200;
const PROBE_TIMEOUT_MS = 1000;

export interface ProbeSample {
  readonly at: number;
  /** `200`, `503`, ... or the error (`ECONNREFUSED`, `TIMEOUT`). */
  readonly health: string;
  readonly ready: string;
  /** The /ready body as sent (compact JSON), '' when there was no answer. */
  readonly readyBody: string;
}

function answer(outcome: Outcome): string {
  return outcome.status === undefined ? (outcome.error ?? 'no answer') : String(outcome.status);
}

export interface Probes {
  readonly samples: readonly ProbeSample[];
  stop(): Promise<void>;
}

export function startProbes(port: number): Probes {
  const samples: ProbeSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const [health, ready] = await Promise.all([
        send(port, { method: 'GET', path: '/health', timeoutMs: PROBE_TIMEOUT_MS }),
        send(port, { method: 'GET', path: '/ready', timeoutMs: PROBE_TIMEOUT_MS }),
      ]);
      samples.push({
        at,
        health: answer(health),
        ready: answer(ready),
        readyBody: ready.status === undefined ? '' : (ready.text ?? ''),
      });
      await delay(Math.max(0, PROBE_EVERY_MS - (Date.now() - at)));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** One row per stretch of identical answers: when it began, how many samples it lasted. */
export interface ProbeStretch {
  readonly from: number;
  readonly until: number;
  readonly samples: number;
  readonly health: string;
  readonly ready: string;
  readonly readyBody: string;
}

export function stretches(samples: readonly ProbeSample[]): ProbeStretch[] {
  const rows: ProbeStretch[] = [];
  for (const sample of samples) {
    const last = rows.at(-1);
    if (
      last !== undefined &&
      last.health === sample.health &&
      last.ready === sample.ready &&
      last.readyBody === sample.readyBody
    ) {
      rows[rows.length - 1] = { ...last, until: sample.at, samples: last.samples + 1 };
    } else {
      rows.push({ ...sample, from: sample.at, until: sample.at, samples: 1 });
    }
  }
  return rows;
}
