// The orders API (contract section 6): parse and validate at the edge, then hand over to the use
// cases. Errors are thrown as catalogue AppErrors; the app's error mapper answers them with
// problem+json. The tenant is the caller's, as the authentication step set it (http/caller.ts;
// the default tenant when none was set): scopes are checked there, not here.
import { type Request, type Response, Router } from 'express';
import { ValidationError } from '../../errors/catalogue';
import { callerOf } from '../../http/caller';
import { requestSignal } from '../../http/request-context.middleware';
import { validateOrderInput } from '../domain/order-input.validation';
import type { StoredResponse } from '../data/idempotency.repository';
import type { CreateOrder } from '../use-cases/create-order.use-case';
import type { GetOrder } from '../use-cases/get-order.use-case';
import { parseIdempotencyKey } from './idempotency-key.header';

export interface OrdersRoutesDeps {
  readonly createOrder: CreateOrder;
  readonly getOrder: GetOrder;
}

function send(res: Response, response: StoredResponse, replayed: boolean): void {
  // The deadline middleware may have answered 503 already; the work finished anyway, and a
  // retry with the same key gets this response.
  if (res.headersSent) return;
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  if (replayed) res.setHeader('Idempotent-Replayed', 'true');
  // An order is one customer's data at one moment: no shared or browser cache keeps it.
  res.setHeader('Cache-Control', 'no-store');
  res.status(response.status).type('application/json').send(response.body);
}

/**
 * Every value of one header as sent, from the raw headers. Node joins repeated unknown headers
 * into one value (`k1, k2`), which would pass as a single Idempotency-Key. Not
 * `req.headersDistinct`: that getter adds a property to req after Express swapped its prototype,
 * a new hidden class per request (see http/stable-shapes.ts).
 */
export function headerValues(
  rawHeaders: readonly string[],
  lowerCaseName: string,
): string | string[] | undefined {
  let found: string | string[] | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== lowerCaseName.length || name.toLowerCase() !== lowerCaseName) continue;
    const value = rawHeaders[i + 1] as string;
    found = found === undefined ? value : [...(typeof found === 'string' ? [found] : found), value];
  }
  return found;
}

export function ordersRouter(deps: OrdersRoutesDeps): Router {
  const router = Router();

  router.post('/v1/orders', async (req: Request, res: Response) => {
    const key = parseIdempotencyKey(headerValues(req.rawHeaders, 'idempotency-key'));
    // One answer with every problem: the header's and the body's.
    const input = validateOrderInput(req.body, key.ok ? [] : [key.error]);
    if (!key.ok) throw new ValidationError([key.error]);
    const result = await deps.createOrder({
      tenant: callerOf(res).tenant,
      idempotencyKey: key.key,
      input,
      signal: requestSignal(res),
    });
    send(res, result.response, result.replayed);
  });

  router.get('/v1/orders/:id', async (req: Request<{ id: string }>, res: Response) => {
    const order = await deps.getOrder(callerOf(res).tenant, req.params.id, requestSignal(res));
    if (res.headersSent) return;
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).json(order);
  });

  return router;
}
