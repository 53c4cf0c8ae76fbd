// The create-order use case, once on the real PostgreSQL and once on PGlite, with faults injected
// between it and the database: a COMMIT whose answer is lost, a transaction that fails. A retry
// never creates a second order, and a failed request leaves its key free for the retry. Then
// tenants (issue #15): the same key from two tenants is two orders, each replay the tenant's own,
// and the get-order use case finds no other tenant's order.
import { randomUUID } from 'node:crypto';
import type { Db } from '../../../src/orders/db/db';
import { migrate, readMigrations } from '../../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../../src/orders/orders.module';
import { DEFAULT_TENANT } from '../../../src/http/caller';
import { AppError } from '../../../src/errors/catalogue';
import { createOrderUseCase } from '../../../src/orders/use-cases/create-order.use-case';
import { getOrderUseCase } from '../../../src/orders/use-cases/get-order.use-case';
import { captureLogger } from '../../helpers/log-capture';
import { type BackendDatabase, backends, OPEN_TIMEOUT_MS } from '../support/backends';
import { orderBody } from '../support/orders-client';

let testDb: BackendDatabase;

/** A Db whose next `failures` transactions fail as told, after (or instead of) running. */
function faulty(failures: { afterCommit: boolean; error: Error }[]) {
  return (db: Db): Db => ({
    ...db,
    async transaction(work, signal) {
      const fault = failures.shift();
      if (fault === undefined) return db.transaction(work, signal);
      if (!fault.afterCommit) throw fault.error;
      await db.transaction(work, signal);
      throw fault.error;
    },
  });
}

function connectionReset(): Error {
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
}

async function ordersWithKey(key: string, tenant?: string): Promise<string[]> {
  const rows = await testDb.query<{ id: string }>(
    'SELECT id FROM orders WHERE idempotency_key = $1 AND ($2::text IS NULL OR tenant_id = $2)',
    [key, tenant ?? null],
  );
  return rows.map((row) => row.id);
}

const noFaults = (db: Db): Db => db;

function useCase(wrap: (db: Db) => Db) {
  const stack = testDb.stack(4, wrap);
  const log = captureLogger();
  const createOrder = createOrderUseCase({
    database: stack.database,
    logger: log.logger,
    retentionMs: 86_400_000,
  });
  return { stack, log, createOrder };
}

