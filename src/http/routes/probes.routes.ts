// Liveness and readiness. Liveness says only that the process answers (it never checks
// dependencies: a restart does not fix a database). Readiness tells the truth from the lifecycle
// machine: 200 only in ready.serving, otherwise 503 with the state and the reasons.
import { type Request, type Response, Router } from 'express';
import { readinessOf } from '../../../machines/lifecycle.machine';
import type { LifecycleView } from '../../runtime/lifecycle-view';

export function probesRouter(lifecycle: LifecycleView): Router {
  const router = Router();
  const live = (_req: Request, res: Response): void => {
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).json({ status: 'ok' });
  };
  const ready = (_req: Request, res: Response): void => {
    const snapshot = lifecycle.getSnapshot();
    const status = readinessOf(snapshot);
    const dependencies = snapshot.context.dependencies;
    const reasons: Record<string, string> = {};
    for (const [name, dependency] of Object.entries(dependencies)) {
      if (dependency.status !== 'up') reasons[name] = dependency.reason ?? dependency.status;
    }
    if (status !== 'ready') reasons.lifecycle = `service is ${status}`;
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(status === 'ready' ? 200 : 503)
      .json(status === 'ready' ? { status, dependencies } : { status, reasons, dependencies });
  };
  router.get(['/health', '/livez'], live);
  router.get(['/ready', '/readyz'], ready);
  return router;
}
