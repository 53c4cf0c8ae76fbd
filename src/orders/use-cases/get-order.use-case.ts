// GET /v1/orders/{id}. An id that is not a UUID cannot name an order: 404 without a query
// (PostgreSQL would reject it as invalid uuid syntax, a 500 otherwise). Another tenant's order is
// 404 ORDER_NOT_FOUND too (issue #15), never 403: the same statement finds no row, the same
// answer is thrown, so neither the body nor the path taken confirms that the id exists.
import { AppError } from '../../errors/catalogue';
import type { CancelSignal } from '../../resilience/cancellation';
import type { Database } from '../db/database';
import { findOrder } from '../data/order.repository';
import { isOrderId, type Order, orderJson } from '../domain/order';
import { assertTenantId } from '../domain/tenant';

/** The caller's tenant (`callerOf(res).tenant`) and the order id from the path. */
export type GetOrder = (tenant: string, id: string, signal?: CancelSignal) => Promise<Order>;

function notFound(): AppError {
  return new AppError('ORDER_NOT_FOUND', 'No order has this id.');
}

export function getOrderUseCase(deps: { readonly database: Database }): GetOrder {
  return async (tenant, id, signal) => {
    assertTenantId(tenant);
    if (!isOrderId(id)) throw notFound();
    const order = await deps.database.run((session) => findOrder(session, tenant, id), {
      signal,
      retry: true,
    });
    if (order === undefined) throw notFound();
    return orderJson(order);
  };
}
