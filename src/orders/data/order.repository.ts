// Orders and their items (migrations/001, tenants 007). Inserts run inside the creating
// transaction (see use-cases/create-order.use-case.ts); items are sent as one JSON parameter and
// expanded in SQL, so an order of 100 items is still one statement. Every order belongs to a
// tenant, and an order is read only by its tenant: to anyone else it does not exist.
import type { Session } from '../db/database';
import { sql } from '../db/database';
import type { Order, OrderInput, OrderItem, OrderStatus } from '../domain/order';

const INSERT_ORDER = sql(
  'INSERT',
  'orders',
  `INSERT INTO orders
     (id, tenant_id, customer_id, currency, total_cents, status, idempotency_key, created_at)
   VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)`,
);

const INSERT_ITEMS = sql(
  'INSERT',
  'order_items',
  `INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price_cents)
   SELECT $1, line.position, line.item->>'sku', (line.item->>'quantity')::integer,
          (line.item->>'unit_price_cents')::bigint
     FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS line(item, position)`,
);

export const SELECT_ORDER = sql(
  'SELECT',
  'orders',
  `SELECT o.id, o.customer_id, o.currency, o.total_cents, o.status, o.created_at,
          coalesce((SELECT jsonb_agg(jsonb_build_object(
                             'sku', i.sku, 'quantity', i.quantity,
                             'unit_price_cents', i.unit_price_cents) ORDER BY i.line_no)
                      FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb) AS items
     FROM orders o
    WHERE o.id = $1 AND o.tenant_id = $2`,
);

export interface NewOrder {
  readonly id: string;
  /** The tenant it belongs to (the caller's); only that tenant reads it. */
  readonly tenant: string;
  readonly input: OrderInput;
  readonly totalCents: number;
  readonly idempotencyKey: string;
  /**
   * Set by the caller: the response stored with the Idempotency-Key is written before the order,
   * so it cannot wait for a database default. Millisecond precision, as the API shows it.
   */
  readonly createdAt: Date;
}

/** The order as it will be stored and shown, before it is written. */
export function orderOf(order: NewOrder): Order {
  return {
    id: order.id,
    customer_id: order.input.customer_id,
    currency: order.input.currency,
    items: order.input.items,
    total_cents: order.totalCents,
    status: 'pending',
    created_at: order.createdAt.toISOString(),
  };
}

/**
 * Inserts the order and its items (both given to the session at once: with pipelining they go
 * out together, and the items follow the order in any case); returns the order as stored.
 */
export function insertOrder(session: Session, order: NewOrder): Promise<Order> {
  // Made first: its created_at is the text the row gets (one toISOString per order, not two).
  const stored = orderOf(order);
  // Callbacks rather than an async function, as insertKey (idempotency.repository.ts).
  return Promise.allSettled([
    session.run(INSERT_ORDER, [
      order.id,
      order.tenant,
      order.input.customer_id,
      order.input.currency,
      order.totalCents,
      order.idempotencyKey,
      stored.created_at,
    ]),
    session.run(INSERT_ITEMS, [order.id, JSON.stringify(order.input.items)]),
  ]).then(([inserted, items]) => {
    // The order's own failure explains the items' (they fail for want of it, or as part of an
    // aborted transaction).
    if (inserted.status === 'rejected') throw inserted.reason;
    if (items.status === 'rejected') throw items.reason;
    return stored;
  });
}

type OrderRow = {
  id: string;
  customer_id: string;
  currency: string;
  total_cents: number;
  status: OrderStatus;
  created_at: Date;
  items: OrderItem[];
};

/**
 * The tenant's order with this id; undefined when there is none or it is another tenant's. Both
 * are the same statement, on the primary key, with the same zero rows: nothing tells them apart.
 */
export function findOrder(
  session: Session,
  tenant: string,
  id: string,
): Promise<Order | undefined> {
  return session.run<OrderRow>(SELECT_ORDER, [id, tenant]).then(({ rows }) => {
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      id: row.id,
      customer_id: row.customer_id,
      currency: row.currency,
      items: row.items,
      total_cents: row.total_cents,
      status: row.status,
      created_at: row.created_at.toISOString(),
    };
  });
}
