// Liveness and readiness. Liveness says only that the process answers (it never checks
// dependencies: a restart does not fix a database). Readiness tells the truth from the lifecycle
// machine: 200 only in ready.serving, otherwise 503 with the state and the reasons.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { readinessOf } from '../../../machines/lifecycle.machine';
import type { LifecycleView } from '../lifecycle-view';
import type { ShedCheck } from '../edge/load-shedding.middleware';
import { breaksProtocol } from '../edge/protocol.middleware';

const LIVE = new Set(['/health', '/livez']);
const READY = new Set(['/ready', '/readyz']);

/** The probe paths and their methods (other methods get 405 with Allow, OPTIONS gets 204). */
export const PROBE_METHODS: ReadonlyMap<string, readonly string[]> = new Map(
  [...LIVE, ...READY].map((path) => [path, ['GET', 'HEAD']]),
);

/** GET/HEAD /health, /livez, /ready, /readyz; anything else goes on. */
export function probes(
  lifecycle: LifecycleView,
  wouldShed: ShedCheck = () => undefined,
): RequestHandler {
  const live = (res: Response): void => {
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).json({ status: 'ok' });
  };
  // Public: coarse, stable words only. The raw cause (a PostgreSQL message, say) is detail for
  // operators, on the ops listener's /lifecycle (issue #11).
  const ready = (res: Response): void => {
    const snapshot = lifecycle.getSnapshot();
    // Never ready while the request it routes would be shed (contract section 4).
    const shedding = readinessOf(snapshot) === 'ready' ? wouldShed() : undefined;
    const status = shedding === undefined ? readinessOf(snapshot) : 'degraded';
    const dependencies: Record<string, { status: string; essential: boolean }> = {};
    const reasons: Record<string, string> = {};
    for (const [name, dependency] of Object.entries(snapshot.context.dependencies)) {
      dependencies[name] = { status: dependency.status, essential: dependency.essential };
      if (dependency.status === 'down') reasons[name] = 'unavailable';
      else if (dependency.status !== 'up') reasons[name] = 'not checked yet';
    }
    if (shedding !== undefined) reasons.load = 'overloaded';
    else if (status !== 'ready') reasons.lifecycle = `service is ${status}`;
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(status === 'ready' ? 200 : 503)
      .json(status === 'ready' ? { status, dependencies } : { status, reasons, dependencies });
  };
  return (req: Request, res: Response, next: NextFunction) => {
    if ((req.method === 'GET' || req.method === 'HEAD') && !breaksProtocol(req)) {
      if (LIVE.has(req.path)) return live(res);
      if (READY.has(req.path)) return ready(res);
    }
    next();
  };
}
