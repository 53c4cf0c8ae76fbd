// GET /v1/orders/{id}. An id that is not a UUID cannot name an order: 404 without a query
// (PostgreSQL would reject it as invalid uuid syntax, a 500 otherwise).
import { AppError } from '../../errors/catalogue';
import type { Database } from '../db/database';
import { findOrder } from '../data/order.repository';
import { isOrderId, type Order, orderJson } from '../domain/order';

export type GetOrder = (id: string, signal?: AbortSignal) => Promise<Order>;

function notFound(): AppError {
  return new AppError('ORDER_NOT_FOUND', 'No order has this id.');
}

export function getOrderUseCase(deps: { readonly database: Database }): GetOrder {
  return async (id, signal) => {
    if (!isOrderId(id)) throw notFound();
    const order = await deps.database.run((session) => findOrder(session, id), {
      signal,
      retry: true,
    });
    if (order === undefined) throw notFound();
    return orderJson(order);
  };
}
