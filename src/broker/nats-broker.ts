// The connection to NATS JetStream (NATS_URL), shared by the outbox relay and the payments
// consumer. The broker is optional (contract section 6): it connects in the background, never
// holds up startup or readiness, keeps reconnecting while it is away, and reports itself to the
// lifecycle machine as the non-essential dependency `broker` (shown in /ready and /lifecycle).
// Once connected it makes sure the streams exist:
//
//   ORDERS    subjects orders.created                 (the outbox relay publishes here)
//   PAYMENTS  subjects payments.captured, payments.dlq (consumed here; failures dead-lettered)
//
// With NATS_SUBJECT_PREFIX=p the subjects are p.orders.created, ... and the streams P_ORDERS, ...
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  Events,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  StorageType,
} from 'nats';
import type { Logger } from '../telemetry/logger';

export const BROKER = 'broker';

export const SUBJECTS = {
  ordersCreated: 'orders.created',
  paymentsCaptured: 'payments.captured',
  paymentsDlq: 'payments.dlq',
} as const;

export const PAYMENTS_CONSUMER = 'ops-service-payments';

/** How long JetStream remembers a message id to drop a republished duplicate. */
export const DUPLICATE_WINDOW_MS = 10 * 60_000;

export interface BrokerOptions {
  /** NATS_URL: one or more servers, comma separated. */
  readonly servers: string;
  readonly subjectPrefix: string;
  readonly paymentsAckWaitMs: number;
  readonly logger: Logger;
  /** Up when connected with its streams in place; down with the reason otherwise. */
  readonly onAvailability: (up: boolean, reason: string) => void;
  /** How long close() waits for the connection to drain. */
  readonly closeTimeoutMs: number;
  /** Pause between connection attempts while the broker cannot be reached. */
  readonly retryDelayMs?: number;
}

export interface Naming {
  subject(name: string): string;
  stream(base: 'ORDERS' | 'PAYMENTS'): string;
}

export function namingOf(prefix: string): Naming {
  return {
    subject: (name) => (prefix === '' ? name : `${prefix}.${name}`),
    stream: (base) =>
      prefix === '' ? base : `${prefix.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}_${base}`,
  };
}

export interface Broker {
  readonly naming: Naming;
  /** Starts connecting (in the background); idempotent. */
  start(): void;
  /** The JetStream client while connected with the streams in place, else undefined. */
  jetstream(): JetStreamClient | undefined;
  /** Calls `listener` at each (re)connection, and at once if connected now. Returns an unsubscribe. */
  onConnected(listener: () => void): () => void;
  /** Drains and closes the connection; bounded by closeTimeoutMs; idempotent. */
  close(): Promise<void>;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function ensureStream(
  manager: JetStreamManager,
  name: string,
  subjects: string[],
): Promise<void> {
  try {
    await manager.streams.info(name);
  } catch (error) {
    if (!/stream not found/i.test(describe(error))) throw error;
    await manager.streams.add({
      name,
      subjects,
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    });
  }
}

async function ensureConsumer(
  manager: JetStreamManager,
  stream: string,
  filterSubject: string,
  ackWaitMs: number,
): Promise<void> {
  const config = {
    durable_name: PAYMENTS_CONSUMER,
    filter_subject: filterSubject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    // The consumer counts deliveries and dead-letters itself (PAYMENTS_MAX_DELIVER): JetStream's
    // own limit would silently stop a message whose last delivery was cut off by a crash.
    max_deliver: -1,
  };
  try {
    await manager.consumers.info(stream, PAYMENTS_CONSUMER);
    await manager.consumers.update(stream, PAYMENTS_CONSUMER, { ack_wait: config.ack_wait });
  } catch (error) {
    if (!/consumer not found/i.test(describe(error))) throw error;
    await manager.consumers.add(stream, config);
  }
}

export function createBroker(options: BrokerOptions): Broker {
  const { logger } = options;
  const naming = namingOf(options.subjectPrefix);
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const listeners = new Set<() => void>();
  let connection: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let started = false;
  let closing: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const available = (client: JetStreamClient): void => {
    js = client;
    options.onAvailability(true, 'connected');
    for (const listener of listeners) listener();
  };
  const unavailable = (reason: string): void => {
    js = undefined;
    options.onAvailability(false, reason);
  };

  async function prepare(nc: NatsConnection): Promise<JetStreamClient> {
    const manager = await nc.jetstreamManager({ timeout: 5_000 });
    await ensureStream(manager, naming.stream('ORDERS'), [naming.subject(SUBJECTS.ordersCreated)]);
    await ensureStream(manager, naming.stream('PAYMENTS'), [
      naming.subject(SUBJECTS.paymentsCaptured),
      naming.subject(SUBJECTS.paymentsDlq),
    ]);
    await ensureConsumer(
      manager,
      naming.stream('PAYMENTS'),
      naming.subject(SUBJECTS.paymentsCaptured),
      options.paymentsAckWaitMs,
    );
    return nc.jetstream({ timeout: 5_000 });
  }

  async function watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === Events.Disconnect) {
        logger.warn('broker.disconnected', { server: nc.getServer() });
        unavailable('disconnected, reconnecting');
      } else if (status.type === Events.Reconnect) {
        logger.info('broker.reconnected', { server: nc.getServer() });
        try {
          available(await prepare(nc));
        } catch (error) {
          unavailable(describe(error));
        }
      }
    }
  }

  async function attempt(): Promise<void> {
    if (closing !== undefined) return;
    try {
      const nc = await connect({
        servers: options.servers.split(',').map((server) => server.trim()),
        name: 'ops-service',
        timeout: 2_000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: retryDelayMs,
      });
      if (closing !== undefined) {
        await nc.close();
        return;
      }
      connection = nc;
      void watch(nc);
      void nc.closed().then((error) => {
        connection = undefined;
        unavailable(error === undefined ? 'closed' : describe(error));
        // Closed by the server or by giving up, not by us: connect again.
        if (closing === undefined) schedule();
      });
      const client = await prepare(nc);
      logger.info('broker.connected', {
        server: nc.getServer(),
        orders_stream: naming.stream('ORDERS'),
        payments_stream: naming.stream('PAYMENTS'),
      });
      available(client);
    } catch (error) {
      logger.warn('broker.connect_failed', {
        reason: describe(error),
        retry_in_ms: retryDelayMs,
        error_code: 'DEPENDENCY_UNAVAILABLE',
        error_category: 'expected',
      });
      unavailable(describe(error));
      const nc = connection;
      connection = undefined;
      // A connection whose streams could not be prepared is dropped and tried again whole.
      if (nc !== undefined) await nc.close().catch(() => undefined);
      else schedule();
    }
  }

  function schedule(): void {
    if (closing !== undefined || retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void attempt();
    }, retryDelayMs);
    retryTimer.unref();
  }

  return {
    naming,
    start() {
      if (started) return;
      started = true;
      void attempt();
    },
    jetstream: () => js,
    onConnected(listener) {
      listeners.add(listener);
      if (js !== undefined) listener();
      return () => listeners.delete(listener);
    },
    close() {
      closing ??= (async () => {
        if (retryTimer !== undefined) clearTimeout(retryTimer);
        const nc = connection;
        js = undefined;
        if (nc === undefined) return;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), options.closeTimeoutMs);
        });
        const result = await Promise.race([nc.drain().then(() => 'drained' as const), timedOut])
          .catch(() => 'error' as const)
          .finally(() => clearTimeout(timer));
        if (result !== 'drained') await nc.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
