// Load shedding: when too many requests are in flight, or the event loop is already late, a new
// request is refused at once (503 OVERLOADED, Retry-After) rather than queued behind work that
// will make it, and everything else, late.
import type { RequestHandler } from 'express';
import type { AppConfig } from '../../config/schema';
import type { RequestTracker } from '../../runtime/request-tracker';
import type { EventLoopMonitor } from '../../telemetry/event-loop-monitor';
import type { Reply } from '../problem-reply';

export function loadShedding(
  limits: AppConfig['limits'],
  tracker: RequestTracker,
  eventLoop: EventLoopMonitor,
  reply: Reply,
): RequestHandler {
  return (_req, res, next) => {
    // The tracker already counts this request.
    if (tracker.inFlight > limits.maxConcurrentRequests) {
      reply(res, 'OVERLOADED', `More than ${limits.maxConcurrentRequests} requests are in flight.`);
      return;
    }
    const delay = eventLoop.p99Ms();
    if (limits.maxEventLoopDelayMs > 0 && delay > limits.maxEventLoopDelayMs) {
      reply(res, 'OVERLOADED', `The event loop is ${Math.round(delay)} ms late.`);
      return;
    }
    next();
  };
}
