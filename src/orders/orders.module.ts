// The orders module: POST/GET /v1/orders on PostgreSQL (DATABASE_URL) or the embedded PGlite,
// with its startup check (connect + migrations), workers (health pinger, key purge, and with
// NATS_URL the outbox relay and the payments consumer), the database as an essential dependency,
// the broker as an optional one, both closed after the drain.
//
//   routes (http/) -> use cases (use-cases/) -> repositories (data/) -> Database (db/: policy,
//   spans) -> Db adapter (pg Pool or PGlite)
import path from 'node:path';
import { packageRoot } from '../config/load-config';
import {
  createDependencyPolicy,
  type DependencyPolicyOptions,
} from '../resilience/dependency-policy';
import type { AppConfig } from '../config/schema';
import type { ModuleContext, RuntimeModule } from '../contracts';
import type { Logger } from '../telemetry/logger';
import { BROKER, createBroker } from '../broker/nats-broker';
import { createDatabase } from './db/database';
import { createDatabaseHealth } from './db/database-health';
import { databaseStartupCheck } from './db/database.startup-check';
import type { Db } from './db/db';
import { createPgDb } from './db/pg.adapter';
import { DatabaseSlot } from './db/database-slot';
import { isDatabaseFailure, isRetryableDbError } from './db/retryable-error';
import { ordersRouter } from './http/orders.routes';
import { createOrderUseCase } from './use-cases/create-order.use-case';
import { getOrderUseCase } from './use-cases/get-order.use-case';
import { createDatabasePinger } from './workers/database-pinger.worker';
import { createIdempotencyPurgeWorker } from './workers/idempotency-purge.worker';
import { createOutboxRelay } from './workers/outbox-relay.worker';
import { createPaymentsConsumer } from './workers/payments-consumer.worker';

export const DATABASE = 'database';

/** The resilience policy of database calls; thresholds are code, the timeouts come from config. */
export function databasePolicyOptions(config: Readonly<AppConfig>): DependencyPolicyOptions {
  return {
    name: DATABASE,
    // One attempt may wait for a connection, then run its statements (each bounded by
    // statement_timeout on the server).
    attemptTimeoutMs: config.database.connectTimeoutMs + config.database.statementTimeoutMs,
    maxAttempts: 3,
    initialBackoffMs: 50,
    maxBackoffMs: 500,
    breakerThreshold: 5,
    halfOpenAfterMs: 2_000,
    // One call holds one connection: as many running as the pool has, a bounded queue behind.
    concurrency: config.database.poolMax,
    queue: config.database.poolMax * 20,
    isRetryable: isRetryableDbError,
    isFailure: isDatabaseFailure,
  };
}

/**
 * Each of the module's two resources (database, broker) gets half of SHUTDOWN_CLOSE_TIMEOUT_MS;
 * the clients give up a little before that, so they end their own work before the runtime's
 * budget cuts them off.
 */
export function resourceCloseMs(closeTimeoutMs: number): number {
  return Math.max(100, Math.floor(closeTimeoutMs / 2));
}
function adapterCloseMs(closeTimeoutMs: number): number {
  return Math.max(50, resourceCloseMs(closeTimeoutMs) - 50);
}

/** Where the migrations live: migrations/ at the package root (next to package.json). */
export function migrationsDir(): string {
  return path.join(packageRoot(), 'migrations');
}

async function openDb(config: Readonly<AppConfig>, logger: Logger): Promise<Db> {
  const { database, shutdown } = config;
  if (database.url !== '') {
    return createPgDb(
      {
        url: database.url,
        poolMax: database.poolMax,
        connectTimeoutMs: database.connectTimeoutMs,
        statementTimeoutMs: database.statementTimeoutMs,
        lockTimeoutMs: database.lockTimeoutMs,
        idleInTransactionTimeoutMs: database.idleInTransactionTimeoutMs,
        preparedStatements: database.preparedStatements,
        pipeline: database.pipeline,
        closeTimeoutMs: adapterCloseMs(shutdown.closeTimeoutMs),
      },
      logger,
    );
  }
  const { createPgliteDb } = await import('./db/pglite.adapter.js');
  return createPgliteDb(database.dataDir);
}

/** Settings that work but defeat their purpose; not invalid, so a warning rather than exit 78. */
function warnAboutSettings(config: Readonly<AppConfig>, logger: Logger): void {
  const { lockTimeoutMs } = config.database;
  if (lockTimeoutMs >= config.http.handlerTimeoutMs) {
    logger.warn('orders.config_warning', {
      reason:
        'DATABASE_LOCK_TIMEOUT_MS is not below REQUEST_TIMEOUT_MS: a request waiting for a running request with its Idempotency-Key times out (504) instead of answering 409',
      lock_timeout_ms: lockTimeoutMs,
      request_timeout_ms: config.http.handlerTimeoutMs,
    });
  }
}

