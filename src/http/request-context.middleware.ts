// The first middleware on the main listener: request id, in-flight tracking, the request's
// cancellation signal, `Connection: close` once intake has stopped, and the fast 503 past the drain.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { drainDeadlineOf, TAGS } from '../../machines/lifecycle.machine';
import type { ErrorCode } from '../errors/catalogue';
import type { CancelSignal } from '../resilience/cancellation';
import { type RequestTracker, signalOf, type TrackedRequest } from './request-tracker';
import type { LifecycleView } from './lifecycle-view';
import type { Reply } from './problem-reply';

// Bounded length and a safe alphabet: an incoming id is echoed into headers and logs.
const VALID_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

export const REQUEST_ID_HEADER = 'x-request-id';

export interface RequestLocals {
  requestId: string;
  tracked: TrackedRequest;
  /** The catalogue code of the problem answered, for the access log. */
  errorCode?: ErrorCode;
}

export function requestIdOf(req: Request): string {
  const incoming = req.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * The cancellation signal of a request on the main listener: it fires when the request's deadline
 * (HANDLER_TIMEOUT_MS) passes, at the drain deadline, or when the connection closes before the
 * answer was sent. Handlers pass it to their dependency calls, which stop their work on it.
 */
export function requestSignal(res: Response): CancelSignal {
  const { tracked } = res.locals as Partial<RequestLocals>;
  if (tracked === undefined) {
    throw new Error('requestSignal: the response is not tracked (route mounted before drainGate)');
  }
  return signalOf(tracked);
}

/**
 * First on the main listener: every response carries X-Request-Id (kept if valid, else new), and
 * `X-Content-Type-Options: nosniff` (no browser renders an error body as HTML).
 */
export function requestId(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const id = requestIdOf(req);
    res.setHeader('X-Request-Id', id);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    (res.locals as RequestLocals).requestId = id;
    next();
  };
}

/**
 * After the probes (which always answer, untracked): the fast 503 for work that can no longer
 * finish in time, `Connection: close` once intake has stopped, and in-flight tracking.
 */
export function drainGate(
  lifecycle: LifecycleView,
  tracker: RequestTracker,
  handlerTimeoutMs: number,
  reply: Reply,
): RequestHandler {
  const shuttingDown = (res: Response, detail: string): void => {
    res.setHeader('Connection', 'close');
    reply(res, 'SHUTTING_DOWN', detail);
  };
  return (_req: Request, res: Response, next: NextFunction) => {
    const snapshot = lifecycle.getSnapshot();
    // Past the drain deadline nothing new can finish: answer before any other work.
    if (snapshot.hasTag(TAGS.stopping)) {
      shuttingDown(res, 'The service is shutting down; retry on another instance.');
      return;
    }
    if (snapshot.hasTag(TAGS.draining)) {
      // A request on an already-open connection during the drain is served, unless its own
      // deadline would outlive what is left of the drain budget.
      const deadline = drainDeadlineOf(snapshot.context);
      if (deadline !== undefined && deadline - Date.now() < handlerTimeoutMs) {
        shuttingDown(
          res,
          'The service is shutting down and cannot promise to finish this request.',
        );
        return;
      }
      // Once the listener is closed, each connection ends with its next response. Not during the
      // delay: a client told to reconnect then comes back through routing that may still point
      // here, and its new connection can be waiting in the accept backlog when the listener
      // closes, which resets it (see stopAccepting in src/runtime/listeners.ts).
      if (snapshot.hasTag(TAGS.intakeClosed)) res.setHeader('Connection', 'close');
    }
    // Ended by observe's 'close' listener (one listener per request, not two).
    const locals = res.locals as RequestLocals;
    locals.tracked = tracker.begin(res, locals.requestId);
    next();
  };
}
