// Requests Node's HTTP parser rejects before Express sees them (garbage, oversized headers, a
// client too slow to send its headers), and CONNECT (which Node hands to a 'connect' listener, or
// drops), still get a problem+json answer with a request id and a trace id (fresh ones: no span
// exists yet), a log line to find them by, and then the socket closes.
//
// A request the app is already serving (its headers were in, its body too slow for
// HTTP_REQUEST_TIMEOUT_MS) is answered through the app instead, so the access log and the metrics
// say what the client got (issue #11: the wire said 408, the access log 400).
import { randomBytes, randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CATALOGUE, type ErrorCode } from '../errors/catalogue';
import { problemOf } from '../errors/problem';
import type { Logger } from '../telemetry/logger';
import type { ServiceMetrics } from '../telemetry/metrics';

function codeFor(error: NodeJS.ErrnoException): ErrorCode {
  if (error.code === 'HPE_HEADER_OVERFLOW') return 'HEADERS_TOO_LARGE';
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'CLIENT_TIMEOUT';
  return 'MALFORMED_REQUEST';
}

/** Answers a problem straight on the socket (no app, no response object) and closes it. */
export function answerOnSocket(
  socket: Duplex,
  code: ErrorCode,
  detail: string,
  context: { metrics: ServiceMetrics; logger: Logger; reason: string },
  extraHeaders: Readonly<Record<string, string>> = {},
): void {
  const spec = ERROR_CATALOGUE[code];
  const requestId = randomUUID();
  const traceId = randomBytes(16).toString('hex');
  context.metrics.countError(code, spec.category);
  context.logger.warn('http.client_error', {
    request_id: requestId,
    trace_id: traceId,
    error_code: code,
    error_category: spec.category,
    reason: context.reason,
  });
  const body = JSON.stringify(problemOf(code, detail, { requestId, traceId }));
  const headers: Record<string, string> = {
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'X-Request-Id': requestId,
    ...(spec.retryable ? { 'Retry-After': '1' } : {}),
    ...extraHeaders,
    Connection: 'close',
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${spec.status} ${STATUS_CODES[spec.status] ?? 'Error'}\r\n${head}\r\n${body}`,
  );
}

/**
 * Answers a request the app is serving when the server gives up on its client (the whole-request
 * timeout); returns false when it cannot (an answer has started).
 */
export type AnswerInApp = (res: ServerResponse, code: ErrorCode, detail: string) => boolean;

export function clientErrorHandler(metrics: ServiceMetrics, logger: Logger, inApp?: AnswerInApp) {
  return (error: NodeJS.ErrnoException, socket: Duplex): void => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code = codeFor(error);
    // Node's own field for the response in progress on this socket (no public API exposes it);
    // the whole-process test of a slow body past HTTP_REQUEST_TIMEOUT_MS fails if it goes.
    const inProgress = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inProgress !== undefined && inProgress !== null) {
      const detail = `${ERROR_CATALOGUE[code].title}.`;
      if (inApp?.(inProgress, code, detail) === true) {
        inProgress.once('finish', () => socket.destroy());
      } else {
        socket.destroy();
      }
      return;
    }
    answerOnSocket(socket, code, `${ERROR_CATALOGUE[code].title}.`, {
      metrics,
      logger,
      reason: error.code ?? error.message,
    });
  };
}

/** CONNECT: this service is no proxy. Node would drop the connection without a word. */
export function connectHandler(metrics: ServiceMetrics, logger: Logger) {
  return (_req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => undefined);
    answerOnSocket(
      socket,
      'METHOD_NOT_ALLOWED',
      'CONNECT is not allowed: this service is not a proxy.',
      { metrics, logger, reason: 'CONNECT' },
    );
  };
}
