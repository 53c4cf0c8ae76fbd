// The route template that matched a request (`/v1/orders/:id`), never the raw path: bounded
// cardinality for metrics and spans, and no client text in logs.
import type { IncomingMessage } from 'node:http';

export const UNMATCHED_ROUTE = '(unmatched)';

export function routeOf(req: IncomingMessage): string {
  const { route, baseUrl } = req as IncomingMessage & {
    route?: { path?: unknown };
    baseUrl?: string;
  };
  const path = route?.path;
  return typeof path === 'string' ? `${baseUrl ?? ''}${path}` : UNMATCHED_ROUTE;
}
