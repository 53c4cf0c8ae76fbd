// The database as a startup check: open it (pg Pool, or PGlite in its data directory), wait for it
// to answer, apply the migrations, then report it up. It gives up before the runtime's own
// STARTUP_TIMEOUT_MS with the last error, so `service.start_failed` says what was wrong
// (`database: not reachable at 127.0.0.1:5432/orders after 12000 ms: connect ECONNREFUSED ...`).
import type { StartupCheck } from '../../contracts';
import type { Logger } from '../../telemetry/logger';
import { setTimeout } from 'node:timers/promises';
import { abortReason, type Db, describeDbError, untilAborted } from './db';
import { migrate, readMigrations } from './migrations.runner';

export interface DatabaseStartupOptions {
  readonly open: () => Promise<Db>;
  readonly migrationsDir: string;
  readonly startupTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly logger: Logger;
  /** Called once the database is open, migrated and answering. */
  readonly onReady: (db: Db) => void;
  /** Called as soon as it is open, so it is closed at shutdown even if startup fails later. */
  readonly onOpen: (db: Db) => void;
  /** The event-loop monitor load shedding reads, and its limit (0: shedding off). */
  readonly eventLoop: { p99Ms(): number; windowsClosed(): number };
  readonly maxEventLoopDelayMs: number;
}

const RETRY_EVERY_MS = 250;

/** Node's timer, rejecting with the signal's own reason when startup is abandoned. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return setTimeout(ms, undefined, { signal }).catch(() => {
    throw abortReason(signal);
  });
}

export function databaseStartupCheck(options: DatabaseStartupOptions): StartupCheck {
  const { logger } = options;
  return {
    name: 'database',
    async run(signal) {
      const startedAt = Date.now();
      // Leave the runtime's budget a margin so the failure is ours, with its cause, and not a bare
      // STARTUP_TIMEOUT.
      const budgetMs = Math.max(
        options.startupTimeoutMs - Math.min(1_000, options.startupTimeoutMs / 5),
        0,
      );
      const migrations = readMigrations(options.migrationsDir);
      const opening = options.open();
      // Registered for closing whenever it opens, even after startup gave up waiting for it.
      opening.then(options.onOpen, () => undefined);
      const db = await untilAborted(opening, signal);

      let attempts = 0;
      for (;;) {
        attempts += 1;
        const attempt = AbortSignal.any([signal, AbortSignal.timeout(options.connectTimeoutMs)]);
        try {
          await db.query('SELECT 1', [], attempt);
          break;
        } catch (error) {
          signal.throwIfAborted();
          const elapsed = Date.now() - startedAt;
          const reason = describeDbError(error);
          if (attempts === 1 || attempts % 20 === 0) {
            logger.warn('db.waiting', {
              target: db.target,
              attempts,
              elapsed_ms: elapsed,
              reason,
              error_code: 'DEPENDENCY_UNAVAILABLE',
              error_category: 'expected',
            });
          }
          if (elapsed + RETRY_EVERY_MS >= budgetMs) {
            throw new Error(`not reachable at ${db.target} after ${elapsed} ms: ${reason}`, {
              cause: error,
            });
          }
          await sleep(RETRY_EVERY_MS, signal);
        }
      }
      logger.info('db.connected', {
        driver: db.driver,
        target: db.target,
        attempts,
        ms: Date.now() - startedAt,
      });

      const report = await migrate(db, migrations, signal).catch((error: unknown) => {
        throw new Error(`migrations failed: ${describeDbError(error)}`, { cause: error });
      });
      logger.info('db.migrations_applied', {
        count: report.applied.length,
        applied: report.applied,
        total: report.total,
        ms: report.ms,
      });
      if (db.driver === 'pglite') await eventLoopOnTime(options, signal, startedAt + budgetMs);
      options.onReady(db);
    },
  };
}

/**
 * PGlite starts by running WASM on the main thread for up to seconds. The event-loop monitor
 * reports that block when the window holding it closes, and load shedding would then answer the
 * first requests after `service.ready` with 503 OVERLOADED. Ready only once a window that opened
 * after the block saw the loop on time: the window open now may hold it, so the second one to
 * close from here on. (A block shorter than a window is not reported until its window closes.)
 */
async function eventLoopOnTime(
  options: DatabaseStartupOptions,
  signal: AbortSignal,
  deadline: number,
): Promise<void> {
  const limit = options.maxEventLoopDelayMs;
  if (limit === 0) return;
  const { eventLoop } = options;
  const afterBlock = eventLoop.windowsClosed() + 2;
  do {
    await sleep(50, signal);
  } while (
    (eventLoop.windowsClosed() < afterBlock || eventLoop.p99Ms() > limit) &&
    Date.now() < deadline
  );
}
