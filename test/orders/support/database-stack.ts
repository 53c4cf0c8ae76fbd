// The orders data-access stack on a test database, as the module builds it: the adapter, the
// resilience policy and the traced Database (spans go nowhere: no tracer provider is registered).
import { trace } from '@opentelemetry/api';
import { createDependencyPolicy } from '../../../src/resilience/dependency-policy';
import { createDatabase, type Database } from '../../../src/orders/db/database';
import type { Db } from '../../../src/orders/db/db';
import { createPgDb, type PgOptions } from '../../../src/orders/db/pg.adapter';
import { isDatabaseFailure, isRetryableDbError } from '../../../src/orders/db/retryable-error';
import { captureLogger } from '../../helpers/log-capture';

export interface DatabaseStack {
  readonly db: Db;
  readonly database: Database;
  close(): Promise<void>;
}

/** The stack on a pg Pool of its own on `url`. */
export function databaseStack(
  url: string,
  poolMax = 10,
  /** Stands between the Database and the real adapter (to inject faults). */
  wrap: (db: Db) => Db = (db) => db,
  options: Partial<PgOptions> = {},
): DatabaseStack {
  const { logger } = captureLogger();
  const real = createPgDb(
    {
      url,
      poolMax,
      connectTimeoutMs: 2_000,
      statementTimeoutMs: 5_000,
      lockTimeoutMs: 2_000,
      idleInTransactionTimeoutMs: 10_000,
      closeTimeoutMs: 1_000,
      ...options,
    },
    logger,
  );
  return databaseStackOn(real, poolMax, wrap, () => real.close());
}

/** The stack on an adapter that is already open; `close` says what closing the stack does. */
export function databaseStackOn(
  real: Db,
  /** Calls running at once, as the module sets it from the pool size (for either adapter). */
  concurrency: number,
  wrap: (db: Db) => Db,
  close: () => Promise<void>,
): DatabaseStack {
  const { logger } = captureLogger();
  const db = wrap(real);
  const policy = createDependencyPolicy(
    {
      name: 'database',
      attemptTimeoutMs: 7_000,
      maxAttempts: 3,
      initialBackoffMs: 20,
      maxBackoffMs: 100,
      breakerThreshold: 50,
      halfOpenAfterMs: 1_000,
      concurrency,
      queue: 1_000,
      isRetryable: isRetryableDbError,
      isFailure: isDatabaseFailure,
    },
    { logger },
  );
  return {
    db,
    database: createDatabase(() => db, policy, trace.getTracer('orders-test')),
    close,
  };
}
