// Migrations, once on the real PostgreSQL and once on PGlite: applied once, recorded, idempotent,
// safe when replicas start together (PostgreSQL), and refused when an applied file was edited.
// Each test starts from an empty database. Then 007 (tenants) on a database that already holds
// rows: they are kept, as the default tenant's.
import { cpSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DEFAULT_TENANT } from '../../../src/http/caller';
import { insertKey, readKey } from '../../../src/orders/data/idempotency.repository';
import { findOrder, insertOrder } from '../../../src/orders/data/order.repository';
import type { Session } from '../../../src/orders/db/database';
import { migrate, readMigrations } from '../../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../../src/orders/orders.module';
import { tempDir } from '../../helpers/temp-dir';
import { type BackendDatabase, backends, OPEN_TIMEOUT_MS } from '../support/backends';

let database: BackendDatabase;

async function tables(): Promise<string[]> {
  const rows = await database.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
  );
  return rows.map((row) => row.table_name);
}

/** The files in migrations/, in the order they apply: the list a new migration must extend. */
const MIGRATION_FILES = [
  '001_orders.sql',
  '002_outbox.sql',
  '003_idempotency_keys.sql',
  '004_idempotency_keys_in_order_transaction.sql',
  '005_payments.sql',
  '006_outbox_trace_parent.sql',
  '007_tenants.sql',
];

