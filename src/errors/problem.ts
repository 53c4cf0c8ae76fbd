// RFC 9457 problem details: the only shape of an error body. No stack trace or internal message
// ever reaches a client: `detail` comes from the catalogue or from an AppError written for clients.
import type { Response } from 'express';
import { ERROR_CATALOGUE, type ErrorCode } from './catalogue';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

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

export function problemOf(
  code: ErrorCode,
  detail: string,
  scope: { requestId?: string | undefined; traceId?: string | undefined },
  extensions: Readonly<Record<string, unknown>> = {},
): Problem {
  const spec = ERROR_CATALOGUE[code];
  return {
    ...extensions,
    type: `urn:ops-service:error:${code.toLowerCase().replace(/_/g, '-')}`,
    title: spec.title,
    status: spec.status,
    code,
    detail,
    request_id: scope.requestId,
    trace_id: scope.traceId,
  };
}

export function sendProblem(res: Response, problem: Problem): void {
  res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}
