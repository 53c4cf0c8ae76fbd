// The idempotency protocol and the order, outbox and key tables: the key as the first statement
// of the order's transaction, purge, and the order/outbox writes, once on the real PostgreSQL and
// once on PGlite. Then, on PostgreSQL only, a second connection holding a key: waiting for it,
// lock_timeout, rollback on a cut connection or an abandoned transaction. PGlite runs one
// connection, one transaction at a time, so a transaction held open beside another cannot exist
// there (its concurrent requests are serialised: the race below still gives one order).
// Tenants (issue #15, migrations/007): keys and orders are per tenant, on both databases, and on
// PostgreSQL a key held by one tenant's running transaction never makes another tenant wait.
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { holdKey } from '../support/hold-key';
import { startTcpProxy } from '../support/tcp-proxy';
import {
  insertKey,
  LOCK_NOT_AVAILABLE,
  purgeExpiredKeys,
  readKey,
} from '../../../src/orders/data/idempotency.repository';
import { type Database, type Session, sql as statement } from '../../../src/orders/db/database';
import { findOrder, insertOrder } from '../../../src/orders/data/order.repository';
import { applyPayment } from '../../../src/orders/data/payment.repository';
import { DEFAULT_TENANT } from '../../../src/http/caller';
import { countBacklog, insertEvent } from '../../../src/orders/data/outbox.repository';
import { migrate, readMigrations } from '../../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../../src/orders/orders.module';
import { createIdempotencyPurgeWorker } from '../../../src/orders/workers/idempotency-purge.worker';
import { captureLogger } from '../../helpers/log-capture';
import {
  type BackendDatabase,
  backends,
  OPEN_TIMEOUT_MS,
  type SqlAccess,
} from '../support/backends';
import { type DatabaseStack, databaseStack } from '../support/database-stack';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

let sql: SqlAccess;
let stack: DatabaseStack;

const DAY = 86_400_000;
const FINGERPRINT = 'f'.repeat(64);
const INPUT = {
  customer_id: 'customer-1',
  currency: 'EUR',
  items: [
    { sku: 'SKU-1', quantity: 2, unit_price_cents: 1999 },
    { sku: 'SKU-2', quantity: 1, unit_price_cents: 500 },
  ],
};

function run<T>(work: (session: Session) => Promise<T>): Promise<T> {
  return stack.database.run(work, { retry: false });
}

/**
 * The create-order transaction's shape: the key first, then the order. Returns the new order's
 * id, or undefined when the key was already taken (nothing else is written then).
 */
function createWithKey(
  key: string,
  options: {
    retentionMs?: number;
    fingerprint?: string;
    database?: Database;
    tenant?: string;
  } = {},
): Promise<string | undefined> {
  const id = randomUUID();
  const tenant = options.tenant ?? DEFAULT_TENANT;
  return (options.database ?? stack.database).transaction(
    'test create',
    async (session) => {
      const ours = await insertKey(session, {
        tenant,
        key,
        fingerprint: options.fingerprint ?? FINGERPRINT,
        orderId: id,
        response: {
          status: 201,
          headers: { Location: `/v1/orders/${id}` },
          body: `{"id":"${id}"}`,
        },
        retentionMs: options.retentionMs ?? DAY,
      });
      if (!ours) return undefined;
      await insertOrder(session, {
        id,
        tenant,
        input: INPUT,
        totalCents: 4498,
        idempotencyKey: key,
        createdAt: new Date(),
      });
      return id;
    },
    { retry: false },
  );
}

async function ordersWithKey(key: string, tenant?: string): Promise<number> {
  const rows =
    tenant === undefined
      ? await sql.query('SELECT id FROM orders WHERE idempotency_key = $1', [key])
      : await sql.query('SELECT id FROM orders WHERE idempotency_key = $1 AND tenant_id = $2', [
          key,
          tenant,
        ]);
  return rows.length;
}

