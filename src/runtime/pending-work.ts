// "What is still running?": one answer for the operator when shutdown is cut short (the drain ran
// out, a second signal skipped it, the hard stop fired) and on /lifecycle while draining: the
// oldest in-flight requests, the workers not stopped, the resources not closed, and the kinds of
// handles keeping the event loop alive.
import type { InFlightRequest, RequestTracker } from '../http/request-tracker';

export const PENDING_REQUESTS_SHOWN = 20;

export interface PendingWork {
  readonly in_flight: number;
  /** The oldest PENDING_REQUESTS_SHOWN of them. */
  readonly requests: readonly InFlightRequest[];
  readonly workers: readonly string[];
  readonly resources: readonly string[];
  /** Active libuv handles and requests by kind (`TCPSocketWrap`, `Timeout`, ...). */
  readonly handles: Readonly<Record<string, number>>;
}

export interface PendingWorkSources {
  readonly tracker: RequestTracker;
  readonly workers: () => readonly string[];
  readonly resources: () => readonly string[];
}

export function activeHandleKinds(
  read: () => string[] = () => process.getActiveResourcesInfo(),
): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const kind of read()) kinds[kind] = (kinds[kind] ?? 0) + 1;
  return kinds;
}

export function pendingWork(sources: PendingWorkSources): PendingWork {
  return {
    in_flight: sources.tracker.inFlight,
    requests: sources.tracker.describe(PENDING_REQUESTS_SHOWN),
    workers: sources.workers(),
    resources: sources.resources(),
    handles: activeHandleKinds(),
  };
}
