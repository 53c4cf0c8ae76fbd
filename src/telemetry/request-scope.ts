// The scope of the unit of work being served (an HTTP request, a NATS message), carried through
// async calls: its log fields (so every line written while serving it has its ids without passing
// a logger around) and its span (the explicit parent of dependency spans). Log and trace context,
// so it lives with telemetry: HTTP and the message consumers both open one here.
//
// Work that is not the request's must leave the scope (`outsideRequest`): a timer or a callback
// created while serving a request inherits its scope, and its lines would carry that request's
// ids (the exporter's retry timer did; issue #12).
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Span } from '@opentelemetry/api';

export interface RequestLogFields {
  readonly request_id: string;
  readonly trace_id?: string;
  readonly span_id?: string;
}

export interface RequestScope {
  readonly fields: RequestLogFields;
  readonly span?: Span;
  /** The OpenTelemetry context holding the server span. */
  readonly context?: Context;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

export function currentScope(): RequestScope | undefined {
  return requestScope.getStore();
}

/** For the logger: the current request's ids, if a request is being served. */
export function currentLogFields(): RequestLogFields | undefined {
  return requestScope.getStore()?.fields;
}

/** Runs `fn` outside any request scope (lifecycle events triggered from inside a request). */
export function outsideRequest<T>(fn: () => T): T {
  return requestScope.exit(fn);
}
