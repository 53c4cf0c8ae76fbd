// The outbox relay and the payments consumer against the real NATS JetStream and PostgreSQL on
// this machine (contract section 6): orders.created published once per order with message id =
// event id; payments.captured applied exactly once, acknowledged after the commit, dead-lettered
// to payments.dlq at once when it can never apply and after PAYMENTS_MAX_DELIVER deliveries when
// it keeps failing; a broker that is away loses nothing. Tenants (issue #15): the event names the
// order's tenant, and a payment applies to an order of any tenant (it names the order only).
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { StoredMsg } from 'nats';
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { type Broker, createBroker, PAYMENTS_CONSUMER } from '../../../src/broker/nats-broker';
import { currentLogFields, requestScope } from '../../../src/telemetry/request-scope';
import type { Database } from '../../../src/orders/db/database';
import { migrate, readMigrations } from '../../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../../src/orders/orders.module';
import { DEFAULT_TENANT } from '../../../src/http/caller';
import { createOrderUseCase } from '../../../src/orders/use-cases/create-order.use-case';
import {
  createOutboxRelay,
  type RelayWorker,
} from '../../../src/orders/workers/outbox-relay.worker';
import {
  createPaymentsConsumer,
  type PaymentResult,
  type PaymentsConsumer,
} from '../../../src/orders/workers/payments-consumer.worker';
import { captureLogger, type CapturedLogger } from '../../helpers/log-capture';
import { type DatabaseStack, databaseStack } from '../support/database-stack';
import { eventually, openTestNats, TEST_NATS_URL, type TestNats } from '../support/nats';
import { orderBody } from '../support/orders-client';
import { startTcpProxy } from '../support/tcp-proxy';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

jest.setTimeout(30_000);

const MAX_DELIVER = 3;

let testDb: TestDatabase;
let stack: DatabaseStack;
let nats: TestNats;
let log: CapturedLogger;
let broker: Broker;
let relay: RelayWorker;
let consumer: PaymentsConsumer;
const results: PaymentResult[] = [];
let backlog = -1;

function newBroker(servers: string, logger = log.logger): Broker {
  return createBroker({
    servers,
    subjectPrefix: nats.prefix,
    paymentsAckWaitMs: 5_000,
    logger,
    onAvailability: () => undefined,
    closeTimeoutMs: 1_000,
    retryDelayMs: 100,
  });
}

function newRelay(target: Broker, database: Database = stack.database): RelayWorker {
  return createOutboxRelay({
    database,
    broker: target,
    logger: log.logger,
    tracer: trace.getTracer('test'),
    intervalMs: 60_000,
    onBacklog: (value) => {
      backlog = value;
    },
  });
}

function newConsumer(database: Database = stack.database): PaymentsConsumer {
  return createPaymentsConsumer({
    database,
    broker,
    logger: log.logger,
    tracer: trace.getTracer('test'),
    maxDeliver: MAX_DELIVER,
    onResult: (result) => results.push(result),
  });
}

async function createOrder(
  customer = 'customer-nats',
  tenant = DEFAULT_TENANT,
): Promise<{ id: string; total: number }> {
  const createOrder = createOrderUseCase({
    database: stack.database,
    logger: log.logger,
    retentionMs: 86_400_000,
  });
  const result = await createOrder({
    tenant,
    idempotencyKey: `nats-${randomUUID()}`,
    input: orderBody(customer, 2),
  });
  const order = JSON.parse(result.response.body) as { id: string; total_cents: number };
  return { id: order.id, total: order.total_cents };
}

async function orderStatus(id: string): Promise<string | undefined> {
  const rows = await testDb.query<{ status: string }>('SELECT status FROM orders WHERE id = $1', [
    id,
  ]);
  return rows[0]?.status;
}

const events = (name: string) => log.records().filter((r) => r.event === name);

// Spans of the consumer and of the database statements it runs, kept in memory. No global
// propagator is registered, as in the service: the consumer reads traceparent itself.
const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
);

beforeAll(async () => {
  testDb = await createTestDatabase();
  stack = databaseStack(testDb.url);
  await migrate(stack.db, readMigrations(migrationsDir()));
  nats = await openTestNats();
  // As the service's logger: lines carry the current scope's ids.
  log = captureLogger({ scope: currentLogFields });
  broker = newBroker(TEST_NATS_URL);
  broker.start();
  await eventually('the broker to connect', () => broker.jetstream());
  relay = newRelay(broker);
  consumer = newConsumer();
  consumer.start();
});
afterAll(async () => {
  await consumer?.stop();
  await relay?.stop();
  await broker?.close();
  await nats?.close();
  await stack?.close();
  await testDb?.drop();
});

