// Scenario (f): the floor for POST /v1/orders. A minimal Express 5 app and a pg.Pool doing the
// same database work as the service's create-order path, without the service's layers (no
// request id, access log, tracing, metrics, rate limit, load shedding, deadline, resilience
// policy, idempotency protocol in several steps, full validation). Started by bench/run.ts with:
//   DATABASE_URL        the bench database, migrations/*.sql already applied by the orchestrator
//   BENCH_POOL_MAX      the service's default DATABASE_POOL_MAX (read from its config)
//   BENCH_RETENTION_MS  the service's default IDEMPOTENCY_RETENTION_MS (the key's expires_at)
//   BENCH_SERVICE_PROTOCOL  "1" for scenario (g): the service's V8 heap settings and the database
//                       protocol it uses (named prepared statements, pg's pipeline mode with
//                       BEGIN and the four inserts sent together, then COMMIT); otherwise pg's
//                       defaults, one statement per round trip, unnamed
// One transaction per request: the order (created_at set here, as the service sets it), its items
// (one statement, the service's SQL), the outbox event `order.created` and the idempotency record,
// inserted completed with the response to replay, as the service leaves it. Answers 201, Location and the order JSON (contract section 6).
// Every key is new in the bench: a reused key fails the primary key (500), there is no replay.
import { createHash, randomUUID } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import pg from 'pg';
import { ORDERS_PATH, serveBenchApp } from './protocol';
import { tuneHeap } from '../src/runtime/heap-tuning';

interface Item {
  readonly sku: string;
  readonly quantity: number;
  readonly unit_price_cents: number;
}

interface Body {
  readonly customer_id: string;
  readonly currency: string;
  readonly items: readonly Item[];
}

const INSERT_ORDER = `INSERT INTO orders (id, customer_id, currency, total_cents, status, idempotency_key, created_at)
  VALUES ($1, $2, $3, $4, 'pending', $5, $6)`;
const INSERT_ITEMS = `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents)
  SELECT $1, line.position, line.item->>'sku', (line.item->>'quantity')::integer,
         (line.item->>'unit_price_cents')::bigint
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS line(item, position)`;
const INSERT_EVENT = `INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, subject, payload)
  VALUES ($1, 'order', $2, 'order.created', 'orders.created', $3::jsonb)`;
const INSERT_KEY = `INSERT INTO idempotency_keys
    (key, fingerprint, order_id, response_status, response_headers, response_body, expires_at)
  VALUES ($1, $2, $3, 201, $4::jsonb, $5, now() + $6::double precision * interval '1 millisecond')`;

function positiveInt(name: string): number {
  const value = Number(process.env[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

const poolMax = positiveInt('BENCH_POOL_MAX');
const retentionMs = positiveInt('BENCH_RETENTION_MS');
const serviceProtocol = process.env.BENCH_SERVICE_PROTOCOL === '1';
// (g) runs with the service's process settings for V8's heap too (src/runtime/heap-tuning.ts), so
// that it and the service differ in their code only; (f) stays plain Node.js.
if (serviceProtocol) tuneHeap();
const poolConfig: pg.PoolConfig & { pipeline?: boolean } = {
  connectionString: process.env.DATABASE_URL,
  max: poolMax,
  pipeline: serviceProtocol,
};
const pool = new pg.Pool(poolConfig);

/** pg's default (unnamed: parsed and planned on every call), or named and prepared once per connection. */
function statement(name: string, text: string, values: unknown[]): pg.QueryConfig {
  return serviceProtocol ? { name, text, values } : { text, values };
}
// An idle connection that breaks would otherwise be an uncaught exception.
pool.on('error', () => undefined);

/** The shape only (types), not the service's field-by-field validation. */
function bodyOf(value: unknown): Body | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const body = value as Record<string, unknown>;
  const { items } = body;
  if (
    typeof body.customer_id !== 'string' ||
    typeof body.currency !== 'string' ||
    !Array.isArray(items) ||
    items.length === 0
  ) {
    return undefined;
  }
  for (const item of items as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { sku, quantity, unit_price_cents: price } = item as Record<string, unknown>;
    if (typeof sku !== 'string' || !Number.isInteger(quantity) || !Number.isInteger(price)) {
      return undefined;
    }
  }
  return value as Body;
}

async function createOrder(req: Request, res: Response): Promise<void> {
  const key = req.get('idempotency-key');
  const body = bodyOf(req.body);
  if (key === undefined || key === '' || body === undefined) {
    res.status(400).json({ error: 'bad request' });
    return;
  }
  const id = randomUUID();
  const items = body.items.map((item) => ({
    sku: item.sku,
    quantity: item.quantity,
    unit_price_cents: item.unit_price_cents,
  }));
  const total = items.reduce((sum, item) => sum + item.quantity * item.unit_price_cents, 0);
  const fingerprint = createHash('sha256').update(JSON.stringify(req.body)).digest('hex');
  const location = `/v1/orders/${id}`;

  const order = {
    id,
    customer_id: body.customer_id,
    currency: body.currency,
    items,
    total_cents: total,
    status: 'pending',
    created_at: new Date().toISOString(),
  };
  const json = JSON.stringify(order);
  const inserts = [
    statement('order', INSERT_ORDER, [
      id,
      body.customer_id,
      body.currency,
      total,
      key,
      order.created_at,
    ]),
    statement('items', INSERT_ITEMS, [id, JSON.stringify(items)]),
    statement('event', INSERT_EVENT, [
      randomUUID(),
      id,
      JSON.stringify({ event_type: 'order.created', occurred_at: order.created_at, order }),
    ]),
    statement('key', INSERT_KEY, [
      key,
      fingerprint,
      id,
      JSON.stringify({ Location: location }),
      json,
      retentionMs,
    ]),
  ];

  const client = await pool.connect();
  try {
    if (serviceProtocol) {
      await Promise.all([client.query('BEGIN'), ...inserts.map((insert) => client.query(insert))]);
    } else {
      await client.query('BEGIN');
      for (const insert of inserts) await client.query(insert);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
  res.status(201).setHeader('Location', location);
  res.type('application/json').send(json);
}

const app = express();
app.post(ORDERS_PATH, express.json(), createOrder);
// Connected before it announces itself, as the service is before /ready answers 200.
serveBenchApp(app, { ready: pool.query('SELECT 1'), beforeExit: () => pool.end() });
