-- The W3C traceparent of the request that wrote the event (NULL outside a request), so the relay's
-- publish span, and the consumers of the message, continue that request's trace.
ALTER TABLE outbox ADD COLUMN trace_parent text;
