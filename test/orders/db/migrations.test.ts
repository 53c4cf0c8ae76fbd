// Migrations, once on the real PostgreSQL and once on PGlite: applied once, recorded, idempotent,
// safe when replicas start together (PostgreSQL), and refused when an applied file was edited.
// Each test starts from an empty database.
import { cpSync, appendFileSync } from 'node:fs';
import path from 'node:path';
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
        expect(recorded.map((r) => r.version)).toEqual(['001', '002', '003', '004', '005', '006']);
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