describe.each(backends)('on $name', (backend) => {
  beforeAll(async () => {
    testDb = await backend.open();
    const setup = testDb.stack();
    try {
      await migrate(setup.db, readMigrations(migrationsDir()));
    } finally {
      await setup.close();
    }
  }, OPEN_TIMEOUT_MS);
  afterAll(async () => {
    await testDb?.close();
  });

  it('when the answer to COMMIT is lost, then the retry finds the order committed and answers it once, not twice', async () => {
    const { stack, log, createOrder } = useCase(
      faulty([{ afterCommit: true, error: connectionReset() }]),
    );
    try {
      const key = `lost-commit-${randomUUID()}`;
      const result = await createOrder({
        tenant: DEFAULT_TENANT,
        idempotencyKey: key,
        input: orderBody(),
      });
      const ids = await ordersWithKey(key);
      expect(ids).toHaveLength(1);
      expect(result.replayed).toBe(false);
      expect(result.response.status).toBe(201);
      expect(JSON.parse(result.response.body)).toMatchObject({ id: ids[0] });
      expect(log.records().find((r) => r.event === 'order.created')).toMatchObject({
        order_id: ids[0],
        recovered: true,
      });
    } finally {
      await stack.close();
    }
  });

  it('when the transaction fails for good, then the request fails, nothing of it remains, and the retry creates the order at once', async () => {
    const broken = Object.assign(new Error('disk full'), { code: '53100' });
    const { stack, createOrder } = useCase(faulty([{ afterCommit: false, error: broken }]));
    try {
      const key = `failed-${randomUUID()}`;
      await expect(
        createOrder({ tenant: DEFAULT_TENANT, idempotencyKey: key, input: orderBody() }),
      ).rejects.toMatchObject({
        code: 'DEPENDENCY_UNAVAILABLE',
      });
      expect(await testDb.query('SELECT key FROM idempotency_keys WHERE key = $1', [key])).toEqual(
        [],
      );
      expect(await ordersWithKey(key)).toEqual([]);
      const retried = await createOrder({
        tenant: DEFAULT_TENANT,
        idempotencyKey: key,
        input: orderBody(),
      });
      expect(retried.response.status).toBe(201);
      expect(await ordersWithKey(key)).toHaveLength(1);
    } finally {
      await stack.close();
    }
  });

  it('when a serialization failure hits the transaction, then it is retried and the order is created once', async () => {
    const conflict = Object.assign(new Error('could not serialize access'), { code: '40001' });
    const { stack, createOrder } = useCase(faulty([{ afterCommit: false, error: conflict }]));
    try {
      const key = `serialization-${randomUUID()}`;
      const result = await createOrder({
        tenant: DEFAULT_TENANT,
        idempotencyKey: key,
        input: orderBody(),
      });
      expect(result.response.status).toBe(201);
      expect(await ordersWithKey(key)).toHaveLength(1);
    } finally {
      await stack.close();
    }
  });

  describe('tenants (issue #15)', () => {
    it('when two tenants send the same key, then each gets its own order, and each replay is its own response', async () => {
      const { stack, createOrder } = useCase(noFaults);
      try {
        const key = `shared-${randomUUID()}`;
        const a = await createOrder({
          tenant: 'tenant-a',
          idempotencyKey: key,
          input: orderBody('a'),
        });
        // Another body under the same key: another tenant's request, not a reuse (no 422).
        const b = await createOrder({
          tenant: 'tenant-b',
          idempotencyKey: key,
          input: orderBody('b'),
        });
        expect([a.replayed, b.replayed]).toEqual([false, false]);
        const idA = (JSON.parse(a.response.body) as { id: string }).id;
        const idB = (JSON.parse(b.response.body) as { id: string }).id;
        expect(idA).not.toBe(idB);
        expect(await ordersWithKey(key, 'tenant-a')).toEqual([idA]);
        expect(await ordersWithKey(key, 'tenant-b')).toEqual([idB]);

        const replayA = await createOrder({
          tenant: 'tenant-a',
          idempotencyKey: key,
          input: orderBody('a'),
        });
        const replayB = await createOrder({
          tenant: 'tenant-b',
          idempotencyKey: key,
          input: orderBody('b'),
        });
        expect(replayA).toEqual({ response: a.response, replayed: true });
        expect(replayB).toEqual({ response: b.response, replayed: true });
        // Tenant A's body under the key, from tenant B: B's key has B's body, so 422 (never A's order).
        await expect(
          createOrder({ tenant: 'tenant-b', idempotencyKey: key, input: orderBody('a') }),
        ).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
        expect(await ordersWithKey(key)).toHaveLength(2);
      } finally {
        await stack.close();
      }
    });

    it('when an order is created, then its order.created event carries the tenant beside the order', async () => {
      const { stack, createOrder } = useCase(noFaults);
      try {
        const created = await createOrder({
          tenant: 'tenant-events',
          idempotencyKey: `event-${randomUUID()}`,
          input: orderBody('customer-event', 2),
        });
        const order = JSON.parse(created.response.body) as { id: string; created_at: string };
        const [event] = await testDb.query<{ payload: Record<string, unknown> }>(
          'SELECT payload FROM outbox WHERE aggregate_id = $1',
          [order.id],
        );
        expect(event?.payload).toEqual({
          event_type: 'order.created',
          occurred_at: order.created_at,
          tenant_id: 'tenant-events',
          order,
        });
      } finally {
        await stack.close();
      }
    });

    it("when a tenant asks for another tenant's order, then ORDER_NOT_FOUND, the same error as an id nobody has", async () => {
      const { stack, createOrder } = useCase(noFaults);
      const getOrder = getOrderUseCase({ database: stack.database });
      try {
        const created = await createOrder({
          tenant: 'tenant-a',
          idempotencyKey: `get-${randomUUID()}`,
          input: orderBody('customer-get'),
        });
        const order = JSON.parse(created.response.body) as { id: string };
        expect(await getOrder('tenant-a', order.id)).toEqual(order);

        const unknown = await getOrder('tenant-a', randomUUID()).catch((error: unknown) => error);
        for (const tenant of ['tenant-b', DEFAULT_TENANT]) {
          const refused = await getOrder(tenant, order.id).catch((error: unknown) => error);
          expect(refused).toBeInstanceOf(AppError);
          expect(refused).toMatchObject({ code: 'ORDER_NOT_FOUND' });
          expect((refused as AppError).message).toBe((unknown as AppError).message);
        }
      } finally {
        await stack.close();
      }
    });

    it('when the tenant is not a valid tenant id, then both use cases fail before reaching the database', async () => {
      let transactions = 0;
      const { stack, createOrder } = useCase((db) => ({
        ...db,
        transaction(work, signal) {
          transactions += 1;
          return db.transaction(work, signal);
        },
        query(text, params, signal) {
          transactions += 1;
          return db.query(text, params, signal);
        },
      }));
      const getOrder = getOrderUseCase({ database: stack.database });
      try {
        await expect(
          createOrder({ tenant: 'no spaces', idempotencyKey: 'k', input: orderBody() }),
        ).rejects.toThrow(/valid tenant id/);
        await expect(getOrder('', randomUUID())).rejects.toThrow(/valid tenant id/);
        expect(transactions).toBe(0);
      } finally {
        await stack.close();
      }
    });
  });
});
