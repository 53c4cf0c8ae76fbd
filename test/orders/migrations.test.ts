// Migrations on a real PostgreSQL: applied once, recorded, idempotent, safe when replicas start
// together, and refused when an applied file was edited.
import { cpSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { migrate, readMigrations } from '../../src/orders/db/migrations.runner';
import { migrationsDir } from '../../src/orders/orders.module';
import { tempDir } from '../helpers/temp-dir';
import { databaseStack } from './support/database-stack';
import { createTestDatabase, type TestDatabase } from './support/test-database';

let database: TestDatabase;
beforeEach(async () => {
  database = await createTestDatabase();
});
afterEach(async () => {
  await database.drop();
});

async function tables(): Promise<string[]> {
  const rows = await database.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
  );
  return rows.map((row) => row.table_name);
}

describe('migrations', () => {
  it('when the database is empty, then every migration is applied in order and recorded with its checksum', async () => {
    const stack = databaseStack(database.url);
    try {
      const report = await migrate(stack.db, readMigrations(migrationsDir()));
      expect(report.applied).toEqual([
        '001_orders.sql',
        '002_outbox.sql',
        '003_idempotency_keys.sql',
        '004_idempotency_keys_in_order_transaction.sql',
        '005_payments.sql',
      ]);
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
      expect(recorded.map((r) => r.version)).toEqual(['001', '002', '003', '004', '005']);
      for (const row of recorded) expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await stack.close();
    }
  });

  it('when migrations run again, then nothing is applied (idempotent)', async () => {
    const stack = databaseStack(database.url);
    try {
      await migrate(stack.db, readMigrations(migrationsDir()));
      const again = await migrate(stack.db, readMigrations(migrationsDir()));
      expect(again.applied).toEqual([]);
      expect(again.total).toBe(5);
    } finally {
      await stack.close();
    }
  });

  it('when four replicas migrate at the same moment, then each succeeds and every migration is applied once', async () => {
    const stacks = Array.from({ length: 4 }, () => databaseStack(database.url, 2));
    try {
      const reports = await Promise.all(
        stacks.map((stack) => migrate(stack.db, readMigrations(migrationsDir()))),
      );
      const applied = reports.flatMap((report) => report.applied);
      expect(applied.sort()).toEqual([
        '001_orders.sql',
        '002_outbox.sql',
        '003_idempotency_keys.sql',
        '004_idempotency_keys_in_order_transaction.sql',
        '005_payments.sql',
      ]);
      const [{ count }] = (await database.query<{ count: string }>(
        'SELECT count(*) FROM schema_migrations',
      )) as [{ count: string }];
      expect(Number(count)).toBe(5);
    } finally {
      await Promise.all(stacks.map((stack) => stack.close()));
    }
  });

  it('when an applied migration file was edited, then migrating fails and says which file', async () => {
    const dir = tempDir('ops-migrations-');
    const stack = databaseStack(database.url);
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

  it('when a migration fails, then nothing of the run is applied (one transaction)', async () => {
    const dir = tempDir('ops-migrations-');
    const stack = databaseStack(database.url);
    try {
      cpSync(migrationsDir(), dir.path, { recursive: true });
      dir.write('099_broken.sql', 'CREATE TABLE broken (id int); SELECT no_such_function();');
      await expect(migrate(stack.db, readMigrations(dir.path))).rejects.toThrow(/no_such_function/);
      expect(await tables()).toEqual([]);
    } finally {
      dir.remove();
      await stack.close();
    }
  });
});
