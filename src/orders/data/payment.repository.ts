// Captured payments (migrations/005) and the order becoming paid, in one transaction: a
// redelivered message finds its payment_id already applied and changes nothing, and the order
// moves from pending to paid only once.
//
// Not scoped to a tenant (issue #15): `payments.captured` names the order by its id only and
// comes from the trusted broker, not from a caller, so a payment applies to that order whatever
// its tenant. Order ids are random UUIDs, unique across tenants.
import type { Session } from '../db/database';
import { sql } from '../db/database';

export interface CapturedPayment {
  readonly orderId: string;
  readonly paymentId: string;
  readonly amountCents: number;
  readonly streamSequence: number;
}

export type PaymentOutcome =
  /** The order is now paid. */
  | { readonly kind: 'paid' }
  /** This payment was applied before (a redelivery): nothing changed. */
  | { readonly kind: 'duplicate' }
  /** No such order (yet): worth another delivery, then the dead-letter subject. */
  | { readonly kind: 'unknown_order' }
  /** Can never apply: the amount is not the order's total, or another payment paid it. */
  | { readonly kind: 'rejected'; readonly reason: string };

const LOCK_ORDER = sql(
  'SELECT',
  'orders',
  'SELECT status, total_cents FROM orders WHERE id = $1 FOR UPDATE',
);

const FIND_PAYMENT = sql(
  'SELECT',
  'payments',
  'SELECT order_id FROM payments WHERE payment_id = $1',
);

const INSERT_PAYMENT = sql(
  'INSERT',
  'payments',
  `INSERT INTO payments (payment_id, order_id, amount_cents, stream_sequence)
   VALUES ($1, $2, $3, $4)`,
);

const MARK_PAID = sql(
  'UPDATE',
  'orders',
  `UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1 AND status = 'pending'`,
);

/**
 * Applies the payment inside a transaction; writes only when the outcome is `paid`. The order
 * row is locked first, so two payments for one order are decided one after the other.
 */
export async function applyPayment(
  session: Session,
  payment: CapturedPayment,
): Promise<PaymentOutcome> {
  const { rows } = await session.run<{ status: string; total_cents: number }>(LOCK_ORDER, [
    payment.orderId,
  ]);
  const order = rows[0];
  if (order === undefined) return { kind: 'unknown_order' };
  const seen = await session.run<{ order_id: string }>(FIND_PAYMENT, [payment.paymentId]);
  const earlier = seen.rows[0];
  if (earlier !== undefined) {
    return earlier.order_id === payment.orderId
      ? { kind: 'duplicate' }
      : { kind: 'rejected', reason: `payment_id was already applied to order ${earlier.order_id}` };
  }
  if (order.status !== 'pending') {
    return { kind: 'rejected', reason: `order is already ${order.status} (another payment)` };
  }
  if (order.total_cents !== payment.amountCents) {
    return {
      kind: 'rejected',
      reason: `amount_cents ${payment.amountCents} is not the order total ${order.total_cents}`,
    };
  }
  await session.run(INSERT_PAYMENT, [
    payment.paymentId,
    payment.orderId,
    payment.amountCents,
    payment.streamSequence,
  ]);
  await session.run(MARK_PAID, [payment.orderId]);
  return { kind: 'paid' };
}
