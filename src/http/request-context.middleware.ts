// The first middleware on the main listener: request id, in-flight tracking, the request's
// AbortSignal, `Connection: close` while draining, and the fast 503 once the drain is over.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { TAGS } from '../../machines/lifecycle.machine';
import { sendProblem, problemOf } from '../errors/problem';
import type { RequestTracker, TrackedRequest } from '../runtime/request-tracker';
import type { LifecycleView } from '../runtime/lifecycle-view';
import { currentScope } from './request-scope';

// Bounded length and a safe alphabet: an incoming id is echoed into headers and logs.
const VALID_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export const REQUEST_ID_HEADER = 'x-request-id';

export interface RequestLocals {
  requestId: string;
  tracked: TrackedRequest;
}

export function requestIdOf(req: Request): string {
  const incoming = req.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** First on the main listener: every response carries X-Request-Id (kept if valid, else new). */
export function requestId(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const id = requestIdOf(req);
    res.setHeader('X-Request-Id', id);
    (res.locals as RequestLocals).requestId = id;
    next();
  };
}

/**
 * After the probes (which always answer, untracked): the fast 503 once the drain is over,
 * `Connection: close` while draining, and in-flight tracking.
 */
export function drainGate(lifecycle: LifecycleView, tracker: RequestTracker): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    const locals = res.locals as RequestLocals;
    const snapshot = lifecycle.getSnapshot();

    // Past the drain deadline nothing new can finish in time: answer before any other work.
    if (snapshot.hasTag(TAGS.stopping)) {
      res.setHeader('Connection', 'close');
      res.setHeader('Retry-After', '1');
      sendProblem(
        res,
        problemOf('SHUTTING_DOWN', 'The service is shutting down; retry on another instance.', {
          requestId: locals.requestId,
          traceId: currentScope()?.fields.trace_id,
        }),
      );
      return;
    }
    // While draining, every response asks the client to reconnect (to another instance).
    if (snapshot.hasTag(TAGS.draining)) res.setHeader('Connection', 'close');

    const tracked = tracker.begin(res);
    res.once('close', () => tracker.end(tracked));
    locals.tracked = tracked;
    next();
  };
}