describe('the outbox relay', () => {
  it('when orders are in the outbox, then each event is published once to orders.created with message id = event id, and marked published', async () => {
    const orders = [await createOrder(), await createOrder(), await createOrder()];
    expect(await relay.runOnce()).toBe(3);
    const rows = await testDb.query<{ event_id: string; aggregate_id: string; published: boolean }>(
      'SELECT event_id, aggregate_id, published_at IS NOT NULL AS published FROM outbox ORDER BY created_at',
    );
    expect(rows.map((row) => row.aggregate_id)).toEqual(orders.map((order) => order.id));
    expect(rows.every((row) => row.published)).toBe(true);
    const messages = await nats.messages('ORDERS', 'orders.created');
    expect(messages.map((m) => m.header.get('Nats-Msg-Id'))).toEqual(rows.map((r) => r.event_id));
    // Each message carries its PRODUCER span's W3C trace context.
    const producers = spans.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER);
    expect(messages.map((m) => m.header.get('traceparent'))).toEqual(
      producers.slice(-3).map((s) => `00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`),
    );
    const first = messages[0]?.json<{ event_type: string; order: { id: string } }>();
    expect(first).toMatchObject({
      event_type: 'order.created',
      tenant_id: DEFAULT_TENANT,
      order: { id: orders[0]?.id },
    });
    expect(backlog).toBe(0);
    expect(events('outbox.published').at(-1)).toMatchObject({ events: 3, duplicates: 0 });
  });

  it("when an order is created while serving a request, then its publish span and message continue that request's trace", async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const serverSpanId = 'b7ad6b7169203331';
    const context = trace.setSpanContext(ROOT_CONTEXT, {
      traceId,
      spanId: serverSpanId,
      traceFlags: TraceFlags.SAMPLED,
    });
    const order = await requestScope.run({ fields: { request_id: 'req-trace' }, context }, () =>
      createOrder('customer-traced'),
    );
    spans.reset();
    expect(await relay.runOnce()).toBe(1);
    const producer = spans.getFinishedSpans().find((s) => s.kind === SpanKind.PRODUCER);
    expect(producer?.spanContext().traceId).toBe(traceId);
    expect(producer?.parentSpanContext?.spanId).toBe(serverSpanId);
    const message = (await nats.messages('ORDERS', 'orders.created')).find(
      (m) => m.json<{ order: { id: string } }>().order.id === order.id,
    );
    expect(message?.header.get('traceparent')).toBe(
      `00-${traceId}-${producer?.spanContext().spanId}-01`,
    );
  });

  it('when an event is published again (a crash between publish and mark), then the broker drops the duplicate', async () => {
    const before = (await nats.messages('ORDERS', 'orders.created')).length;
    await testDb.query('UPDATE outbox SET published_at = NULL');
    const republished = await relay.runOnce();
    expect(republished).toBe(before);
    expect(await nats.messages('ORDERS', 'orders.created')).toHaveLength(before);
    expect(events('outbox.published').at(-1)).toMatchObject({ duplicates: before });
  });

  it('when the broker is away, then events stay in the outbox and are published once it is back', async () => {
    const proxy = await startTcpProxy({
      host: '127.0.0.1',
      port: Number(new URL(TEST_NATS_URL).port),
    });
    await proxy.cut();
    const away = newBroker(`nats://127.0.0.1:${proxy.port}`);
    const awayRelay = newRelay(away);
    try {
      away.start();
      awayRelay.start();
      const order = await createOrder('customer-away');
      expect(await awayRelay.runOnce()).toBe(0);
      expect(backlog).toBe(1);
      await eventually('a failed connection attempt', () =>
        events('broker.connect_failed').length > 0 ? true : undefined,
      );
      await proxy.restore();
      // The relay runs on its own at the (re)connection.
      await eventually('the event to be published', async () => {
        const [row] = await testDb.query<{ published: boolean }>(
          'SELECT published_at IS NOT NULL AS published FROM outbox WHERE aggregate_id = $1',
          [order.id],
        );
        return row?.published === true ? true : undefined;
      });
      const messages = await nats.messages('ORDERS', 'orders.created');
      expect(
        messages.filter((m) => m.json<{ order: { id: string } }>().order.id === order.id),
      ).toHaveLength(1);
    } finally {
      await awayRelay.stop();
      await away.close();
      await proxy.close();
    }
  });
});

