// Deletes Idempotency-Keys past their retention (IDEMPOTENCY_RETENTION_MS), in batches, every
// IDEMPOTENCY_PURGE_INTERVAL_MS, then refreshes the outbox backlog that the ops_outbox_backlog
// gauge reads (a metrics scrape never queries the database). stop() lets the current batch
// finish and resolves.
import type { Logger } from '../../telemetry/logger';
import type { Worker } from '../../contracts';
import type { Database } from '../db/database';
import { describeDbError } from '../db/db';
import { purgeExpiredKeys } from '../data/idempotency.repository';
import { countBacklog } from '../data/outbox.repository';
import { periodic } from './periodic';

export const PURGE_BATCH = 500;
// A purge that keeps finding full batches yields after this many, until the next interval.
const MAX_BATCHES_PER_RUN = 20;

export interface PurgeWorker extends Worker {
  start(): void;
  /** One purge and backlog refresh now (also what each interval runs). */
  runOnce(): Promise<void>;
}

export function createIdempotencyPurgeWorker(deps: {
  readonly database: Database;
  readonly logger: Logger;
  readonly intervalMs: number;
  readonly onBacklog: (backlog: number) => void;
}): PurgeWorker {
  const { database, logger } = deps;

  async function purge(): Promise<void> {
    const startedAt = performance.now();
    let purged = 0;
    for (let batch = 0; batch < MAX_BATCHES_PER_RUN && !loop.stopped; batch += 1) {
      const deleted = await database.run((session) => purgeExpiredKeys(session, PURGE_BATCH), {
        retry: true,
      });
      purged += deleted;
      if (deleted < PURGE_BATCH) break;
    }
    if (purged > 0) {
      logger.info('idempotency.purged', {
        keys: purged,
        ms: Math.round(performance.now() - startedAt),
      });
    }
    if (!loop.stopped) deps.onBacklog(await database.run(countBacklog, { retry: true }));
  }

  const loop = periodic({
    intervalMs: deps.intervalMs,
    run: purge,
    onError: (error: unknown) => {
      logger.warn('idempotency.purge_failed', {
        reason: describeDbError(error),
        error_code: (error as { code?: unknown } | null)?.code ?? 'DEPENDENCY_UNAVAILABLE',
        error_category: 'expected',
      });
    },
  });

  return {
    name: 'idempotency-purge',
    // A first pass at once: the backlog gauge has a value from the start.
    start: () => loop.start(),
    runOnce: () => loop.runOnce(),
    stop: () => loop.stop(),
  };
}
