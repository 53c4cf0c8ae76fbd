// The scope of the request being served, carried through async calls, so every log line written
// while serving it has its ids without passing a logger around.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestScope {
  readonly request_id: string;
  trace_id?: string;
  span_id?: string;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

export function currentScope(): RequestScope | undefined {
  return requestScope.getStore();
}
