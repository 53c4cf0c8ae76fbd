// Answers a request with a problem: the request's ids, the code counted in metrics and set on the
// server span. Every error response of the main listener goes through here.
import type { Response } from 'express';
import { ERROR_CATALOGUE, type ErrorCode } from '../errors/catalogue';
import { problemOf, sendProblem } from '../errors/problem';
import type { ServiceMetrics } from '../telemetry/metrics';
import type { RequestLocals } from './request-context.middleware';
import { currentScope, type RequestScope } from '../telemetry/request-scope';

export interface ReplyOptions {
  readonly extensions?: Readonly<Record<string, unknown>>;
  readonly retryAfterSeconds?: number | undefined;
}

export type Reply = (
  res: Response,
  code: ErrorCode,
  detail: string,
  options?: ReplyOptions,
) => void;

export function createReply(metrics: ServiceMetrics): Reply {
  return (res, code, detail, options = {}) => {
    const locals = res.locals as Partial<RequestLocals> & { observed?: RequestScope };
    const { requestId } = locals;
    locals.errorCode = code;
    // Outside the request's async scope (a server timer answering it), its scope is in locals.
    const scope = currentScope() ?? locals.observed;
    scope?.span?.setAttribute('error.code', code);
    metrics.countError(code, ERROR_CATALOGUE[code].category);
    sendProblem(
      res,
      problemOf(code, detail, { requestId, traceId: scope?.fields.trace_id }, options.extensions),
      options.retryAfterSeconds,
    );
  };
}
