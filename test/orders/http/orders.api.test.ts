// The orders API end to end (contract section 6): the real runtime (listeners, lifecycle
// machine, edge middleware, error mapper) with the orders module, in this process, once on a
// fresh PostgreSQL database and once on the embedded PGlite. Each rule of the contract is
// asserted here at least once on each; waiting for another request that holds a key is asserted
// on PostgreSQL only, at the end. Tenants (issue #15): a test-only middleware before the orders
// routes sets the caller from an `X-Test-Tenant` header (support/test-caller.ts), as the
// authentication step will from a token; without it a request is the default tenant's.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import { DEFAULT_TENANT } from '../../../src/http/caller';
import { fingerprintOf } from '../../../src/orders/domain/fingerprint';
import {
  type BackendService,
  backends,
  OPEN_TIMEOUT_MS,
  type SqlAccess,
} from '../support/backends';
import { holdKey } from '../support/hold-key';
import { type InProcessService, startInProcess } from '../support/in-process-service';
import { delay, getPath, orderBody, type Outcome, postOrder, send } from '../support/orders-client';
import { TEST_TENANT_HEADER, testCallerRouter } from '../support/test-caller';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

jest.setTimeout(30_000);

let database: SqlAccess;
let service: InProcessService;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const post = (key: string | undefined, body: unknown, agent?: http.Agent): Promise<Outcome> =>
  postOrder(service.port, key, body, agent);
const problem = (outcome: Outcome) => ({ status: outcome.status, code: outcome.json?.code });
/** POST and GET as a caller of `tenant` (the test middleware's header). */
const postAs = (tenant: string, key: string, body: unknown): Promise<Outcome> =>
  send(service.port, {
    method: 'POST',
    path: '/v1/orders',
    key,
    body,
    headers: { [TEST_TENANT_HEADER]: tenant },
  });
const getAs = (tenant: string, path: string): Promise<Outcome> =>
  send(service.port, { method: 'GET', path, headers: { [TEST_TENANT_HEADER]: tenant } });
/** A problem body without what differs per request (its ids). */
const problemBody = (outcome: Outcome): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(outcome.json ?? {}).filter(
      ([name]) => !['request_id', 'trace_id'].includes(name),
    ),
  );

async function ordersWithKey(key: string): Promise<number> {
  const rows = await database.query<{ count: string }>(
    'SELECT count(*) FROM orders WHERE idempotency_key = $1',
    [key],
  );
  return Number(rows[0]?.count);
}

