// The order as the API shows it (contract section 6), and its total. Amounts are integers in the
// currency's minor unit ("cents"); JSON numbers are exact up to Number.MAX_SAFE_INTEGER, so the
// total is summed in BigInt and refused beyond it.

export type OrderStatus = 'pending' | 'paid';

export interface OrderItem {
  readonly sku: string;
  readonly quantity: number;
  readonly unit_price_cents: number;
}

/** What a client asks for: the validated body of POST /v1/orders. */
export interface OrderInput {
  readonly customer_id: string;
  readonly currency: string;
  readonly items: readonly OrderItem[];
}

export interface Order {
  readonly id: string;
  readonly customer_id: string;
  readonly currency: string;
  readonly items: readonly OrderItem[];
  readonly total_cents: number;
  readonly status: OrderStatus;
  readonly created_at: string;
}

/** The sum of quantity x unit price, or undefined when it exceeds Number.MAX_SAFE_INTEGER. */
export function totalCents(items: readonly OrderItem[]): number | undefined {
  let total = 0n;
  for (const item of items) total += BigInt(item.quantity) * BigInt(item.unit_price_cents);
  return total <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(total) : undefined;
}

/** The API's JSON, members always in the contract's order (a GET and a replay read the same). */
export function orderJson(order: Order): Order {
  return {
    id: order.id,
    customer_id: order.customer_id,
    currency: order.currency,
    items: order.items.map((item) => ({
      sku: item.sku,
      quantity: item.quantity,
      unit_price_cents: item.unit_price_cents,
    })),
    total_cents: order.total_cents,
    status: order.status,
    created_at: order.created_at,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Order ids are UUIDs; anything else cannot name an order (and never reaches the database). */
export function isOrderId(value: string): boolean {
  return UUID.test(value);
}

export function orderLocation(id: string): string {
  return `/v1/orders/${id}`;
}
