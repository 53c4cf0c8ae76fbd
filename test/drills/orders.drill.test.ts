// Shutdown drill for the orders API: SIGTERM while 16 keep-alive connections send POST
// /v1/orders (a new Idempotency-Key each). The load stops sending shortly after the signal, before
// SHUTDOWN_DELAY_MS (the load balancer has moved on); some orders are still waiting on the
// database when intake stops. Everything sent is answered, every 201 is committed, the database
// pool closes after the drain and before the telemetry flush, and the exit code is 0.
import http from 'node:http';
import pg from 'pg';
import { CONTRACT_SHUTDOWN_ORDER, contractEvents, delay, timeOf } from './drill-kit';
import { orderBody, type Outcome, postOrder } from '../orders/support/orders-client';
import { createTestDatabase, type TestDatabase } from '../orders/support/test-database';
import { startService } from '../helpers/service-process';

jest.setTimeout(30_000);

const CONNECTIONS = 16;
const DELAY_MS = 1_000;
const LAG_MS = 500;

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

it('when SIGTERM arrives during a load of POST /v1/orders, then nothing is dropped, every 201 is committed, the pool closes before the flush and the exit code is 0', async () => {
  const { service, port } = await startService({
    RATE_LIMIT_MAX: '0',
    DATABASE_URL: database.url,
    SHUTDOWN_DELAY_MS: String(DELAY_MS),
    SHUTDOWN_DRAIN_TIMEOUT_MS: '5000',
    SHUTDOWN_FLUSH_TIMEOUT_MS: '1000',
    SHUTDOWN_HARD_STOP_MS: '10000',
    // Statements wait for the blocker's table lock below instead of failing after 250 ms.
    DATABASE_LOCK_TIMEOUT_MS: '5000',
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const outcomes: Outcome[] = [];
  let sending = true;
  const loops = Array.from({ length: CONNECTIONS }, async (_, loop) => {
    for (let n = 0; sending; n += 1) {
      const key = `drill-${loop}-${n}`;
      outcomes.push(await postOrder(port, key, orderBody(`customer-${key}`, 2), agent));
    }
  });
  // A client of the test holds the outbox table for a while around intake stop: order
  // transactions wait on it, so orders are still in flight when the listener closes, and the
  // drain has database work to wait for.
  const blocker = new pg.Client({ connectionString: database.url });
  await blocker.connect();
  let fresh: Promise<Outcome> | undefined;
  try {
    await delay(500);
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE outbox IN EXCLUSIVE MODE');
    await delay(100);

    const signalAt = Date.now();
    service.kill('SIGTERM');
    await service.waitForEvent('shutdown.begin');
    // During the delay a new connection is still served (load balancers still route here).
    fresh = postOrder(port, 'drill-fresh', orderBody('customer-fresh'), false);
    await delay(Math.max(0, LAG_MS - (Date.now() - signalAt)));
    sending = false;
    const stopped = await service.waitForEvent('shutdown.intake_stopped');
    expect(stopped.in_flight).toBeGreaterThan(0);
    await delay(200);
  } finally {
    await blocker.query('COMMIT').catch(() => undefined);
    await blocker.end();
  }
  await Promise.all(loops);
  if (fresh !== undefined) outcomes.push(await fresh);
  agent.destroy();
  const code = await service.exited();

  const dropped = outcomes.filter((o) => o.error !== undefined);
  const created = outcomes.filter((o) => o.status === 201);
  const ids = created.map((o) => (o.json as { id: string }).id);
  const committed = await database.query<{ id: string }>(
    'SELECT id FROM orders WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const [orders] = await database.query<{ count: string }>('SELECT count(*) FROM orders');
  const [events] = await database.query<{ count: string }>('SELECT count(*) FROM outbox');
  const intakeStopped = service.lines.find((l) => l.event === 'shutdown.intake_stopped');
  const drained = service.lines.find((l) => l.event === 'shutdown.drain_complete');

  process.stdout.write(
    `orders drill: ${outcomes.length} requests, ${created.length} x 201, ${dropped.length} dropped, ` +
      `${String(intakeStopped?.in_flight)} in flight at intake stop, drain ${String(drained?.drain_ms)} ms, ` +
      `${committed.length} of the 201s committed, exit ${code}\n`,
  );
  expect(code).toBe(0);
  expect(dropped).toEqual([]);
  expect(outcomes.every((o) => o.status === 201)).toBe(true);
  expect(outcomes.length).toBeGreaterThan(CONNECTIONS);
  expect(committed).toHaveLength(created.length);
  expect(Number(orders?.count)).toBe(created.length);
  expect(Number(events?.count)).toBe(created.length);
  expect(contractEvents(service)).toEqual(CONTRACT_SHUTDOWN_ORDER);
  // The pool closes after the drain (so the last orders could commit) and before the flush.
  const events_ = service.events();
  const closedAt = events_.indexOf('resource.closed');
  expect(closedAt).toBeGreaterThan(events_.indexOf('shutdown.drain_complete'));
  expect(closedAt).toBeLessThan(events_.indexOf('telemetry.flush'));
  expect(service.lines.find((l) => l.event === 'resource.closed')).toMatchObject({
    resource: 'database',
  });
  expect(timeOf(service, 'service.exit') - timeOf(service, 'shutdown.begin')).toBeLessThan(5_000);
});