describe.each(backends)('on $name', (backend) => {
  let running: BackendService | undefined;
  beforeAll(async () => {
    running = await backend.startService({ RATE_LIMIT_MAX: '0' }, { before: [testCallerRouter()] });
    ({ service, database } = running);
  }, OPEN_TIMEOUT_MS);
  afterAll(async () => {
    await running?.stop();
  });

  describe('POST /v1/orders creates an order', () => {
    it('when the request is valid, then 201 with Location and the order, total computed by the server, status pending', async () => {
      const body = {
        customer_id: 'customer-7',
        currency: 'EUR',
        items: [
          { sku: 'SKU-1', quantity: 3, unit_price_cents: 1999 },
          { sku: 'SKU-2', quantity: 1, unit_price_cents: 1 },
        ],
      };
      const res = await post(`create-${randomUUID()}`, body);
      expect(res.status).toBe(201);
      expect(res.headers?.['content-type']).toMatch(/^application\/json/);
      const order = res.json as Record<string, unknown>;
      expect(Object.keys(order)).toEqual([
        'id',
        'customer_id',
        'currency',
        'items',
        'total_cents',
        'status',
        'created_at',
      ]);
      expect(order).toEqual({
        id: expect.stringMatching(UUID) as unknown,
        customer_id: 'customer-7',
        currency: 'EUR',
        items: body.items,
        total_cents: 5998,
        status: 'pending',
        created_at: expect.any(String) as unknown,
      });
      expect(new Date(order.created_at as string).toISOString()).toBe(order.created_at);
      expect(res.headers?.location).toBe(`/v1/orders/${order.id as string}`);
      expect(res.headers?.['idempotent-replayed']).toBeUndefined();
    });

    it('when an order is created, then exactly one order.created event is in the outbox, in the same commit', async () => {
      const key = `outbox-${randomUUID()}`;
      const res = await post(key, orderBody('customer-outbox', 2));
      const id = res.json?.id as string;
      const events = await database.query<{
        event_id: string;
        event_type: string;
        subject: string;
        aggregate_id: string;
        payload: { event_type: string; order: Record<string, unknown> };
        published_at: Date | null;
      }>('SELECT * FROM outbox WHERE aggregate_id = $1', [id]);
      expect(events).toHaveLength(1);
      const [event] = events;
      expect(event).toMatchObject({
        event_id: expect.stringMatching(UUID) as unknown,
        event_type: 'order.created',
        subject: 'orders.created',
        published_at: null,
        payload: { event_type: 'order.created', tenant_id: DEFAULT_TENANT, order: res.json },
      });
      // One transaction: the order, its event and its key were written by the same transaction id.
      const writers = await database.query<{ writer: string }>(
        `SELECT xmin::text AS writer FROM orders WHERE id = $1
         UNION ALL SELECT xmin::text FROM outbox WHERE aggregate_id = $1
         UNION ALL SELECT xmin::text FROM idempotency_keys WHERE order_id = $1`,
        [id],
      );
      expect(writers).toHaveLength(3);
      expect(new Set(writers.map((row) => row.writer)).size).toBe(1);
    });

    it('when an order is created, then order.created is logged with the order id, the key and the request id', async () => {
      const key = `log-${randomUUID()}`;
      const res = await post(key, orderBody());
      const line = service.events('order.created').find((l) => l.idempotency_key === key);
      expect(line).toMatchObject({
        order_id: res.json?.id,
        request_id: res.headers?.['x-request-id'],
        trace_id: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown,
      });
    });

    it('when an order is created, then each statement has a CLIENT span under the server span, with no parameter values', async () => {
      service.spans.reset();
      const key = `spans-${randomUUID()}`;
      const res = await post(key, orderBody('customer-span-secret'));
      expect(res.status).toBe(201);
      await delay(20);
      const spans = service.spans.getFinishedSpans();
      const server = spans.find((s) => s.kind === SpanKind.SERVER);
      const dbSpans = spans.filter((s) => s.attributes['db.system.name'] === 'postgresql');
      expect(server).toBeDefined();
      const names = dbSpans.map((s) => s.name);
      // One transaction, key first: nothing else reaches the database for a new order.
      expect(names).toEqual([
        'INSERT idempotency_keys',
        'INSERT orders',
        'INSERT order_items',
        'INSERT outbox',
        'create order',
      ]);
      for (const span of dbSpans) {
        expect(span.spanContext().traceId).toBe(server?.spanContext().traceId);
        expect(span.kind).toBe(SpanKind.CLIENT);
        const text = JSON.stringify(span.attributes);
        expect(text).not.toContain('customer-span-secret');
        expect(text).not.toContain(key);
      }
      const insert = dbSpans.find((s) => s.name === 'INSERT orders');
      expect(insert?.attributes).toMatchObject({
        'db.operation.name': 'INSERT',
        'db.collection.name': 'orders',
      });
      // Statements of the transaction are children of its span, itself a child of the server span.
      const transaction = dbSpans.find((s) => s.name === 'create order');
      expect(transaction?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
      expect(insert?.parentSpanContext?.spanId).toBe(transaction?.spanContext().spanId);
    });
  });

  describe('GET /v1/orders/{id}', () => {
    it('when the order exists, then 200 with the same order as the 201', async () => {
      const created = await post(`get-${randomUUID()}`, orderBody('customer-get', 3));
      const res = await getPath(service.port, created.headers?.location as string);
      expect(res.status).toBe(200);
      expect(res.text).toBe(created.text);
    });

    it('when no order has the id, then 404 ORDER_NOT_FOUND', async () => {
      const res = await getPath(service.port, `/v1/orders/${randomUUID()}`);
      expect(problem(res)).toEqual({ status: 404, code: 'ORDER_NOT_FOUND' });
      expect(res.headers?.['content-type']).toMatch(/^application\/problem\+json/);
    });

    it.each(['42', 'not-a-uuid', "1'%20OR%20'1'='1", '%E2%9C%93'])(
      'when the id is malformed (%s), then 404 ORDER_NOT_FOUND, not 500',
      async (id) => {
        const res = await getPath(service.port, `/v1/orders/${id}`);
        expect(problem(res)).toEqual({ status: 404, code: 'ORDER_NOT_FOUND' });
      },
    );
  });

  describe('validation', () => {
    it('when the body is invalid, then 400 VALIDATION_FAILED with one entry per field and nothing is stored', async () => {
      const key = `invalid-${randomUUID()}`;
      const res = await post(key, {
        customer_id: 'x'.repeat(101),
        currency: 'ABC',
        items: [{ sku: 'S', quantity: 1001, unit_price_cents: 1.5 }],
        note: 'unknown',
      });
      expect(problem(res)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
      const errors = res.json?.errors as { field: string; message: string }[];
      expect(errors.map((e) => e.field).sort()).toEqual(
        [
          'currency',
          'customer_id',
          'items[0].quantity',
          'items[0].unit_price_cents',
          'note',
        ].sort(),
      );
      expect(
        await database.query('SELECT key FROM idempotency_keys WHERE key = $1', [key]),
      ).toEqual([]);
    });

    it('when the total overflows Number.MAX_SAFE_INTEGER, then 400 VALIDATION_FAILED on items', async () => {
      const res = await post(`overflow-${randomUUID()}`, {
        customer_id: 'c',
        currency: 'USD',
        items: [{ sku: 'A', quantity: 2, unit_price_cents: Number.MAX_SAFE_INTEGER }],
      });
      expect(problem(res)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
      expect(res.json?.errors).toEqual([
        { field: 'items', message: expect.any(String) as unknown },
      ]);
    });

    it('when the Idempotency-Key header is missing, then 400 IDEMPOTENCY_KEY_MISSING', async () => {
      const res = await post(undefined, orderBody());
      expect(problem(res)).toEqual({ status: 400, code: 'IDEMPOTENCY_KEY_MISSING' });
    });

    it('when the Idempotency-Key is malformed, then 400 VALIDATION_FAILED naming the header', async () => {
      const res = await post('k'.repeat(256), orderBody());
      expect(problem(res)).toEqual({ status: 400, code: 'VALIDATION_FAILED' });
      expect(res.json?.errors).toEqual([
        { field: 'Idempotency-Key', message: expect.any(String) as unknown },
      ]);
    });
  });

  describe('idempotency (IETF Idempotency-Key draft)', () => {
    it('when the same key and body are sent again, then the stored response comes back with Idempotent-Replayed: true and no second order', async () => {
      const key = `replay-${randomUUID()}`;
      const body = orderBody('customer-replay', 2);
      const first = await post(key, body);
      // Members in another order: the same request (canonical JSON fingerprint).
      const reordered = {
        items: body.items,
        currency: body.currency,
        customer_id: body.customer_id,
      };
      const second = await post(key, reordered);
      expect(first.status).toBe(201);
      expect(second.status).toBe(201);
      expect(second.text).toBe(first.text);
      expect(second.headers?.location).toBe(first.headers?.location);
      expect(second.headers?.['idempotent-replayed']).toBe('true');
      expect(await ordersWithKey(key)).toBe(1);
      expect(service.events('idempotency.replayed').some((l) => l.idempotency_key === key)).toBe(
        true,
      );
    });

    it('when the same key comes with another body, then 422 IDEMPOTENCY_KEY_REUSED and the first order stands alone', async () => {
      const key = `reuse-${randomUUID()}`;
      await post(key, orderBody('customer-a'));
      const res = await post(key, orderBody('customer-b'));
      expect(problem(res)).toEqual({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });
      expect(await ordersWithKey(key)).toBe(1);
    });

    it('when 20 requests with one key arrive at once, then exactly one order exists and every other answer is 409 or the replay', async () => {
      const key = `concurrent-${randomUUID()}`;
      const body = orderBody('customer-concurrent', 3);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
      try {
        const outcomes = await Promise.all(
          Array.from({ length: 20 }, () => post(key, body, agent)),
        );
        const created = outcomes.filter(
          (o) => o.status === 201 && o.headers?.['idempotent-replayed'] === undefined,
        );
        const replayed = outcomes.filter(
          (o) => o.status === 201 && o.headers?.['idempotent-replayed'] === 'true',
        );
        const inProgress = outcomes.filter((o) => o.json?.code === 'IDEMPOTENCY_KEY_IN_PROGRESS');
        process.stdout.write(
          `20 concurrent requests, one key: ${created.length} created, ${replayed.length} replayed, ${inProgress.length} x 409\n`,
        );
        expect(created).toHaveLength(1);
        expect(replayed.length + inProgress.length).toBe(19);
        for (const replay of replayed) expect(replay.text).toBe(created[0]?.text);
        expect(await ordersWithKey(key)).toBe(1);
        const events = await database.query('SELECT event_id FROM outbox WHERE aggregate_id = $1', [
          created[0]?.json?.id,
        ]);
        expect(events).toHaveLength(1);
      } finally {
        agent.destroy();
      }
    });
  });

  describe('tenants (issue #15)', () => {
    it("when a tenant GETs another tenant's order, then 404 ORDER_NOT_FOUND, the same problem as an id nobody has", async () => {
      const created = await postAs('tenant-a', `tenant-get-${randomUUID()}`, orderBody('a'));
      expect(created.status).toBe(201);
      const location = created.headers?.location as string;
      const own = await getAs('tenant-a', location);
      expect(own.status).toBe(200);
      expect(own.text).toBe(created.text);

      const unknown = await getAs('tenant-b', `/v1/orders/${randomUUID()}`);
      for (const other of [
        await getAs('tenant-b', location),
        // No caller set: the default tenant, which does not own it either.
        await getPath(service.port, location),
      ]) {
        expect(problem(other)).toEqual({ status: 404, code: 'ORDER_NOT_FOUND' });
        expect(other.headers?.['content-type']).toMatch(/^application\/problem\+json/);
        expect(problemBody(other)).toEqual(problemBody(unknown));
        expect(other.text).not.toContain(created.json?.id as string);
      }
      // And the other way round: the default tenant's order is not tenant B's.
      const mine = await post(`tenant-default-${randomUUID()}`, orderBody());
      expect((await getPath(service.port, mine.headers?.location as string)).status).toBe(200);
      expect(problem(await getAs('tenant-b', mine.headers?.location as string))).toEqual({
        status: 404,
        code: 'ORDER_NOT_FOUND',
      });
    });

    it("when two tenants send the same Idempotency-Key, then each gets its own order, and each replay is that tenant's own response", async () => {
      const key = `tenant-shared-${randomUUID()}`;
      const a = await postAs('tenant-a', key, orderBody('customer-a', 1));
      // Another body: from another tenant that is a new order, not a reused key (no 422).
      const b = await postAs('tenant-b', key, orderBody('customer-b', 2));
      for (const first of [a, b]) {
        expect(first.status).toBe(201);
        expect(first.headers?.['idempotent-replayed']).toBeUndefined();
      }
      expect(a.json?.id).not.toBe(b.json?.id);
      expect(a.json?.customer_id).toBe('customer-a');
      expect(b.json?.customer_id).toBe('customer-b');

      const replayA = await postAs('tenant-a', key, orderBody('customer-a', 1));
      const replayB = await postAs('tenant-b', key, orderBody('customer-b', 2));
      expect(replayA.status).toBe(201);
      expect(replayA.headers?.['idempotent-replayed']).toBe('true');
      expect(replayA.text).toBe(a.text);
      expect(replayA.headers?.location).toBe(a.headers?.location);
      expect(replayB.status).toBe(201);
      expect(replayB.headers?.['idempotent-replayed']).toBe('true');
      expect(replayB.text).toBe(b.text);
      expect(replayB.headers?.location).toBe(b.headers?.location);
      // The default tenant has not used the key: a new order of its own.
      const c = await post(key, orderBody('customer-a', 1));
      expect(c.status).toBe(201);
      expect(c.headers?.['idempotent-replayed']).toBeUndefined();
      expect([a.json?.id, b.json?.id]).not.toContain(c.json?.id);

      const rows = await database.query<{ tenant_id: string; id: string }>(
        'SELECT tenant_id, id FROM orders WHERE idempotency_key = $1 ORDER BY tenant_id',
        [key],
      );
      expect(rows).toEqual([
        { tenant_id: DEFAULT_TENANT, id: c.json?.id },
        { tenant_id: 'tenant-a', id: a.json?.id },
        { tenant_id: 'tenant-b', id: b.json?.id },
      ]);
      const events = await database.query<{ payload: { tenant_id: string } }>(
        'SELECT payload FROM outbox WHERE aggregate_id = $1',
        [a.json?.id],
      );
      expect(events.map((event) => event.payload.tenant_id)).toEqual(['tenant-a']);
    });
  });

  describe('the outbox backlog gauge and the database breaker', () => {
    it('when /metrics is scraped, then the outbox backlog and the database breaker state are exported', async () => {
      const { opsServer } = service.runtime;
      const { port } = opsServer.address() as { port: number };
      const res = await getPath(port, '/metrics');
      expect(res.text).toMatch(/ops_outbox_backlog(\{[^}]*\})? \d+/);
      expect(res.text).toMatch(
        /ops_circuit_breaker_state\{[^}]*dependency="database"[^}]*state="closed"[^}]*\} 1/,
      );
    });
  });
});