describe.each(backends)('on $name', (backend) => {
  let database: BackendDatabase;
  beforeAll(async () => {
    database = await backend.open();
    sql = database;
    stack = database.stack(25);
    await migrate(stack.db, readMigrations(migrationsDir()));
  }, OPEN_TIMEOUT_MS);
  afterAll(async () => {
    await stack?.close();
    await database?.close();
  });

  describe('the key in the order transaction', () => {
    it('when a key is new, then it commits with its order and reads back with the response to replay', async () => {
      const key = `new-${randomUUID()}`;
      const orderId = await createWithKey(key);
      expect(orderId).toBeDefined();
      expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toEqual({
        tenant: DEFAULT_TENANT,
        key,
        fingerprint: FINGERPRINT,
        orderId,
        response: {
          status: 201,
          headers: { Location: `/v1/orders/${orderId}` },
          body: `{"id":"${orderId}"}`,
        },
      });
      expect(await ordersWithKey(key)).toBe(1);
    });

    it('when the key is already committed, then inserting it again is refused and the first record stands', async () => {
      const key = `done-${randomUUID()}`;
      const first = await createWithKey(key);
      expect(await createWithKey(key, { fingerprint: 'e'.repeat(64) })).toBeUndefined();
      expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toMatchObject({
        orderId: first,
        fingerprint: FINGERPRINT,
      });
      expect(await ordersWithKey(key)).toBe(1);
    });

    it('when 20 transactions race for one key, then exactly one gets it and the others find it taken', async () => {
      const key = `race-${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 20 }, () => createWithKey(key)));
      expect(results.filter((id) => id !== undefined)).toHaveLength(1);
      expect(await ordersWithKey(key)).toBe(1);
    });
  });

  describe('purging expired keys', () => {
    it('when keys are past their retention, then they are purged; keys within retention stay and the order outlives its key', async () => {
      const prefix = `purge-${randomUUID()}`;
      await createWithKey(`${prefix}-expired`, { retentionMs: 1 });
      await createWithKey(`${prefix}-kept`);
      await delay(20);

      let purged = 0;
      for (let deleted = -1; deleted !== 0;) {
        deleted = await run((s) => purgeExpiredKeys(s, 500));
        purged += deleted;
      }
      const left = await sql.query<{ key: string }>(
        'SELECT key FROM idempotency_keys WHERE key LIKE $1 ORDER BY key',
        [`${prefix}%`],
      );
      expect(left.map((row) => row.key)).toEqual([`${prefix}-kept`]);
      expect(purged).toBeGreaterThanOrEqual(1);
      expect(await ordersWithKey(`${prefix}-expired`)).toBe(1);
    });
  });

  describe('orders and the outbox', () => {
    it('when an order is written, then it reads back with its items in order and int8 as numbers', async () => {
      const id = randomUUID();
      const big = { sku: 'BIG', quantity: 1, unit_price_cents: 2 ** 40 };
      const input = { ...INPUT, items: [...INPUT.items, big] };
      const written = await stack.database.transaction(
        'test order',
        (s) =>
          insertOrder(s, {
            id,
            tenant: DEFAULT_TENANT,
            input,
            totalCents: 4498 + 2 ** 40,
            idempotencyKey: 'k',
            createdAt: new Date(),
          }),
        { retry: false },
      );
      const read = await run((s) => findOrder(s, DEFAULT_TENANT, id));
      expect(read).toEqual(written);
      expect(read).toMatchObject({
        status: 'pending',
        total_cents: 4498 + 2 ** 40,
        items: input.items,
      });
      expect(typeof read?.total_cents).toBe('number');
      expect(await run((s) => findOrder(s, DEFAULT_TENANT, randomUUID()))).toBeUndefined();
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
      await sql.query('UPDATE outbox SET published_at = now()');
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
              tenant: DEFAULT_TENANT,
              input: INPUT,
              totalCents: 4498,
              idempotencyKey: 'rollback',
              createdAt: new Date(),
            });
            await s.run(statement('SELECT', 'x', 'SELECT 1/0'));
          },
          { retry: false },
        ),
        // A statement's own error (division by zero, SQLSTATE 22012) is the call's, passed on
        // as it is: not a database failure.
      ).rejects.toMatchObject({ code: '22012' });
      expect(await run((s) => findOrder(s, DEFAULT_TENANT, id))).toBeUndefined();
    });
  });

  describe('tenants (issue #15)', () => {
    it('when two tenants use the same key, then each gets its own order and reads back only its own record', async () => {
      const key = `shared-${randomUUID()}`;
      const first = await createWithKey(key, { tenant: 'tenant-a' });
      const second = await createWithKey(key, { tenant: 'tenant-b', fingerprint: 'e'.repeat(64) });
      expect(first).toBeDefined();
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
      expect(await run((s) => readKey(s, 'tenant-a', key))).toMatchObject({
        tenant: 'tenant-a',
        orderId: first,
        fingerprint: FINGERPRINT,
        response: { body: `{"id":"${first as string}"}` },
      });
      expect(await run((s) => readKey(s, 'tenant-b', key))).toMatchObject({
        tenant: 'tenant-b',
        orderId: second,
        fingerprint: 'e'.repeat(64),
        response: { body: `{"id":"${second as string}"}` },
      });
      expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toBeUndefined();
      // Within a tenant the key is still taken.
      expect(await createWithKey(key, { tenant: 'tenant-a' })).toBeUndefined();
      expect(await ordersWithKey(key, 'tenant-a')).toBe(1);
      expect(await ordersWithKey(key, 'tenant-b')).toBe(1);
    });

    it('when another tenant reads an order by its id, then it is not found, exactly like an id nobody has', async () => {
      const id = await createWithKey(`owned-${randomUUID()}`, { tenant: 'tenant-a' });
      expect(await run((s) => findOrder(s, 'tenant-a', id as string))).toMatchObject({ id });
      expect(await run((s) => findOrder(s, 'tenant-b', id as string))).toBeUndefined();
      expect(await run((s) => findOrder(s, DEFAULT_TENANT, id as string))).toBeUndefined();
    });

    it("when one tenant's key expires, then the purge deletes it and not another tenant's key of the same name", async () => {
      const key = `purge-tenant-${randomUUID()}`;
      await createWithKey(key, { tenant: 'tenant-a', retentionMs: 1 });
      await createWithKey(key, { tenant: 'tenant-b' });
      await delay(20);
      for (let deleted = -1; deleted !== 0;) deleted = await run((s) => purgeExpiredKeys(s, 500));
      expect(await run((s) => readKey(s, 'tenant-a', key))).toBeUndefined();
      expect(await run((s) => readKey(s, 'tenant-b', key))).toBeDefined();
    });

    it("when a payment arrives for another tenant's order, then it applies (payments name the order only)", async () => {
      const id = await createWithKey(`paid-${randomUUID()}`, { tenant: 'tenant-pay' });
      const outcome = await stack.database.transaction(
        'test payment',
        (s) =>
          applyPayment(s, {
            orderId: id as string,
            paymentId: `pay-${randomUUID()}`,
            amountCents: 4498,
            streamSequence: 1,
          }),
        { retry: false },
      );
      expect(outcome).toEqual({ kind: 'paid' });
      expect(await run((s) => findOrder(s, 'tenant-pay', id as string))).toMatchObject({
        status: 'paid',
      });
    });

    it.each(['', 'has space', 'x'.repeat(65), 'tenant/a', 'ténant'])(
      'when a tenant id is not 1-64 characters of [A-Za-z0-9._:-] (%j), then the database refuses the row',
      async (tenant) => {
        await expect(createWithKey(`bad-tenant-${randomUUID()}`, { tenant })).rejects.toMatchObject(
          { code: '23514' },
        );
      },
    );
  });

  describe('the purge worker', () => {
    it('when it runs, then expired keys are purged and the outbox backlog is reported', async () => {
      const key = `worker-${randomUUID()}`;
      await createWithKey(key, { retentionMs: 1 });
      await delay(20);
      const backlogs: number[] = [];
      const { logger } = captureLogger();
      const worker = createIdempotencyPurgeWorker({
        database: stack.database,
        logger,
        intervalMs: 60_000,
        onBacklog: (backlog) => backlogs.push(backlog),
      });
      await worker.runOnce();
      expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toBeUndefined();
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
});

describe('on postgres only', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase();
    sql = testDb;
    stack = databaseStack(testDb.url, 25);
    await migrate(stack.db, readMigrations(migrationsDir()));
  });
  afterAll(async () => {
    await stack?.close();
    await testDb?.drop();
  });

  describe('another transaction holding the key', () => {
    it('when a running transaction holds the key and then commits, then a second request waits for it and finds it taken', async () => {
      const key = `wait-commit-${randomUUID()}`;
      const holder = await holdKey(testDb.url, key, FINGERPRINT);
      try {
        const second = createWithKey(key);
        await delay(100);
        await holder.client.query('COMMIT');
        expect(await second).toBeUndefined();
        expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toMatchObject({
          response: { body: holder.body },
        });
      } finally {
        await holder.client.end();
      }
    });

    it('when a running transaction holds the key and then rolls back, then the waiting request gets the key', async () => {
      const key = `wait-rollback-${randomUUID()}`;
      const holder = await holdKey(testDb.url, key, FINGERPRINT);
      try {
        const second = createWithKey(key);
        await delay(100);
        await holder.client.query('ROLLBACK');
        expect(await second).toBeDefined();
        expect(await ordersWithKey(key)).toBe(1);
      } finally {
        await holder.client.end();
      }
    });

    it('when the holder runs past lock_timeout, then the insert fails with lock_not_available (55P03) and writes nothing', async () => {
      const key = `lock-timeout-${randomUUID()}`;
      const holder = await holdKey(testDb.url, key, FINGERPRINT);
      const impatient = databaseStack(testDb.url, 2, undefined, { lockTimeoutMs: 100 });
      try {
        await expect(createWithKey(key, { database: impatient.database })).rejects.toMatchObject({
          code: LOCK_NOT_AVAILABLE,
        });
        await holder.client.query('ROLLBACK');
        expect(await ordersWithKey(key)).toBe(0);
      } finally {
        await holder.client.end();
        await impatient.close();
      }
    });

    it('when the holder process dies (its connection is cut mid-transaction), then the key is free at once', async () => {
      const key = `cut-${randomUUID()}`;
      const holder = await holdKey(testDb.url, key, FINGERPRINT);
      holder.cut();
      const orderId = await createWithKey(key);
      expect(orderId).toBeDefined();
      expect(await ordersWithKey(key)).toBe(1);
    });

    it('when the holder stops driving its transaction, then PostgreSQL ends it after idle_in_transaction_session_timeout and the key is free', async () => {
      const key = `frozen-${randomUUID()}`;
      // The holder's connection carries the pool's setting, short here.
      const holder = await holdKey(testDb.url, key, FINGERPRINT, {
        idle_in_transaction_session_timeout: 200,
      });
      try {
        const startedAt = Date.now();
        expect(await createWithKey(key)).toBeDefined();
        expect(Date.now() - startedAt).toBeGreaterThanOrEqual(150);
        expect(await ordersWithKey(key)).toBe(1);
      } finally {
        await holder.client.end().catch(() => undefined);
      }
    });
  });

  describe('another tenant holding the same key', () => {
    it("when tenant A's running transaction holds a key, then tenant B takes the same key without waiting, and A's own retry waits", async () => {
      const key = `tenant-held-${randomUUID()}`;
      const holder = await holdKey(testDb.url, key, FINGERPRINT, {}, 'tenant-a');
      // lock_timeout 100 ms: any wait for the holder's row fails with 55P03.
      const impatient = databaseStack(testDb.url, 2, undefined, { lockTimeoutMs: 100 });
      try {
        expect(
          await createWithKey(key, { tenant: 'tenant-b', database: impatient.database }),
        ).toBeDefined();
        await expect(
          createWithKey(key, { tenant: 'tenant-a', database: impatient.database }),
        ).rejects.toMatchObject({ code: LOCK_NOT_AVAILABLE });
        await holder.client.query('COMMIT');
        expect(await run((s) => readKey(s, 'tenant-a', key))).toMatchObject({
          orderId: holder.orderId,
        });
        expect(await ordersWithKey(key, 'tenant-a')).toBe(1);
        expect(await ordersWithKey(key, 'tenant-b')).toBe(1);
      } finally {
        await holder.client.end();
        await impatient.close();
      }
    });
  });

  describe('purging next to a transaction holding a key', () => {
    it('when an expired key is locked by another transaction, then the purge skips it instead of waiting', async () => {
      const key = `purge-locked-${randomUUID()}`;
      await createWithKey(key, { retentionMs: 1 });
      await delay(20);
      const locker = new pg.Client({ connectionString: testDb.url });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('SELECT key FROM idempotency_keys WHERE key = $1 FOR UPDATE', [key]);
        for (let deleted = -1; deleted !== 0;) deleted = await run((s) => purgeExpiredKeys(s, 500));
        await locker.query('COMMIT');
        expect(await run((s) => readKey(s, DEFAULT_TENANT, key))).toBeDefined();
      } finally {
        await locker.end();
      }
    });
  });

  describe('the pg adapter', () => {
    it('when a connection is opened, then it carries the configured statement_timeout, lock_timeout and idle_in_transaction_session_timeout', async () => {
      const { rows } = await stack.db.query<Record<string, string>>(
        `SELECT current_setting('statement_timeout') AS statement,
                current_setting('lock_timeout') AS lock,
                current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      expect(rows[0]).toEqual({ statement: '5s', lock: '2s', idle: '10s' });
    });

    /** The statements prepared on the connection after running one with a parameter. */
    async function preparedAfterOneQuery(target: DatabaseStack): Promise<string[]> {
      const { rows } = await target.db.transaction(async (tx) => {
        await tx.query('SELECT $1::int AS one', [1]);
        return tx.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
      });
      return rows.map((row) => row.statement);
    }

    /**
     * The writes the service makes to PostgreSQL for one transaction of three statements given
     * at once, counted by a proxy in front of the database (after a first run that connects and
     * prepares them).
     */
    async function writesForOneTransaction(pipeline: boolean): Promise<number> {
      const target = new URL(testDb.url);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
      const viaProxy = new URL(testDb.url);
      viaProxy.port = String(proxy.port);
      const proxied = databaseStack(viaProxy.toString(), 1, undefined, { pipeline });
      const transaction = () =>
        proxied.db.transaction((tx) =>
          Promise.all([
            tx.query('SELECT $1::int AS n', [1]),
            tx.query('SELECT $1::int + 1 AS n', [1]),
            tx.query('SELECT $1::int + 2 AS n', [1]),
          ]),
        );
      try {
        await transaction();
        const before = proxy.clientChunks();
        const results = await transaction();
        expect(results.map((result) => result.rows[0])).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
        return proxy.clientChunks() - before;
      } finally {
        await proxied.close();
        await proxy.close();
      }
    }

    it('when pipelined (DATABASE_PIPELINE, the default), then BEGIN and the statements go out in one write and COMMIT in a second; without it, one round trip each', async () => {
      expect(await writesForOneTransaction(true)).toBe(2);
      expect(await writesForOneTransaction(false)).toBe(5);
    });

    it.each([true, false])(
      'when a statement given with others fails (pipeline %s), then the caller gets its error and nothing of the transaction commits',
      async (pipeline) => {
        const target = databaseStack(testDb.url, 1, undefined, { pipeline });
        const key = `pipeline-${String(pipeline)}-${randomUUID()}`;
        try {
          const failing = target.db.transaction(async (tx) => {
            const [first, second, third] = await Promise.allSettled([
              tx.query(
                `INSERT INTO idempotency_keys
                   (key, fingerprint, order_id, response_status, response_headers, response_body, expires_at)
                 VALUES ($1, 'f', $2, 201, '{}', '{}', now())`,
                [key, randomUUID()],
              ),
              tx.query('SELECT 1 / $1::int AS boom', [0]),
              tx.query('SELECT $1::int AS after', [1]),
            ]);
            expect(first.status).toBe('fulfilled');
            // The statement after the failure runs in the aborted transaction.
            expect(third).toMatchObject({ status: 'rejected', reason: { code: '25P02' } });
            if (second.status === 'rejected') throw second.reason;
          });
          await expect(failing).rejects.toMatchObject({ code: '22012' });
          const { rows } = await target.db.query(
            'SELECT key FROM idempotency_keys WHERE key = $1',
            [key],
          );
          expect(rows).toEqual([]);
          // The connection is clean for the next caller.
          expect((await target.db.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
        } finally {
          await target.close();
        }
      },
    );

    it('when a statement has parameters, then it runs as a named prepared statement; with DATABASE_PREPARED_STATEMENTS=false it does not', async () => {
      expect(await preparedAfterOneQuery(stack)).toContain('SELECT $1::int AS one');
      const unprepared = databaseStack(testDb.url, 1, undefined, { preparedStatements: false });
      try {
        expect(await preparedAfterOneQuery(unprepared)).toEqual([]);
      } finally {
        await unprepared.close();
      }
    });
  });
});
