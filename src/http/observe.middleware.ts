// One server span, one access-log line and one duration sample per request. The trace context is
// continued from an incoming W3C `traceparent`; the span's ids go into the request scope so every
// log line and problem body written while serving the request carries them.
import {
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  defaultTextMapGetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ERROR_CATALOGUE } from '../errors/catalogue';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import type { RequestLocals } from './request-context.middleware';
import { type RequestLogFields, type RequestScope, requestScope } from './request-scope';

export const UNMATCHED_ROUTE = '(unmatched)';
const propagator = new W3CTraceContextPropagator();

/** The route template that matched (`/v1/orders/:id`), never the raw path: bounded cardinality. */
export function routeOf(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  return typeof route === 'string' ? `${req.baseUrl}${route}` : UNMATCHED_ROUTE;
}

export function observe(telemetry: Telemetry, logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const startedAt = performance.now();
    const locals = res.locals as RequestLocals;
    const parent = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const span = telemetry.tracer.startSpan(
      req.method,
      { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: req.method } },
      parent,
    );
    // Most spans are not sampled: describe only the ones that will be exported.
    const recording = span.isRecording();
    if (recording) {
      span.setAttributes({
        [ATTR_URL_PATH]: req.path,
        [ATTR_URL_SCHEME]: 'http',
        [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersion,
        [ATTR_CLIENT_ADDRESS]: req.socket.remoteAddress ?? '',
        [ATTR_USER_AGENT_ORIGINAL]: req.headers['user-agent'] ?? '',
        'request.id': locals.requestId,
      });
    }
    const spanContext = span.spanContext();
    const fields: RequestLogFields = isSpanContextValid(spanContext)
      ? { request_id: locals.requestId, trace_id: spanContext.traceId, span_id: spanContext.spanId }
      : { request_id: locals.requestId };
    const scope: RequestScope = { fields, span, context: trace.setSpan(parent, span) };

    res.once('close', () => {
      const route = routeOf(req);
      const status = res.statusCode;
      const aborted = !res.writableFinished;
      const ms = performance.now() - startedAt;
      if (recording) {
        span.updateName(`${req.method} ${route}`);
        span.setAttribute(ATTR_HTTP_ROUTE, route);
        span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        if (status >= 500 || aborted) {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: aborted ? 'response aborted' : `HTTP ${status}`,
          });
        }
      }
      span.end();
      telemetry.metrics.recordRequest(req.method, route, status, ms / 1000);
      // Written after the response, outside the request's async scope: its ids are passed here.
      const line: Record<string, unknown> = {
        request_id: fields.request_id,
        trace_id: fields.trace_id,
        span_id: fields.span_id,
        method: req.method,
        route,
        status,
        duration_ms: Math.round(ms * 10) / 10,
        bytes: Number(res.getHeader('content-length') ?? 0),
      };
      if (aborted) line.aborted = true;
      if (locals.errorCode !== undefined) {
        line.error_code = locals.errorCode;
        line.error_category = ERROR_CATALOGUE[locals.errorCode].category;
      }
      logger[status >= 500 || aborted ? 'error' : status >= 400 ? 'warn' : 'info'](
        'http.request',
        line,
      );
    });
    requestScope.run(scope, next);
  };
}
