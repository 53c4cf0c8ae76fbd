// One server span, one access-log line and one duration sample per request. The trace context is
// continued from an incoming W3C `traceparent`; the span's ids go into the request scope so every
// log line and problem body written while serving the request carries them.
import {
  type Context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
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
import { ERROR_CATALOGUE, type ErrorCode } from '../errors/catalogue';
import type { RequestTracker } from './request-tracker';
import { authenticatedCaller } from './caller';
import { authFailureOf, subjectHash } from './edge/auth.middleware';
import { routeOf } from './route-of';
import { createLogWindow } from '../telemetry/log-window';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import type { RequestLocals } from './request-context.middleware';
import { type RequestLogFields, type RequestScope, requestScope } from '../telemetry/request-scope';

const propagator = new W3CTraceContextPropagator();

/**
 * The access line's level follows the catalogue's category (contract section 5): a bug
 * (`unexpected`, or a 5xx no code explains) is `error`; an expected answer, 4xx or 5xx
 * (OVERLOADED, SHUTTING_DOWN, ...), is `warn`; a client that hung up before the answer is not an
 * error at all: `info`, with `aborted: true`.
 */
export function levelOf(
  status: number,
  aborted: boolean,
  code: ErrorCode | undefined,
): 'error' | 'warn' | 'info' {
  if (code !== undefined) return ERROR_CATALOGUE[code].category === 'unexpected' ? 'error' : 'warn';
  if (aborted) return 'info';
  if (status >= 500) return 'error';
  return status >= 400 ? 'warn' : 'info';
}

/** One request being served: its scope (ids, server span) and what its end needs. */
class ObservedRequest implements RequestScope {
  private spanContext: Context | undefined;

  constructor(
    readonly fields: RequestLogFields,
    readonly span: Span,
    private readonly parent: Context,
    readonly startedAt: number,
    readonly recording: boolean,
  ) {}

  /** Made on first use: only requests that call a dependency need it. */
  get context(): Context {
    this.spanContext ??= trace.setSpan(this.parent, this.span);
    return this.spanContext;
  }
}

interface ObservedLocals extends RequestLocals {
  observed?: ObservedRequest;
}

/** At most one `http.rate_limited` line per window, with the count of 429s since the last one. */
export const RATE_LIMITED_LOG_WINDOW_MS = 10_000;

/**
 * Starts the server span and the request scope; when the response closes, ends the span, records
 * the duration, writes the access log line and ends the request's in-flight tracking (begun by
 * the drain gate, after this), in that order. One shared 'close' listener, no per-request closure.
 */
export function observe(
  telemetry: Telemetry,
  logger: Logger,
  tracker: RequestTracker,
): RequestHandler {
  const { tracer, metrics } = telemetry;
  // The limiter answers before routing: the last request's method and path (cut) say what it was.
  const rateLimited = createLogWindow<{ method: string; path: string }>(
    RATE_LIMITED_LOG_WINDOW_MS,
    (count, last) =>
      logger.warn('http.rate_limited', {
        error_code: 'RATE_LIMITED',
        error_category: 'expected',
        rate_limited: count,
        last_method: last.method,
        last_path: last.path.slice(0, 64),
        window_ms: RATE_LIMITED_LOG_WINDOW_MS,
      }),
  );

  const finish = (res: Response): void => {
    const locals = res.locals as ObservedLocals;
    const observed = locals.observed;
    if (observed === undefined) return;
    locals.observed = undefined;
    const req = res.req;
    const { span, fields } = observed;
    const route = routeOf(req);
    const status = res.statusCode;
    const aborted = !res.writableFinished;
    const ms = performance.now() - observed.startedAt;
    if (observed.recording) {
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
    metrics.recordRequest(req.method, route, status, ms / 1000);
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
    const caller = authenticatedCaller(res);
    if (caller !== undefined) {
      line.tenant = caller.tenant;
      line.subject_hash = subjectHash(caller.subject);
    }
    const authFailure = authFailureOf(res);
    if (authFailure !== undefined) line.auth_failure = authFailure;
    if (locals.errorCode !== undefined) {
      line.error_code = locals.errorCode;
      line.error_category = ERROR_CATALOGUE[locals.errorCode].category;
    }
    // A client over its rate limit can send thousands of requests a second: their answers are
    // one line per window (`http.rate_limited`), not one each; the metrics count every one.
    if (locals.errorCode === 'RATE_LIMITED')
      rateLimited.note({ method: req.method, path: req.path });
    else logger[levelOf(status, aborted, locals.errorCode)]('http.request', line);
    if (locals.tracked !== undefined) tracker.end(locals.tracked);
  };
  // EventEmitter calls a listener with the emitter as `this`: the response.
  function onClose(this: Response): void {
    finish(this);
  }

  return (req: Request, res: Response, next: NextFunction) => {
    const startedAt = performance.now();
    const locals = res.locals as ObservedLocals;
    const requestId = locals.requestId;
    // Without a traceparent header there is nothing to continue: a new root.
    const parent =
      req.headers.traceparent === undefined
        ? ROOT_CONTEXT
        : propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    // No attributes at the start: the samplers (parent-based, trace id ratio) do not read them, and
    // the tracer would copy and check them for every span, sampled or not.
    const span = tracer.startSpan(req.method, { kind: SpanKind.SERVER }, parent);
    // Most spans are not sampled: describe only the ones that will be exported.
    const recording = span.isRecording();
    if (recording) {
      span.setAttributes({
        [ATTR_HTTP_REQUEST_METHOD]: req.method,
        [ATTR_URL_PATH]: req.path,
        [ATTR_URL_SCHEME]: 'http',
        [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersion,
        [ATTR_CLIENT_ADDRESS]: req.socket.remoteAddress ?? '',
        [ATTR_USER_AGENT_ORIGINAL]: req.headers['user-agent'] ?? '',
        'request.id': requestId,
      });
    }
    const spanContext = span.spanContext();
    const fields: RequestLogFields = isSpanContextValid(spanContext)
      ? { request_id: requestId, trace_id: spanContext.traceId, span_id: spanContext.spanId }
      : { request_id: requestId };
    const observed = new ObservedRequest(fields, span, parent, startedAt, recording);
    locals.observed = observed;
    res.on('close', onClose);
    requestScope.run(observed, next);
  };
}
