// Each request's own deadline (REQUEST_TIMEOUT_MS): when it passes, the request's AbortSignal
// fires (handlers and dependency calls stop their work) and, unless an answer has started, the
// client gets 503 REQUEST_TIMEOUT.
import type { RequestHandler } from 'express';
import { AppError } from '../../errors/catalogue';
import type { RequestTracker } from '../request-tracker';
import type { Reply } from '../problem-reply';
import type { RequestLocals } from '../request-context.middleware';

export function requestDeadline(
  timeoutMs: number,
  tracker: RequestTracker,
  reply: Reply,
): RequestHandler {
  return (_req, res, next) => {
    const { tracked } = res.locals as RequestLocals;
    // Cleared by the tracker when the request ends (one 'close' listener per request, not two).
    tracked.deadline = setTimeout(() => {
      tracker.abort(
        tracked,
        new AppError('REQUEST_TIMEOUT', `Not answered within ${timeoutMs} ms.`),
      );
      if (!res.headersSent) {
        reply(res, 'REQUEST_TIMEOUT', `The request was not answered within ${timeoutMs} ms.`);
      }
    }, timeoutMs);
    next();
  };
}
