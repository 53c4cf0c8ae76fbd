// Pings the database every DATABASE_HEALTH_INTERVAL_MS on its own connection and tells the
// health tracker. While the breaker is not closed, a good ping is followed by one trial call
// through the policy, so the breaker closes (and readiness recovers) even when no request comes.
import type { Worker } from '../../contracts';
import type { DependencyPolicy } from '../../resilience/dependency-policy';
import type { Db } from '../db/db';
import { describeDbError } from '../db/db';
import type { DatabaseHealth } from '../db/database-health';
import { periodic } from './periodic';

export interface PingerWorker extends Worker {
  start(): void;
}

export function createDatabasePinger(deps: {
  readonly db: () => Db | undefined;
  readonly health: DatabaseHealth;
  readonly policy: DependencyPolicy;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}): PingerWorker {
  async function tick(): Promise<void> {
    const db = deps.db();
    if (db === undefined) return;
    try {
      await db.ping(AbortSignal.timeout(deps.timeoutMs));
    } catch (error) {
      deps.health.pingFailed(describeDbError(error));
      return;
    }
    deps.health.pingSucceeded();
    if (deps.policy.breakerState() !== 'closed') {
      // CIRCUIT_OPEN until the breaker's pause is over; then this is the half-open trial.
      await deps.policy
        .call((signal) => db.query('SELECT 1', [], signal), { retry: false })
        .catch(() => undefined);
    }
  }

  // Fixed rate: a ping that times out does not also delay the next one.
  const loop = periodic({
    intervalMs: deps.intervalMs,
    run: tick,
    onError: () => undefined,
    fixedRate: true,
    runAtStart: false,
  });

  return {
    name: 'database-pinger',
    start: () => loop.start(),
    stop: () => loop.stop(),
  };
}
