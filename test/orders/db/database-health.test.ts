// How the database's health reaches the lifecycle machine: changes only, and while it is down a
// reason that stays current (issue #11: the first failure's text stayed for a whole outage).
import { createDatabaseHealth } from '../../../src/orders/db/database-health';
import { captureLogger } from '../../helpers/log-capture';

function setup() {
  const reports: [boolean, string][] = [];
  const log = captureLogger();
  const health = createDatabaseHealth((up, reason) => reports.push([up, reason]), log.logger);
  health.started();
  return { health, reports, log };
}

describe('database health', () => {
  it('when two pings fail, then the database is reported down once, with the ping failure', () => {
    const { health, reports, log } = setup();
    health.pingFailed('the database system is shutting down');
    expect(reports).toEqual([[true, 'recovered']]);
    health.pingFailed('the database system is shutting down');
    expect(reports.at(-1)).toEqual([false, 'ping failed: the database system is shutting down']);
    health.pingFailed('the database system is shutting down');
    expect(reports).toHaveLength(2);
    expect(log.records().filter((r) => r.event === 'db.unavailable')).toHaveLength(1);
  });

  it('when the cause changes during the outage, then the new reason is reported (never a stale one)', () => {
    const { health, reports } = setup();
    health.pingFailed('the database system is shutting down');
    health.pingFailed('the database system is shutting down');
    health.pingFailed('connect ECONNREFUSED 127.0.0.1:5432');
    expect(reports.at(-1)).toEqual([false, 'ping failed: connect ECONNREFUSED 127.0.0.1:5432']);
    expect(health.isUp()).toBe(false);
  });

  it('when a ping succeeds and the breaker is closed, then it is reported up again', () => {
    const { health, reports, log } = setup();
    health.pingFailed('x');
    health.pingFailed('x');
    health.pingSucceeded();
    expect(reports.at(-1)).toEqual([true, 'recovered']);
    expect(log.records().map((r) => r.event)).toEqual([
      'db.available',
      'db.unavailable',
      'db.available',
    ]);
  });
});
