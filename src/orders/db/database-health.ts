// Whether the database is up, as readiness should say it: down when two health pings in a row
// fail or the breaker is open (requests are failing), up again when a ping succeeds and the
// breaker has closed. Only changes are reported to the lifecycle machine (DEPENDENCY_DOWN/UP):
// a change of state, or, while down, a change of reason, so /lifecycle never shows a stale one
// (issue #11: "the database system is shutting down" stayed for a whole 10 s outage).
import type { Logger } from '../../telemetry/logger';

export const PING_FAILURES_FOR_DOWN = 2;

export interface DatabaseHealth {
  /** The startup check connected and migrated: the database starts out up. */
  started(): void;
  pingSucceeded(): void;
  pingFailed(reason: string): void;
  /** From the dependency policy: the breaker opened (false) or closed (true). */
  breakerChanged(available: boolean, reason: string): void;
  isUp(): boolean;
  /** Why pings say the database is down, or undefined while they succeed. */
  pingDown(): string | undefined;
}

export function createDatabaseHealth(
  report: (up: boolean, reason: string) => void,
  logger: Logger,
): DatabaseHealth {
  let started = false;
  let failedPings = 0;
  let lastPingFailure = '';
  let breakerOpen = false;
  let breakerReason = '';
  let reported: boolean | undefined;
  let reportedReason = '';

  const update = (): void => {
    if (!started) return;
    const pingDown = failedPings >= PING_FAILURES_FOR_DOWN;
    const up = !pingDown && !breakerOpen;
    const reason = up ? 'recovered' : pingDown ? `ping failed: ${lastPingFailure}` : breakerReason;
    if (up === reported) {
      if (!up && reason !== reportedReason) {
        reportedReason = reason;
        report(false, reason);
      }
      return;
    }
    reported = up;
    reportedReason = reason;
    if (up) logger.info('db.available', { dependency: 'database' });
    else {
      logger.warn('db.unavailable', {
        dependency: 'database',
        reason,
        error_code: 'DEPENDENCY_UNAVAILABLE',
        error_category: 'expected',
      });
    }
    report(up, reason);
  };

  return {
    started() {
      started = true;
      update();
    },
    pingSucceeded() {
      failedPings = 0;
      update();
    },
    pingFailed(reason) {
      failedPings += 1;
      lastPingFailure = reason;
      update();
    },
    breakerChanged(available, reason) {
      breakerOpen = !available;
      breakerReason = reason;
      update();
    },
    isUp: () => reported === true,
    pingDown: () =>
      failedPings >= PING_FAILURES_FOR_DOWN ? `ping failed: ${lastPingFailure}` : undefined,
  };
}