export function ordersModule(context: ModuleContext): RuntimeModule {
  const { config } = context.loaded;
  const { logger, telemetry } = context;
  const slot = new DatabaseSlot();
  // Events waiting in the outbox, as the relay and the purge last counted them.
  const backlog = { events: 0 };
  warnAboutSettings(config, logger);

  const health = createDatabaseHealth(
    (up, reason) => context.reportDependency(DATABASE, up, reason),
    logger,
  );
  const policy = createDependencyPolicy(databasePolicyOptions(config), {
    logger,
    onBreakerState: (state) => telemetry.metrics.setBreakerState(DATABASE, state),
    onAvailability: (available, reason) => health.breakerChanged(available, reason),
  });
  const database = createDatabase(
    () => slot.current(),
    policy,
    telemetry.tracer,
    () => health.pingDown(),
  );
  // Read at each scrape from memory; the purge worker refreshes it.
  telemetry.metrics.observeOutboxBacklog(() => backlog.events);

  const pinger = createDatabasePinger({
    db: () => slot.current(),
    health,
    policy,
    intervalMs: config.database.healthIntervalMs,
    timeoutMs: Math.min(config.database.healthIntervalMs, config.database.connectTimeoutMs),
  });
  const purge = createIdempotencyPurgeWorker({
    database,
    logger,
    intervalMs: config.orders.idempotencyPurgeIntervalMs,
    onBacklog: (value) => {
      backlog.events = value;
    },
  });

  const closeMs = resourceCloseMs(config.shutdown.closeTimeoutMs);
  const broker =
    config.nats.url === ''
      ? undefined
      : createBroker({
          servers: config.nats.url,
          subjectPrefix: config.nats.subjectPrefix,
          paymentsAckWaitMs: config.nats.paymentsAckWaitMs,
          logger,
          onAvailability: (up, reason) => context.reportDependency(BROKER, up, reason),
          closeTimeoutMs: adapterCloseMs(config.shutdown.closeTimeoutMs),
        });
  const relay =
    broker &&
    createOutboxRelay({
      database,
      broker,
      logger,
      tracer: telemetry.tracer,
      intervalMs: config.nats.relayIntervalMs,
      onBacklog: (value) => {
        backlog.events = value;
      },
      onPublished: (count) => telemetry.metrics.countBrokerMessages('outbox', 'published', count),
    });
  const payments =
    broker &&
    createPaymentsConsumer({
      database,
      broker,
      logger,
      tracer: telemetry.tracer,
      maxDeliver: config.nats.paymentsMaxDeliver,
      onResult: (result) => telemetry.metrics.countBrokerMessages('payments', result),
    });

  return {
    routers: [
      ordersRouter({
        createOrder: createOrderUseCase({
          database,
          logger,
          retentionMs: config.orders.idempotencyRetentionMs,
          onCreated: relay === undefined ? undefined : () => relay.wake(),
        }),
        getOrder: getOrderUseCase({ database }),
      }),
    ],
    startupChecks: [
      databaseStartupCheck({
        open: () => openDb(config, logger),
        migrationsDir: migrationsDir(),
        startupTimeoutMs: config.lifecycle.startupTimeoutMs,
        connectTimeoutMs: config.database.connectTimeoutMs,
        logger,
        eventLoop: telemetry.eventLoop,
        maxEventLoopDelayMs: config.limits.maxEventLoopDelayMs,
        onOpen: (value) => {
          slot.opened(value);
        },
        onReady: () => {
          slot.ready();
          health.started();
          pinger.start();
          purge.start();
          if (broker === undefined) {
            logger.info('outbox.relay_disabled', {
              reason: 'NATS_URL is empty: events stay in the outbox (ops_outbox_backlog)',
            });
          } else {
            broker.start();
            relay?.start();
            payments?.start();
          }
        },
      }),
    ],
    workers: [
      pinger,
      purge,
      ...(relay === undefined ? [] : [relay]),
      ...(payments === undefined ? [] : [payments]),
    ],
    // Closed in this order, after the drain (the workers above have stopped): the database
    // first, the broker last.
    resources: [
      { name: DATABASE, closeTimeoutMs: closeMs, close: () => slot.close() },
      ...(broker === undefined
        ? []
        : [{ name: BROKER, closeTimeoutMs: closeMs, close: () => broker.close() }]),
    ],
    essentialDependencies: [DATABASE],
  };
}
