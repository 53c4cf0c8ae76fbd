// The create-order use case, once on the real PostgreSQL and once on PGlite, with faults injected
// between it and the database: a COMMIT whose answer is lost, a transaction that fails. A retry
// never creates a second order, and a failed request leaves its key free for the retry.
import { randomUUID } from 'node:crypto';
import type { Db } from '../../../src/orders/db/db';
import { migrate, readMigrations } from '../../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../../src/orders/orders.module';
import { createOrderUseCase } from '../../../src/orders/use-cases/create-order.use-case';
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

async function ordersWithKey(key: string): Promise<string[]> {
  const rows = await testDb.query<{ id: string }>(
    'SELECT id FROM orders WHERE idempotency_key = $1',
    [key],
  );
  return rows.map((row) => row.id);
}

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
      const result = await createOrder({ idempotencyKey: key, input: orderBody() });
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
      await expect(createOrder({ idempotencyKey: key, input: orderBody() })).rejects.toMatchObject({
        code: 'DEPENDENCY_UNAVAILABLE',
      });
      expect(await testDb.query('SELECT key FROM idempotency_keys WHERE key = $1', [key])).toEqual(
        [],
      );
      expect(await ordersWithKey(key)).toEqual([]);
      const retried = await createOrder({ idempotencyKey: key, input: orderBody() });
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
      const result = await createOrder({ idempotencyKey: key, input: orderBody() });
      expect(result.response.status).toBe(201);
      expect(await ordersWithKey(key)).toHaveLength(1);
    } finally {
      await stack.close();
    }
  });
});
