// Requests Node's HTTP parser rejects before Express sees them (garbage, oversized headers, a
// client too slow to send its headers or body) still get a problem+json answer with a request id
// and a trace id (fresh ones: no span exists yet), a log line to find them by, and then the
// socket closes.
import { randomBytes, randomUUID } from 'node:crypto';
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

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

export function clientErrorHandler(metrics: ServiceMetrics, logger: Logger) {
  return (error: NodeJS.ErrnoException, socket: Duplex): void => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code = codeFor(error);
    const spec = ERROR_CATALOGUE[code];
    const requestId = randomUUID();
    const traceId = randomBytes(16).toString('hex');
    metrics.countError(code, spec.category);
    logger.warn('http.client_error', {
      request_id: requestId,
      trace_id: traceId,
      error_code: code,
      error_category: spec.category,
      reason: error.code ?? error.message,
    });
    const body = JSON.stringify(problemOf(code, `${spec.title}.`, { requestId, traceId }));
    socket.end(
      `HTTP/1.1 ${spec.status} ${REASONS[spec.status] ?? 'Bad Request'}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        (spec.retryable ? 'Retry-After: 1\r\n' : '') +
        'Connection: close\r\n\r\n' +
        body,
    );
  };
}
