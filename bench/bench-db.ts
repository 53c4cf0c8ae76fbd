// The database of the orders scenarios (e)-(h), owned by the orchestrator (bench/run.ts): a
// database of its own, `ops_bench_<random hex>`, created on the PostgreSQL server of the admin URL
// (by default the `test` database on 127.0.0.1:5432, only used to run CREATE/DROP DATABASE),
// emptied before each scenario and dropped at the end. Nothing outside that database is read or
// written.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const CONNECT_TIMEOUT_MS = 5_000;
/** The migration runner's file names (src/orders/db/migrations.runner.ts). */
const MIGRATION_FILE = /^(\d{3,})_[a-z0-9_]+\.sql$/;

export interface TableCounts {
  readonly orders: number;
  readonly orderItems: number;
  readonly outbox: number;
  readonly keysCompleted: number;
  readonly keysTotal: number;
}

export interface TenantCounts {
  readonly orders: number;
  readonly keys: number;
}

export interface BenchDatabase {
  readonly name: string;
  /** For DATABASE_URL: the admin URL with this database's name as its path. */
  readonly url: string;
  /** Drops every table (the `public` schema and everything in it) and recreates the schema. */
  reset(): Promise<void>;
  /** migrations/*.sql in file order, each in its own transaction, as the service's runner would. */
  applyMigrations(migrationsDir: string): Promise<string[]>;
  counts(): Promise<TableCounts>;
  /** Orders and idempotency keys that belong to `tenant` (migration 007's tenant_id). */
  tenantCounts(tenant: string): Promise<TenantCounts>;
  /**
   * Scenarios (i) and (j): `count` orders of the default tenant, each with ORDER_BODY's items,
   * written directly (not through a server) with the fixed `createdAt`; returns their ids in
   * insertion order.
   */
  seedOrders(count: number, order: SeedOrder): Promise<string[]>;
  /** DROP DATABASE ... WITH (FORCE); idempotent. */
  drop(): Promise<void>;
}

/** What every seeded order holds (the body of ORDER_BODY, its total and a fixed creation time). */
export interface SeedOrder {
  readonly customerId: string;
  readonly currency: string;
  readonly items: readonly {
    readonly sku: string;
    readonly quantity: number;
    readonly unit_price_cents: number;
  }[];
  readonly totalCents: number;
  /** ISO 8601 with milliseconds, as the API shows created_at. */
  readonly createdAt: string;
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'ops-bench',
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function withDatabase(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Where bench databases are created and dropped (BENCH_DATABASE_ADMIN_URL). */
export const ADMIN_URL =
  process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** CREATE/DROP DATABASE, emptying it, migrations, counting rows. */
export const DB_TIMEOUT_MS = 20_000;

export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `ops_bench_${randomBytes(6).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = withDatabase(adminUrl, name);
  let dropped: Promise<void> | undefined;

  return {
    name,
    url,
    async reset() {
      await withClient(url, (client) =>
        client.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;'),
      );
    },
    async applyMigrations(migrationsDir) {
      const files = readdirSync(migrationsDir)
        .filter((file) => MIGRATION_FILE.test(file))
        .sort();
      if (files.length === 0) throw new Error(`no migrations in ${migrationsDir}`);
      await withClient(url, async (client) => {
        for (const file of files) {
          const script = readFileSync(path.join(migrationsDir, file), 'utf8');
          await client.query('BEGIN');
          try {
            await client.query(script);
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw new Error(`migration ${file}: ${String(error)}`, { cause: error });
          }
        }
      });
      return files;
    },
    counts() {
      return withClient(url, async (client) => {
        const { rows } = await client.query<Record<keyof TableCounts, string>>(
          `SELECT (SELECT count(*) FROM orders) AS "orders",
                  (SELECT count(*) FROM order_items) AS "orderItems",
                  (SELECT count(*) FROM outbox) AS "outbox",
                  (SELECT count(*) FROM idempotency_keys k JOIN orders o ON o.id = k.order_id)
                    AS "keysCompleted",
                  (SELECT count(*) FROM idempotency_keys) AS "keysTotal"`,
        );
        const row = rows[0];
        if (row === undefined) throw new Error('counts: no row');
        return {
          orders: Number(row.orders),
          orderItems: Number(row.orderItems),
          outbox: Number(row.outbox),
          keysCompleted: Number(row.keysCompleted),
          keysTotal: Number(row.keysTotal),
        };
      });
    },
    tenantCounts(tenant) {
      return withClient(url, async (client) => {
        const { rows } = await client.query<Record<keyof TenantCounts, string>>(
          `SELECT (SELECT count(*) FROM orders WHERE tenant_id = $1) AS "orders",
                  (SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1) AS "keys"`,
          [tenant],
        );
        const row = rows[0];
        if (row === undefined) throw new Error('tenantCounts: no row');
        return { orders: Number(row.orders), keys: Number(row.keys) };
      });
    },
    seedOrders(count, order) {
      return withClient(url, async (client) => {
        await client.query('BEGIN');
        try {
          const { rows } = await client.query<{ id: string }>(
            `INSERT INTO orders (id, customer_id, currency, total_cents, status, idempotency_key,
                                 created_at)
             SELECT gen_random_uuid(), $2, $3, $4, 'pending', 'bench-seed-' || n, $5
               FROM generate_series(1, $1::integer) AS n
              ORDER BY n
             RETURNING id`,
            [count, order.customerId, order.currency, order.totalCents, order.createdAt],
          );
          await client.query(
            `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents)
             SELECT o.id, line.position, line.item->>'sku', (line.item->>'quantity')::integer,
                    (line.item->>'unit_price_cents')::bigint
               FROM orders o,
                    jsonb_array_elements($1::jsonb) WITH ORDINALITY AS line(item, position)`,
            [JSON.stringify(order.items)],
          );
          await client.query('COMMIT');
          return rows.map((row) => row.id);
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      });
    },
    drop() {
      dropped ??= withClient(adminUrl, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      });
      return dropped;
    },
  };
}