describe('the payments consumer', () => {
  const payment = (orderId: string, amount: number, paymentId = `pay-${randomUUID()}`) => ({
    order_id: orderId,
    payment_id: paymentId,
    amount_cents: amount,
  });

  async function dlq() {
    return nats.messages('PAYMENTS', 'payments.dlq');
  }

  /** The order_id of a dead letter, when its body is a JSON object with one. */
  function orderIdOf(letter: StoredMsg): unknown {
    try {
      return letter.json<{ order_id?: unknown }>().order_id;
    } catch {
      return undefined;
    }
  }

  async function pending(): Promise<number> {
    const info = await nats.jsm.consumers.info(nats.naming.stream('PAYMENTS'), PAYMENTS_CONSUMER);
    return info.num_ack_pending + info.num_pending;
  }

  it('when payments.captured arrives for a pending order with its total, then the order becomes paid and the message is acknowledged', async () => {
    const order = await createOrder();
    await nats.publish('payments.captured', payment(order.id, order.total));
    await eventually('the order to be paid', async () =>
      (await orderStatus(order.id)) === 'paid' ? true : undefined,
    );
    await eventually('the message to be acknowledged', async () =>
      (await pending()) === 0 ? true : undefined,
    );
    expect(events('payment.applied').at(-1)).toMatchObject({
      order_id: order.id,
      amount_cents: order.total,
    });
  });

  it("when payments.captured arrives for another tenant's order, then it applies all the same (the broker is trusted; payments name the order only)", async () => {
    const order = await createOrder('customer-tenant', 'tenant-nats');
    await nats.publish('payments.captured', payment(order.id, order.total));
    await eventually('the order to be paid', async () =>
      (await orderStatus(order.id)) === 'paid' ? true : undefined,
    );
    await eventually('the message to be acknowledged', async () =>
      (await pending()) === 0 ? true : undefined,
    );
    expect(events('payment.applied').at(-1)).toMatchObject({ order_id: order.id });
  });

  it('when a payment carries a traceparent, then its CONSUMER span continues that trace, its statements are child spans, and its log lines carry the ids', async () => {
    const order = await createOrder();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const captured = payment(order.id, order.total);
    spans.reset();
    await nats.publish('payments.captured', captured, {
      msgId: `capture-${captured.payment_id}`,
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    const applied = await eventually('payment.applied', () =>
      events('payment.applied').find((e) => e.payment_id === captured.payment_id),
    );
    const consumerSpan = spans.getFinishedSpans().find((s) => s.kind === SpanKind.CONSUMER);
    expect(consumerSpan).toMatchObject({
      name: `process ${nats.naming.subject('payments.captured')}`,
      attributes: { 'messaging.system': 'nats', 'ops.payment.result': 'paid' },
    });
    expect(consumerSpan?.spanContext().traceId).toBe(traceId);
    expect(consumerSpan?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    const statements = spans
      .getFinishedSpans()
      .filter((s) => s.attributes['db.system.name'] === 'postgresql')
      .map((s) => s.name);
    expect(statements).toEqual(
      expect.arrayContaining([
        'SELECT orders',
        'INSERT payments',
        'UPDATE orders',
        'apply payment',
      ]),
    );
    expect(applied).toMatchObject({
      request_id: `capture-${captured.payment_id}`,
      trace_id: traceId,
      span_id: consumerSpan?.spanContext().spanId,
    });
  });

  it('when the same payment is delivered twice, then the order is paid once and the second is acknowledged as a duplicate', async () => {
    const order = await createOrder();
    const captured = payment(order.id, order.total);
    await nats.publish('payments.captured', captured);
    await nats.publish('payments.captured', captured);
    await eventually('the duplicate', () =>
      events('payment.duplicate').some((e) => e.payment_id === captured.payment_id)
        ? true
        : undefined,
    );
    const rows = await testDb.query('SELECT payment_id FROM payments WHERE order_id = $1', [
      order.id,
    ]);
    expect(rows).toHaveLength(1);
    expect(await orderStatus(order.id)).toBe('paid');
    await eventually('both messages to be acknowledged', async () =>
      (await pending()) === 0 ? true : undefined,
    );
  });

  it('when a message is not a valid payment, then it goes to payments.dlq at once with the reason, and the consumer goes on', async () => {
    const before = (await dlq()).length;
    await nats.publish('payments.captured', new TextEncoder().encode('{not json'));
    await nats.publish('payments.captured', { order_id: 'x', payment_id: '', amount_cents: -1 });
    const letters = await eventually('two dead letters', async () => {
      const found = await dlq();
      return found.length >= before + 2 ? found.slice(before) : undefined;
    });
    expect(letters.map((m) => m.header.get('Ops-Dlq-Reason'))).toEqual([
      'the message is not UTF-8 JSON',
      'order_id must be a UUID; payment_id must be a string of 1-255 characters; amount_cents must be a non-negative integer',
    ]);
    expect(letters.map((m) => m.header.get('Ops-Deliveries'))).toEqual(['1', '1']);
    expect(new TextDecoder().decode(letters[0]?.data)).toBe('{not json');
    // Terminated, not left waiting for redelivery.
    await eventually('the dead letters to leave the consumer', async () =>
      (await pending()) === 0 ? true : undefined,
    );
    // Still consuming.
    const order = await createOrder();
    await nats.publish('payments.captured', payment(order.id, order.total));
    await eventually('the next payment', async () =>
      (await orderStatus(order.id)) === 'paid' ? true : undefined,
    );
  });

  it('when a payment id holds text the database cannot store (a NUL), then it is dead-lettered at once, never retried against the database', async () => {
    const order = await createOrder();
    await nats.publish('payments.captured', {
      order_id: order.id,
      payment_id: 'pay\u0000ment',
      amount_cents: order.total,
    });
    const letter = await eventually('the dead letter', async () =>
      (await dlq()).find((m) => orderIdOf(m) === order.id),
    );
    expect(letter.header.get('Ops-Dlq-Reason')).toBe(
      'payment_id must not contain control characters (U+0000-U+001F, U+007F)',
    );
    expect(letter.header.get('Ops-Deliveries')).toBe('1');
    expect(await orderStatus(order.id)).toBe('pending');
  });

  it('when the amount is not the order total, then it is dead-lettered at once and the order stays pending', async () => {
    const order = await createOrder();
    await nats.publish('payments.captured', payment(order.id, order.total + 1));
    const letter = await eventually('the dead letter', async () =>
      (await dlq()).find((m) => orderIdOf(m) === order.id),
    );
    expect(letter.header.get('Ops-Dlq-Reason')).toBe(
      `amount_cents ${order.total + 1} is not the order total ${order.total}`,
    );
    expect(events('payment.dead_lettered').at(-1)).toMatchObject({
      level: 'warn',
      deliveries: 1,
      dlq_subject: nats.naming.subject('payments.dlq'),
      reason: `amount_cents ${order.total + 1} is not the order total ${order.total}`,
    });
    expect(await orderStatus(order.id)).toBe('pending');
  });

  it('when a message keeps failing (no such order), then it is retried with a delay and dead-lettered after PAYMENTS_MAX_DELIVER deliveries', async () => {
    const missing = randomUUID();
    const startedAt = Date.now();
    await nats.publish('payments.captured', payment(missing, 100));
    const letter = await eventually(
      'the dead letter',
      async () => (await dlq()).find((m) => orderIdOf(m) === missing),
      10_000,
    );
    expect(letter.header.get('Ops-Deliveries')).toBe(String(MAX_DELIVER));
    expect(letter.header.get('Ops-Dlq-Reason')).toBe(
      `order ${missing} not found (after ${MAX_DELIVER} deliveries)`,
    );
    // Two retries in between, 0.5 s then 1 s apart.
    const retries = events('payment.retry').filter(
      (e) => e.reason === `order ${missing} not found`,
    );
    expect(retries.map((e) => e.retry_in_ms)).toEqual([500, 1000]);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_400);
    expect(results).toContain('dead_lettered');
  });

  it('when the consumer is stopped while a payment is being applied, then stop() resolves after its commit and acknowledgement (the checkpoint)', async () => {
    // Every message so far was acknowledged or terminated: nothing waits for redelivery.
    await eventually('earlier messages to settle', async () =>
      (await pending()) === 0 ? true : undefined,
    );
    await consumer.stop();
    let entered: () => void = () => undefined;
    const inTransaction = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const slow: Database = {
      run: (work, options) => stack.database.run(work, options),
      transaction: (name, work, options) =>
        stack.database.transaction(
          name,
          async (session) => {
            entered();
            await delay(300);
            return work(session);
          },
          options,
        ),
    };
    const slowConsumer = newConsumer(slow);
    slowConsumer.start();
    const order = await createOrder();
    await nats.publish('payments.captured', payment(order.id, order.total));
    await inTransaction;
    await slowConsumer.stop();
    expect(await orderStatus(order.id)).toBe('paid');
    expect(await pending()).toBe(0);
    // A fresh consumer takes over from the checkpoint.
    consumer = newConsumer();
    consumer.start();
  });
});
