// Load shedding: when too many handlers are running, or the event loop is already late, a new
// request is refused at once (503 OVERLOADED, Retry-After) rather than queued behind work that
// will make it, and everything else, late. It runs after the body has arrived: a request takes a
// handler slot only then, so clients trickling bodies cannot hold every slot (issue #11: 50 slow
// uploads kept every order at 503 for 31 s).
import type { RequestHandler } from 'express';
import type { AppConfig } from '../../config/schema';
import type { RequestTracker } from '../../runtime/request-tracker';
import type { EventLoopMonitor } from '../../telemetry/event-loop-monitor';
import type { Reply } from '../problem-reply';
import type { RequestLocals } from '../request-context.middleware';

export function loadShedding(
  limits: AppConfig['limits'],
  tracker: RequestTracker,
  eventLoop: EventLoopMonitor,
  reply: Reply,
): RequestHandler {
  return (_req, res, next) => {
    if (tracker.handling >= limits.maxConcurrentRequests) {
      reply(res, 'OVERLOADED', `${limits.maxConcurrentRequests} requests are already running.`);
      return;
    }
    const delay = eventLoop.p99Ms();
    if (limits.maxEventLoopDelayMs > 0 && delay > limits.maxEventLoopDelayMs) {
      reply(res, 'OVERLOADED', `The event loop is ${Math.round(delay)} ms late.`);
      return;
    }
    tracker.startHandling((res.locals as RequestLocals).tracked);
    next();
  };
}
