// The whole service with NATS_URL (contract section 6), as a child process on the local
// PostgreSQL and NATS JetStream: an order's event reaches orders.created, a payments.captured
// message makes the order paid, the broker shows in /lifecycle as a non-essential dependency, and
// SIGTERM stops the relay and the consumer in the drain and closes the broker connection before
// the telemetry flush. Without a reachable broker the service still starts and serves.
import { randomUUID } from 'node:crypto';
import { freePort } from '../helpers/ports';
import { eventually, openTestNats, TEST_NATS_URL, type TestNats } from './support/nats';
import { getPath, orderBody, postOrder, readiness } from './support/orders-client';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startService } from '../helpers/service-process';

jest.setTimeout(60_000);

let database: TestDatabase;
let nats: TestNats;
beforeAll(async () => {
  database = await createTestDatabase();
  nats = await openTestNats();
});
afterAll(async () => {
  await nats.close();
  await database.drop();
});

it('when NATS_URL is set, then orders are published to orders.created, payments.captured makes them paid, and SIGTERM closes the broker after the drain', async () => {
  const { service, port, opsPort } = await startService({
    RATE_LIMIT_MAX: '0',
    DATABASE_URL: database.url,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: nats.prefix,
  });
  try {
    await service.waitForEvent('broker.connected');
    const created = await postOrder(
      port,
      `broker-${randomUUID()}`,
      orderBody('customer-broker', 2),
    );
    expect(created.status).toBe(201);
    const order = created.json as { id: string; total_cents: number };

    // Published right after the commit, not at the next interval.
    const message = await eventually('the order.created message', async () =>
      (await nats.messages('ORDERS', 'orders.created')).find(
        (m) => m.json<{ order: { id: string } }>().order.id === order.id,
      ),
    );
    expect(message.json()).toMatchObject({ event_type: 'order.created', order: created.json });

    await nats.publish('payments.captured', {
      order_id: order.id,
      payment_id: `pay-${randomUUID()}`,
      amount_cents: order.total_cents,
    });
    const paid = await eventually('the order to be paid', async () => {
      const res = await getPath(port, `/v1/orders/${order.id}`);
      return (res.json as { status?: string } | undefined)?.status === 'paid' ? res : undefined;
    });
    expect(paid.json).toMatchObject({ id: order.id, status: 'paid' });

    const lifecycle = await getPath(opsPort, '/lifecycle');
    expect(lifecycle.json).toMatchObject({
      dependencies: { broker: { essential: false, status: 'up' } },
    });
    const metrics = await getPath(opsPort, '/metrics');
    expect(metrics.text).toMatch(
      /ops_broker_messages_total\{[^}]*flow="outbox"[^}]*outcome="published"[^}]*\} 1/,
    );
    expect(metrics.text).toMatch(
      /ops_broker_messages_total\{[^}]*flow="payments"[^}]*outcome="paid"[^}]*\} 1/,
    );
  } finally {
    service.kill('SIGTERM');
  }
  expect(await service.exited()).toBe(0);
  const events = service.events();
  const at = (name: string) => events.indexOf(name);
  const closed = service.lines.filter((l) => l.event === 'resource.closed').map((l) => l.resource);
  expect(closed).toEqual(expect.arrayContaining(['database', 'broker']));
  expect(at('shutdown.drain_complete')).toBeLessThan(at('resource.closed'));
  expect(events.lastIndexOf('resource.closed')).toBeLessThan(at('telemetry.flush'));
  expect(service.lines.find((l) => l.event === 'payment.applied')).toMatchObject({
    level: 'info',
    amount_cents: expect.any(Number) as unknown,
    stream_sequence: expect.any(Number) as unknown,
  });
});

it('when NATS_URL points at a broker that does not answer, then the service still becomes ready and serves orders, and the events wait in the outbox', async () => {
  const deadPort = await freePort();
  const { service, port, opsPort } = await startService({
    RATE_LIMIT_MAX: '0',
    DATABASE_URL: database.url,
    NATS_URL: `nats://127.0.0.1:${deadPort}`,
    NATS_SUBJECT_PREFIX: nats.prefix,
  });
  try {
    expect((await readiness(port)).status).toBe(200);
    const created = await postOrder(port, `no-broker-${randomUUID()}`, orderBody());
    expect(created.status).toBe(201);
    await service.waitForEvent('broker.connect_failed');
    const lifecycle = await getPath(opsPort, '/lifecycle');
    expect(lifecycle.json).toMatchObject({
      dependencies: { broker: { essential: false, status: 'down' } },
    });
    const [row] = await database.query<{ published: boolean }>(
      'SELECT published_at IS NOT NULL AS published FROM outbox WHERE aggregate_id = $1',
      [(created.json as { id: string }).id],
    );
    expect(row).toEqual({ published: false });
  } finally {
    service.kill('SIGTERM');
  }
  expect(await service.exited()).toBe(0);
});
