// The idempotency protocol and the order, outbox and key tables, once on the real PostgreSQL and
// once on PGlite: claim, lease, takeover, fence, completion, release, purge; and the order/outbox
// writes. PGlite runs one transaction or statement at a time, in the order they were called, so
// its races are serialized and the same rules hold. In the takeover race the first holder's
// COMMIT then always comes first (the second claim finds the key completed); the other order, a
// takeover fencing a late completion, is the expired-lease test, on both.
import { randomUUID } from 'node:crypto';
import {
  claimKey,
  completeKey,
  lockLease,
  purgeExpiredKeys,
  readKey,
  releaseKey,
} from '../../src/orders/data/idempotency.repository';
import type { Session } from '../../src/orders/db/database';
import { findOrder, insertOrder } from '../../src/orders/data/order.repository';
import { countBacklog, insertEvent } from '../../src/orders/data/outbox.repository';
import { migrate, readMigrations } from '../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../src/orders/orders.module';
import { createIdempotencyPurgeWorker } from '../../src/orders/workers/idempotency-purge.worker';
import { captureLogger } from '../helpers/log-capture';
import { type BackendDatabase, backends, OPEN_TIMEOUT_MS } from './support/backends';
import type { DatabaseStack } from './support/database-stack';

let testDb: BackendDatabase;
let stack: DatabaseStack;

const HOUR = 3_600_000;
const INPUT = {
  customer_id: 'customer-1',
  currency: 'EUR',
  items: [
    { sku: 'SKU-1', quantity: 2, unit_price_cents: 1999 },
    { sku: 'SKU-2', quantity: 1, unit_price_cents: 500 },
  ],
};

function claimRequest(key: string, overrides: Partial<Parameters<typeof claimKey>[1]> = {}) {
  return {
    key,
    fingerprint: 'f'.repeat(64),
    leaseToken: randomUUID(),
    leaseMs: 30_000,
    retentionMs: 24 * HOUR,
    ...overrides,
  };
}

function run<T>(work: (session: Session) => Promise<T>): Promise<T> {
  return stack.database.run(work, { retry: false });
}

function claim(request: ReturnType<typeof claimRequest>) {
  return stack.database.run((s) => claimKey(s, request), { retry: true });
}

/** Completes a key the way the create-order transaction does. */
async function complete(key: string, leaseToken: string): Promise<string | undefined> {
  return stack.database.transaction(
    'test complete',
    async (session) => {
      if (!(await lockLease(session, key, leaseToken))) return undefined;
      const order = await insertOrder(session, {
        id: randomUUID(),
        input: INPUT,
        totalCents: 4498,
        idempotencyKey: key,
      });
      await completeKey(session, {
        key,
        leaseToken,
        orderId: order.id,
        response: {
          status: 201,
          headers: { Location: `/v1/orders/${order.id}` },
          body: '{"id":1}',
        },
        retentionMs: 24 * HOUR,
      });
      return order.id;
    },
    { retry: false },
  );
}