describe.each(backends)('on $name', (backend) => {
  beforeAll(async () => {
    database = await backend.open();
  }, OPEN_TIMEOUT_MS);
  beforeEach(async () => {
    await database.reset();
  });
  afterAll(async () => {
    await database?.close();
  });

  describe('migrations', () => {
    it('when the database is empty, then every migration is applied in order and recorded with its checksum', async () => {
      const stack = database.stack();
      try {
        const report = await migrate(stack.db, readMigrations(migrationsDir()));
        expect(report.applied).toEqual(MIGRATION_FILES);
        expect(await tables()).toEqual([
          'idempotency_keys',
          'order_items',
          'orders',
          'outbox',
          'payments',
          'schema_migrations',
        ]);
        const recorded = await database.query<{ version: string; checksum: string }>(
          'SELECT version, checksum FROM schema_migrations ORDER BY version',
        );
        expect(recorded.map((r) => r.version)).toEqual([
          '001',
          '002',
          '003',
          '004',
          '005',
          '006',
          '007',
        ]);
        for (const row of recorded) expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      } finally {
        await stack.close();
      }
    });

    it('when migrations run again, then nothing is applied (idempotent)', async () => {
      const stack = database.stack();
      try {
        await migrate(stack.db, readMigrations(migrationsDir()));
        const again = await migrate(stack.db, readMigrations(migrationsDir()));
        expect(again.applied).toEqual([]);
        expect(again.total).toBe(MIGRATION_FILES.length);
      } finally {
        await stack.close();
      }
    });

    // PostgreSQL only: replicas are processes sharing one server, and the runner's advisory lock
    // queues them. PGlite lives inside one process, and a second process on its data directory is
    // refused at startup (directory lock, see orders.pglite.process.test.ts): there are no
    // replicas, and calls from one process are serialized by PGlite itself, not by the lock.
    if (backend.name === 'postgres') {
      it('when four replicas migrate at the same moment, then each succeeds and every migration is applied once', async () => {
        const stacks = Array.from({ length: 4 }, () => database.stack(2));
        try {
          const reports = await Promise.all(
            stacks.map((stack) => migrate(stack.db, readMigrations(migrationsDir()))),
          );
          const applied = reports.flatMap((report) => report.applied);
          expect(applied.sort()).toEqual(MIGRATION_FILES);
          const [{ count }] = (await database.query<{ count: string }>(
            'SELECT count(*) FROM schema_migrations',
          )) as [{ count: string }];
          expect(Number(count)).toBe(MIGRATION_FILES.length);
        } finally {
          await Promise.all(stacks.map((stack) => stack.close()));
        }
      });
    }

    it('when an applied migration file was edited, then migrating fails and says which file', async () => {
      const dir = tempDir('ops-migrations-');
      const stack = database.stack();
      try {
        cpSync(migrationsDir(), dir.path, { recursive: true });
        await migrate(stack.db, readMigrations(dir.path));
        appendFileSync(path.join(dir.path, '002_outbox.sql'), '\n-- an edit after the fact\n');
        await expect(migrate(stack.db, readMigrations(dir.path))).rejects.toThrow(
          /002_outbox\.sql was changed after it was applied/,
        );
      } finally {
        dir.remove();
        await stack.close();
      }
    });

    it('when 007 (tenants) runs on rows written before it, then they are kept as the default tenant and keys become unique per tenant', async () => {
      const stack = database.stack();
      try {
        const all = readMigrations(migrationsDir());
        await migrate(
          stack.db,
          all.filter((migration) => migration.version < '007'),
        );
        // Written with the schema of 006: no tenant anywhere.
        const id = randomUUID();
        const key = `before-tenants-${randomUUID()}`;
        await database.query(
          `INSERT INTO orders (id, customer_id, currency, total_cents, idempotency_key)
           VALUES ($1, 'customer-old', 'EUR', 3998, $2)`,
          [id, key],
        );
        await database.query(
          `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents)
           VALUES ($1, 1, 'SKU-OLD', 2, 1999)`,
          [id],
        );
        await database.query(
          `INSERT INTO idempotency_keys
             (key, fingerprint, order_id, response_status, response_headers, response_body, expires_at)
           VALUES ($1, 'f', $2, 201, '{}', '{"id":"old"}', now() + interval '1 day')`,
          [key, id],
        );

        const report = await migrate(stack.db, all);
        expect(report.applied).toEqual(['007_tenants.sql']);

        const read = <T>(work: (session: Session) => Promise<T>) =>
          stack.database.run(work, { retry: false });
        expect(await read((s) => findOrder(s, DEFAULT_TENANT, id))).toMatchObject({
          id,
          customer_id: 'customer-old',
          total_cents: 3998,
          status: 'pending',
          items: [{ sku: 'SKU-OLD', quantity: 2, unit_price_cents: 1999 }],
        });
        expect(await read((s) => findOrder(s, 'tenant-a', id))).toBeUndefined();
        expect(await read((s) => readKey(s, DEFAULT_TENANT, key))).toMatchObject({
          tenant: DEFAULT_TENANT,
          orderId: id,
          response: { body: '{"id":"old"}' },
        });
        expect(await read((s) => readKey(s, 'tenant-a', key))).toBeUndefined();
        expect(
          await database.query(
            'SELECT tenant_id FROM orders UNION ALL SELECT tenant_id FROM idempotency_keys',
          ),
        ).toEqual([{ tenant_id: DEFAULT_TENANT }, { tenant_id: DEFAULT_TENANT }]);

        // Keys are unique per tenant: the old key is still taken in the default tenant and free
        // in another.
        const [keyFor] = await database.query<{ pk: string }>(
          "SELECT pg_get_constraintdef(oid) AS pk FROM pg_constraint WHERE conname = 'idempotency_keys_pkey'",
        );
        expect(keyFor?.pk).toBe('PRIMARY KEY (tenant_id, key)');
        const claim = (tenant: string) =>
          stack.database.transaction(
            'test claim',
            async (s) => {
              const orderId = randomUUID();
              const ours = await insertKey(s, {
                tenant,
                key,
                fingerprint: 'f',
                orderId,
                response: { status: 201, headers: {}, body: '{}' },
                retentionMs: 60_000,
              });
              if (ours) {
                await insertOrder(s, {
                  id: orderId,
                  tenant,
                  input: {
                    customer_id: 'customer-new',
                    currency: 'EUR',
                    items: [{ sku: 'SKU-NEW', quantity: 1, unit_price_cents: 0 }],
                  },
                  totalCents: 0,
                  idempotencyKey: key,
                  createdAt: new Date(),
                });
              }
              return ours;
            },
            { retry: false },
          );
        expect(await claim(DEFAULT_TENANT)).toBe(false);
        expect(await claim('tenant-a')).toBe(true);
      } finally {
        await stack.close();
      }
    });

    it('when a migration fails, then nothing of the run is applied (one transaction)', async () => {
      const dir = tempDir('ops-migrations-');
      const stack = database.stack();
      try {
        cpSync(migrationsDir(), dir.path, { recursive: true });
        dir.write('099_broken.sql', 'CREATE TABLE broken (id int); SELECT no_such_function();');
        await expect(migrate(stack.db, readMigrations(dir.path))).rejects.toThrow(
          /no_such_function/,
        );
        expect(await tables()).toEqual([]);
      } finally {
        dir.remove();
        await stack.close();
      }
    });
  });
});
