// Load shedding: when too many handlers are running, or the event loop is already late, a new
// request is refused at once (503 OVERLOADED, Retry-After) rather than queued behind work that
// will make it, and everything else, late. It runs after the body has arrived: a request takes a
// handler slot only then, so clients trickling bodies cannot hold every slot (issue #11: 50 slow
// uploads kept every order at 503 for 31 s). Readiness asks the same check: it never says ready
// while a request it lets in would be shed (issue #12).
import type { RequestHandler } from 'express';
import type { AppConfig } from '../../config/schema';
import type { RequestTracker } from '../request-tracker';
import type { EventLoopMonitor } from '../../telemetry/event-loop-monitor';
import type { Reply } from '../problem-reply';
import type { RequestLocals } from '../request-context.middleware';

/** Why a new request would be shed right now, or undefined when it would be served. */
export type ShedCheck = () => string | undefined;

export function shedCheck(
  limits: AppConfig['limits'],
  tracker: RequestTracker,
  eventLoop: EventLoopMonitor,
): ShedCheck {
  return () => {
    if (tracker.handling >= limits.maxConcurrentRequests) {
      return `${limits.maxConcurrentRequests} requests are already running.`;
    }
    const delay = eventLoop.p99Ms();
    if (limits.maxEventLoopDelayMs > 0 && delay > limits.maxEventLoopDelayMs) {
      return `The event loop is ${Math.round(delay)} ms late.`;
    }
    return undefined;
  };
}

/** Sheds by `check`; readiness asks the same check, so the two always agree. */
export function loadShedding(
  check: ShedCheck,
  tracker: RequestTracker,
  reply: Reply,
): RequestHandler {
  return (_req, res, next) => {
    const reason = check();
    if (reason !== undefined) {
      reply(res, 'OVERLOADED', reason);
      return;
    }
    tracker.startHandling((res.locals as RequestLocals).tracked);
    next();
  };
}
