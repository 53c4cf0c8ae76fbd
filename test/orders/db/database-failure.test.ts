// What counts as the database failing (the breaker and readiness) and what is a call's own
// problem (issue #11: five orders with a NUL in a text field opened the breaker for everyone).
// Classified by SQLSTATE class, then checked against the real PostgreSQL with the module's own
// resilience policy.
import { trace } from '@opentelemetry/api';
import { ResourceCloseTimeout } from '../../../src/contracts';
import { AppError } from '../../../src/errors/catalogue';
import { createDatabase, sql } from '../../../src/orders/db/database';
import { createPgDb } from '../../../src/orders/db/pg.adapter';
import { isDatabaseFailure } from '../../../src/orders/db/retryable-error';
import { databasePolicyOptions } from '../../../src/orders/orders.module';
import { createDependencyPolicy } from '../../../src/resilience/dependency-policy';
import type { BreakerState } from '../../../src/telemetry/metrics';
import { captureLogger } from '../../helpers/log-capture';
import { testConfig } from '../../helpers/test-app';
import { TEST_DATABASE_URL } from '../support/test-database';

const withCode = (code: string, message = 'x'): Error =>
  Object.assign(new Error(message), { code });

describe('which database errors are failures of the database', () => {
  it.each([
    ['08006', 'connection_failure'],
    ['08001', 'cannot establish a connection'],
    ['53100', 'disk full'],
    ['53300', 'too many connections'],
    ['57P01', 'admin shutdown'],
    ['57014', 'statement timeout'],
    ['58030', 'I/O error'],
    ['XX000', 'internal error'],
    ['ECONNREFUSED', 'connection refused'],
    ['EHOSTUNREACH', 'no route to the host'],
  ])('when the error is %s (%s), then it counts', (code) => {
    expect(isDatabaseFailure(withCode(code))).toBe(true);
  });

  it.each([
    ['22021', 'a NUL or bad byte sequence in text'],
    ['22P02', 'invalid input syntax (a lone surrogate in JSON)'],
    ['22001', 'string too long'],
    ['23505', 'unique violation'],
    ['23503', 'foreign key violation'],
    ['42601', 'syntax error'],
    ['55P03', 'lock not available (a running request holds the key)'],
    ['40001', 'serialization failure (retried, not an outage)'],
  ])('when the error is %s (%s), then it does not count', (code) => {
    expect(isDatabaseFailure(withCode(code))).toBe(false);
  });

  it('when pg reports a lost connection without a code, then it counts; a plain error does not', () => {
    expect(isDatabaseFailure(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseFailure(new Error('something else'))).toBe(false);
    expect(isDatabaseFailure(new AggregateError([withCode('22021'), withCode('ECONNRESET')]))).toBe(
      true,
    );
  });
});

describe('the real PostgreSQL behind the module policy', () => {
  function stack(url: string) {
    const config = testConfig({ DATABASE_URL: url, DATABASE_CONNECT_TIMEOUT_MS: '500' });
    const { logger } = captureLogger();
    const states: BreakerState[] = [];
    const availability: boolean[] = [];
    const policy = createDependencyPolicy(
      { ...databasePolicyOptions(config), initialBackoffMs: 5, maxBackoffMs: 10 },
      {
        logger,
        onBreakerState: (state) => states.push(state),
        onAvailability: (up) => availability.push(up),
      },
    );
    const db = createPgDb(
      {
        url,
        poolMax: 2,
        connectTimeoutMs: 500,
        statementTimeoutMs: 2_000,
        lockTimeoutMs: 250,
        idleInTransactionTimeoutMs: 5_000,
        closeTimeoutMs: 500,
      },
      logger,
    );
    const database = createDatabase(() => db, policy, trace.getTracer('test'));
    return { database, policy, states, availability, close: () => db.close() };
  }
  const echo = sql('SELECT', 'echo', 'SELECT $1::text AS value');
  const asJson = sql('SELECT', 'echo', 'SELECT $1::jsonb AS value');

  it("when PostgreSQL refuses a caller's text (NUL, lone surrogate) many times, then the error is passed on as the caller's, the breaker stays closed and the database is never reported down", async () => {
    const { database, policy, states, availability, close } = stack(TEST_DATABASE_URL);
    try {
      for (let i = 0; i < 12; i += 1) {
        const error = await database
          .run((session) => session.run(echo, ['a\u0000b']), { retry: true })
          .catch((e: unknown) => e);
        expect(error).not.toBeInstanceOf(AppError);
        expect((error as { code?: string }).code).toBe('22021');
        const json = await database
          .run((session) => session.run(asJson, ['"\\ud800"']), { retry: true })
          .catch((e: unknown) => e);
        expect((json as { code?: string }).code).toMatch(/^22/);
      }
      expect(policy.breakerState()).toBe('closed');
      expect(states).toEqual(['closed']);
      expect(availability).toEqual([]);
      const ok = await database.run((session) => session.run(echo, ['fine']), { retry: true });
      expect(ok.rows).toEqual([{ value: 'fine' }]);
    } finally {
      await close();
    }
  });

  it('when PostgreSQL cannot be reached, then calls fail with DEPENDENCY_UNAVAILABLE and the breaker opens after five', async () => {
    const { database, policy, availability, close } = stack('postgres://postgres@127.0.0.1:1/test');
    try {
      const codes: string[] = [];
      for (let i = 0; i < 6; i += 1) {
        const error = await database
          .run((session) => session.run(echo, ['x']), { retry: false })
          .catch((e: unknown) => e);
        codes.push(error instanceof AppError ? error.code : String(error));
      }
      expect(codes.slice(0, 5)).toEqual(Array(5).fill('DEPENDENCY_UNAVAILABLE'));
      expect(codes[5]).toBe('CIRCUIT_OPEN');
      expect(policy.breakerState()).toBe('open');
      expect(availability).toEqual([false]);
    } finally {
      await close();
    }
  });
});

describe('closing the pool', () => {
  it('when a connection is still checked out at the end of the close wait, then close() says so instead of resolving as closed', async () => {
    const db = createPgDb(
      {
        url: TEST_DATABASE_URL,
        poolMax: 2,
        connectTimeoutMs: 1_000,
        statementTimeoutMs: 5_000,
        lockTimeoutMs: 250,
        idleInTransactionTimeoutMs: 5_000,
        closeTimeoutMs: 200,
      },
      captureLogger().logger,
    );
    const busy = db.query('SELECT pg_sleep(1)', []).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closed = await db.close().then(
      () => 'closed',
      (error: unknown) => error,
    );
    expect(closed).toBeInstanceOf(ResourceCloseTimeout);
    expect(String((closed as Error).message)).toMatch(/1 connection\(s\) still checked out/);
    await busy;
  });
});