describe.each(backends)('on $name', (backend) => {
  beforeAll(async () => {
    testDb = await backend.open();
    stack = testDb.stack(25);
    await migrate(stack.db, readMigrations(migrationsDir()));
  }, OPEN_TIMEOUT_MS);
  afterAll(async () => {
    await stack?.close();
    await testDb?.close();
  });

  describe('claiming a key', () => {
    it('when a key is new, then the claim acquires it with a lease', async () => {
      const request = claimRequest(`new-${randomUUID()}`);
      expect(await claim(request)).toEqual({ kind: 'acquired', attempts: 1 });
      const record = await run((s) => readKey(s, request.key));
      expect(record).toMatchObject({
        state: 'in_progress',
        leaseToken: request.leaseToken,
        leaseExpired: false,
      });
    });

    it('when the same claim is retried (its first answer was lost), then it is still ours', async () => {
      const request = claimRequest(`retried-${randomUUID()}`);
      await claim(request);
      expect(await claim(request)).toEqual({ kind: 'acquired', attempts: 1 });
    });

    it('when 20 claims of one key race, then exactly one acquires it and the others see it in progress', async () => {
      const key = `race-${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 20 }, () => claim(claimRequest(key))));
      expect(results.filter((r) => r.kind === 'acquired')).toHaveLength(1);
      for (const result of results.filter((r) => r.kind !== 'acquired')) {
        expect(result).toMatchObject({
          kind: 'existing',
          record: { state: 'in_progress', leaseExpired: false },
        });
      }
    });

    it('when the lease is still running, then another request does not get the key', async () => {
      const key = `held-${randomUUID()}`;
      await claim(claimRequest(key));
      expect(await claim(claimRequest(key))).toMatchObject({
        kind: 'existing',
        record: { state: 'in_progress' },
      });
    });

    it('when the lease expired, then a retry with the same body takes the key over, and the first holder can no longer complete', async () => {
      const key = `expired-${randomUUID()}`;
      const first = claimRequest(key, { leaseMs: 1 });
      await claim(first);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const second = claimRequest(key);
      expect(await claim(second)).toEqual({ kind: 'acquired', attempts: 2 });
      // The fence: the first attempt, back from a long pause, finds the key no longer its own.
      expect(await complete(key, first.leaseToken)).toBeUndefined();
      const orderId = await complete(key, second.leaseToken);
      expect(orderId).toBeDefined();
      const orders = await testDb.query('SELECT id FROM orders WHERE idempotency_key = $1', [key]);
      expect(orders).toEqual([{ id: orderId }]);
    });

    it('when the lease expired but the body differs, then the key is not taken over', async () => {
      const key = `expired-other-${randomUUID()}`;
      await claim(claimRequest(key, { leaseMs: 1 }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const other = await claim(claimRequest(key, { fingerprint: 'e'.repeat(64) }));
      expect(other).toMatchObject({ kind: 'existing', record: { fingerprint: 'f'.repeat(64) } });
    });

    it('when the key was completed, then a claim reads the stored response and does not take it', async () => {
      const key = `done-${randomUUID()}`;
      const first = claimRequest(key);
      await claim(first);
      const orderId = await complete(key, first.leaseToken);
      const again = await claim(claimRequest(key, { leaseMs: 1 }));
      expect(again).toMatchObject({
        kind: 'existing',
        record: {
          state: 'completed',
          orderId,
          leaseToken: null,
          response: {
            status: 201,
            headers: { Location: `/v1/orders/${orderId}` },
            body: '{"id":1}',
          },
        },
      });
    });

    it('when a takeover races the first holder completing, then exactly one order exists', async () => {
      for (let round = 0; round < 10; round += 1) {
        const key = `fence-${round}-${randomUUID()}`;
        const first = claimRequest(key, { leaseMs: 5 });
        await claim(first);
        await new Promise((resolve) => setTimeout(resolve, 10));
        const second = claimRequest(key);
        const [completedByFirst, secondClaim] = await Promise.all([
          complete(key, first.leaseToken),
          claim(second),
        ]);
        const completedBySecond =
          secondClaim.kind === 'acquired' ? await complete(key, second.leaseToken) : undefined;
        const orders = await testDb.query('SELECT id FROM orders WHERE idempotency_key = $1', [
          key,
        ]);
        expect(orders).toHaveLength(1);
        expect([completedByFirst, completedBySecond].filter((id) => id !== undefined)).toHaveLength(
          1,
        );
      }
    });
  });

  describe('releasing a lease', () => {
    it('when a request fails and releases its lease, then a retry takes the key at once', async () => {
      const key = `released-${randomUUID()}`;
      const first = claimRequest(key);
      await claim(first);
      expect(await run((s) => releaseKey(s, key, first.leaseToken))).toBe(true);
      expect(await claim(claimRequest(key))).toMatchObject({ kind: 'acquired', attempts: 2 });
    });

    it('when the key completed meanwhile, then a release changes nothing', async () => {
      const key = `released-late-${randomUUID()}`;
      const first = claimRequest(key);
      await claim(first);
      await complete(key, first.leaseToken);
      expect(await run((s) => releaseKey(s, key, first.leaseToken))).toBe(false);
      expect(await run((s) => readKey(s, key))).toMatchObject({ state: 'completed' });
    });
  });

  describe('purging expired keys', () => {
    it('when keys are past their retention, then they are purged; live leases and keys within retention stay', async () => {
      const prefix = `purge-${randomUUID()}`;
      const expiredDone = claimRequest(`${prefix}-done`, { retentionMs: 1 });
      await claim(expiredDone);
      await complete(expiredDone.key, expiredDone.leaseToken);
      await testDb.query(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1",
        [expiredDone.key],
      );
      // Past retention but its lease still runs (taken over just now): never purged under a holder.
      await claim(claimRequest(`${prefix}-live`, { retentionMs: 1, leaseMs: 60_000 }));
      await claim(claimRequest(`${prefix}-abandoned`, { retentionMs: 1, leaseMs: 1 }));
      await claim(claimRequest(`${prefix}-kept`));
      await new Promise((resolve) => setTimeout(resolve, 20));

      let purged = 0;
      for (let deleted = -1; deleted !== 0;) {
        deleted = await run((s) => purgeExpiredKeys(s, 500));
        purged += deleted;
      }
      const left = await testDb.query<{ key: string }>(
        'SELECT key FROM idempotency_keys WHERE key LIKE $1 ORDER BY key',
        [`${prefix}%`],
      );
      expect(left.map((row) => row.key)).toEqual([`${prefix}-kept`, `${prefix}-live`]);
      expect(purged).toBeGreaterThanOrEqual(2);
      // The order outlives its key.
      expect(
        await testDb.query('SELECT id FROM orders WHERE idempotency_key = $1', [expiredDone.key]),
      ).toHaveLength(1);
    });
  });

  describe('orders and the outbox', () => {
    it('when an order is written, then it reads back with its items in order and int8 as numbers', async () => {
      const id = randomUUID();
      const big = { sku: 'BIG', quantity: 1, unit_price_cents: 2 ** 40 };
      const input = { ...INPUT, items: [...INPUT.items, big] };
      const written = await stack.database.transaction(
        'test order',
        (s) => insertOrder(s, { id, input, totalCents: 4498 + 2 ** 40, idempotencyKey: 'k' }),
        { retry: false },
      );
      const read = await run((s) => findOrder(s, id));
      expect(read).toEqual(written);
      expect(read).toMatchObject({
        status: 'pending',
        total_cents: 4498 + 2 ** 40,
        items: input.items,
      });
      expect(typeof read?.total_cents).toBe('number');
      expect(await run((s) => findOrder(s, randomUUID()))).toBeUndefined();
    });

    it('when events are written, then the backlog counts the unpublished ones', async () => {
      const before = await run(countBacklog);
      await run((s) =>
        insertEvent(s, {
          eventId: randomUUID(),
          aggregateType: 'order',
          aggregateId: randomUUID(),
          eventType: 'order.created',
          subject: 'orders.created',
          payload: { hello: 'world' },
        }),
      );
      expect(await run(countBacklog)).toBe(before + 1);
      await testDb.query('UPDATE outbox SET published_at = now()');
      expect(await run(countBacklog)).toBe(0);
    });

    it('when a transaction fails after the order insert, then nothing of it remains', async () => {
      const id = randomUUID();
      await expect(
        stack.database.transaction(
          'test rollback',
          async (s) => {
            await insertOrder(s, {
              id,
              input: INPUT,
              totalCents: 4498,
              idempotencyKey: 'rollback',
            });
            await s.run({ operation: 'SELECT', collection: 'x', text: 'SELECT 1/0' });
          },
          { retry: false },
        ),
      ).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
      expect(await run((s) => findOrder(s, id))).toBeUndefined();
    });
  });

  describe('the purge worker', () => {
    it('when it runs, then expired keys are purged and the outbox backlog is reported', async () => {
      const key = `worker-${randomUUID()}`;
      await claim(claimRequest(key, { leaseMs: 1, retentionMs: 1 }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const backlogs: number[] = [];
      const { logger } = captureLogger();
      const worker = createIdempotencyPurgeWorker({
        database: stack.database,
        logger,
        intervalMs: 60_000,
        onBacklog: (backlog) => backlogs.push(backlog),
      });
      await worker.runOnce();
      expect(await run((s) => readKey(s, key))).toBeUndefined();
      expect(backlogs).toEqual([await run(countBacklog)]);
      await worker.stop();
    });

    it('when it is stopped during a purge, then stop() resolves only after that purge finished', async () => {
      const { logger } = captureLogger();
      let started = 0;
      let finished = 0;
      const counting: typeof stack.database = {
        run: async (work, options) => {
          started += 1;
          try {
            return await stack.database.run(work, options);
          } finally {
            finished += 1;
          }
        },
        transaction: (name, work, options) => stack.database.transaction(name, work, options),
      };
      const worker = createIdempotencyPurgeWorker({
        database: counting,
        logger,
        intervalMs: 60_000,
        onBacklog: () => undefined,
      });
      worker.start();
      expect(started).toBe(1);
      await worker.stop();
      expect(finished).toBe(started);
    });
  });

  // PostgreSQL only: the pg adapter sets statement_timeout on its connections; PGlite runs in
  // this process and has no statement timeout to set (an aborted call is abandoned instead).
  if (backend.name === 'postgres') {
    describe('the pg adapter', () => {
      it('when a connection is opened, then DATABASE_STATEMENT_TIMEOUT_MS is its statement_timeout', async () => {
        const { rows } = await stack.db.query<{ statement_timeout: string }>(
          'SHOW statement_timeout',
        );
        expect(rows[0]?.statement_timeout).toBe('5s');
      });
    });
  }
});
