// W3C trace context (`traceparent`) in and out of places that are not HTTP requests: the outbox
// row an order writes, the NATS messages the relay publishes and the payments consumer reads. The
// service registers no global propagator, so these use one of their own.
import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

const propagator = new W3CTraceContextPropagator();

/** The `traceparent` of the span in `context`, or undefined when there is none (or it is invalid). */
export function traceparentOf(context: Context | undefined): string | undefined {
  if (context === undefined) return undefined;
  const carrier: Record<string, string> = {};
  propagator.inject(context, carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

/** A context whose remote parent is `traceparent` (the root context when it is absent or invalid). */
export function contextOf(traceparent: string | null | undefined): Context {
  if (traceparent === undefined || traceparent === null) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}
