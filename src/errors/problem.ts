// RFC 9457 problem details: the only shape of an error body. No stack trace or internal message
// ever reaches a client: `detail` comes from the catalogue or from an AppError written for clients.
import type { ServerResponse } from 'node:http';
import { ERROR_CATALOGUE, type ErrorCode } from './catalogue';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode;
  readonly detail: string;
  readonly request_id: string | undefined;
  readonly trace_id: string | undefined;
  readonly [extension: string]: unknown;
}

/** The `type` URI of a code: stable, and the runbook's heading for it. */
export function problemType(code: ErrorCode): string {
  return `urn:ops-service:error:${code.toLowerCase().replace(/_/g, '-')}`;
}

export function problemOf(
  code: ErrorCode,
  detail: string,
  scope: { requestId?: string | undefined; traceId?: string | undefined },
  extensions: Readonly<Record<string, unknown>> = {},
): Problem {
  const spec = ERROR_CATALOGUE[code];
  return {
    ...extensions,
    type: problemType(code),
    title: spec.title,
    status: spec.status,
    code,
    detail,
    request_id: scope.requestId,
    trace_id: scope.traceId,
  };
}

/**
 * Writes the problem. Retryable codes get `Retry-After` (seconds) unless one is set already.
 * Works on a bare ServerResponse too (client errors are answered before Express sees them).
 */
export function sendProblem(
  res: ServerResponse,
  problem: Problem,
  retryAfterSeconds?: number,
): void {
  const body = JSON.stringify(problem);
  if (ERROR_CATALOGUE[problem.code].retryable && !res.hasHeader('Retry-After')) {
    res.setHeader('Retry-After', String(retryAfterSeconds ?? 1));
  }
  res.statusCode = problem.status;
  res.setHeader('Content-Type', PROBLEM_CONTENT_TYPE);
  // An error is about this request at this moment: no cache may keep or replay it.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
