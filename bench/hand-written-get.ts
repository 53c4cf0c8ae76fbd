// Scenario (j): the baseline for GET /v1/orders/{id}. A hand-written Express 5 handler with the
// one change ops-service makes to Express's request handling (keepShapes, as in (p)) and a
// pg.Pool running the service's own SELECT (SELECT_ORDER from src/orders/data/order.repository.ts,
// the same text) as a named prepared statement. It answers what the contract requires of this
// route: 200 with the order JSON (members in the contract's order), Content-Type
// application/json, Cache-Control: no-store, an X-Request-Id (a new UUID: the load generator
// sends none) and X-Content-Type-Options: nosniff, no ETag (the service sends none), 404 for an id that is not a UUID or names no order of the default tenant. Nothing
// else: no access log, tracing, metrics, rate limit (so no RateLimit headers), load shedding,
// deadline or resilience policy.
// Started by bench/run.ts with:
//   DATABASE_URL    the bench database, migrations applied and orders seeded by the orchestrator
//   BENCH_POOL_MAX  the service's default DATABASE_POOL_MAX (read from its config)
// The service's process settings for V8's heap (src/heap-tuned.ts), so that this baseline and the
// service differ in their code only.
import '../src/heap-tuned';
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import pg from 'pg';
import { SELECT_ORDER } from '../src/orders/data/order.repository';
import { keepShapes } from '../src/http/stable-shapes';
import { ORDER_PATH_PREFIX, serveBenchApp } from './protocol';

/** The tenant of every call with AUTH_MODE=off (src/http/caller.ts), as the service runs here. */
const TENANT = 'default';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface OrderRow {
  id: string;
  customer_id: string;
  currency: string;
  total_cents: string;
  status: string;
  created_at: Date;
  items: { sku: string; quantity: number; unit_price_cents: number }[];
}

const max = Number(process.env.BENCH_POOL_MAX);
if (!Number.isInteger(max) || max < 1) throw new Error('BENCH_POOL_MAX must be a positive integer');
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max });
// An idle connection that breaks would otherwise be an uncaught exception.
pool.on('error', () => undefined);

function notFound(res: Response): void {
  res.status(404).json({ error: 'not found' });
}

async function getOrder(req: Request<{ id: string }>, res: Response): Promise<void> {
  res.setHeader('X-Request-Id', randomUUID());
  res.setHeader('X-Content-Type-Options', 'nosniff');
  const { id } = req.params;
  if (!UUID.test(id)) {
    notFound(res);
    return;
  }
  const { rows } = await pool.query<OrderRow>({
    name: 'order',
    text: SELECT_ORDER.text,
    values: [id, TENANT],
  });
  const row = rows[0];
  if (row === undefined) {
    notFound(res);
    return;
  }
  res.setHeader('Cache-Control', 'no-store');
  res.json({
    id: row.id,
    customer_id: row.customer_id,
    currency: row.currency,
    items: row.items,
    total_cents: Number(row.total_cents),
    status: row.status,
    created_at: row.created_at.toISOString(),
  });
}

const app = express();
keepShapes(app);
// As the service (src/http/app.ts): no ETag, whose hash of every body a no-store answer never uses.
app.set('etag', false);
app.get(`${ORDER_PATH_PREFIX}:id`, getOrder);
// Connected before it announces itself, as the service is before /ready answers 200.
serveBenchApp(app, { ready: pool.query('SELECT 1'), beforeExit: () => pool.end() });