// A second connection holding a key mid-transaction: PostgreSQL only (PGlite runs one connection,
// one transaction at a time, so no transaction can be held open beside the service's).
describe('on postgres only: another request holding the key', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    service = await startInProcess(
      { DATABASE_URL: testDb.url, RATE_LIMIT_MAX: '0' },
      { before: [testCallerRouter()] },
    );
    database = testDb;
  });
  afterAll(async () => {
    await service?.stop();
    await testDb?.drop();
  });

  it('when the first request with a key is still running, then 409 IDEMPOTENCY_KEY_IN_PROGRESS with Retry-After, and the database breaker stays closed', async () => {
    const key = `running-${randomUUID()}`;
    const body = orderBody('customer-running');
    const holder = await holdKey(testDb.url, key, fingerprintOf(body));
    try {
      // More than the breaker's threshold (5): an answer about the key is not a database failure.
      for (let attempt = 0; attempt < 7; attempt += 1) {
        const res = await post(key, body);
        expect(problem(res)).toEqual({ status: 409, code: 'IDEMPOTENCY_KEY_IN_PROGRESS' });
        expect(res.headers?.['retry-after']).toBe('1');
      }
      const other = await post(`after-409s-${randomUUID()}`, orderBody());
      expect(other.status).toBe(201);
    } finally {
      await holder.client.query('ROLLBACK');
      await holder.client.end();
    }
    expect(await ordersWithKey(key)).toBe(0);
  });

  it('when the first request finishes while a second one with its key waits, then the second gets the stored response, replayed', async () => {
    const key = `waiting-${randomUUID()}`;
    const body = orderBody('customer-waiting');
    const holder = await holdKey(testDb.url, key, fingerprintOf(body));
    try {
      const second = post(key, body);
      await delay(50);
      await holder.client.query('COMMIT');
      const res = await second;
      expect(res.status).toBe(201);
      expect(res.headers?.['idempotent-replayed']).toBe('true');
      expect(res.json?.id).toBe(res.headers?.location?.split('/').pop());
    } finally {
      await holder.client.end();
    }
    expect(await ordersWithKey(key)).toBe(1);
  });

  it("when tenant A's first request with a key is still running, then tenant B's request with that key does not wait for it: 201, its own order", async () => {
    const key = `tenant-running-${randomUUID()}`;
    const body = orderBody('customer-running');
    const holder = await holdKey(testDb.url, key, fingerprintOf(body), {}, 'tenant-a');
    try {
      // A wait would end in 409 after DATABASE_LOCK_TIMEOUT_MS (see the first test above).
      expect(problem(await postAs('tenant-a', key, body))).toEqual({
        status: 409,
        code: 'IDEMPOTENCY_KEY_IN_PROGRESS',
      });
      const other = await postAs('tenant-b', key, body);
      expect(other.status).toBe(201);
      expect(other.headers?.['idempotent-replayed']).toBeUndefined();
      expect(other.json?.id).not.toBe(holder.orderId);
    } finally {
      await holder.client.query('ROLLBACK');
      await holder.client.end();
    }
    expect(await ordersWithKey(key)).toBe(1);
  });

  it('when the first request was cut off mid-transaction (its process died), then a retry with the key creates the order, once', async () => {
    const key = `crashed-${randomUUID()}`;
    const body = orderBody('customer-crashed');
    const holder = await holdKey(testDb.url, key, fingerprintOf(body));
    holder.cut();
    const res = await post(key, body);
    expect(res.status).toBe(201);
    expect(res.headers?.['idempotent-replayed']).toBeUndefined();
    expect(await ordersWithKey(key)).toBe(1);
    const again = await post(key, body);
    expect(again.headers?.['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(res.text);
  });
});
