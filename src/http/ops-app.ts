// The ops listener (never public): GET /lifecycle and GET /metrics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import type { BuildInfo } from '../build-info';
import type { LifecycleView } from '../runtime/lifecycle-view';
import type { RequestTracker } from '../runtime/request-tracker';
import { readinessOf, statePath } from '../../machines/lifecycle.machine';
import type { TransitionRecord } from '../runtime/lifecycle-history';

export interface OpsAppDeps {
  readonly lifecycle: LifecycleView;
  readonly tracker: RequestTracker;
  readonly history: () => readonly TransitionRecord[];
  readonly build: BuildInfo;
  readonly configHash: string;
  readonly startedAt: Date;
  /** Prometheus text format for GET /metrics. */
  readonly serveMetrics: (req: IncomingMessage, res: ServerResponse) => void;
}

export function createOpsApp(deps: OpsAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/lifecycle', (_req, res) => {
    const snapshot = deps.lifecycle.getSnapshot();
    const history = deps.history();
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      state: statePath(snapshot.value),
      readiness: readinessOf(snapshot),
      since: history[history.length - 1]?.at ?? deps.startedAt.toISOString(),
      history,
      in_flight: deps.tracker.inFlight,
      dependencies: snapshot.context.dependencies,
      exit_code: snapshot.context.exitCode,
      build: {
        ...deps.build,
        started_at: deps.startedAt.toISOString(),
        uptime_ms: Math.round(process.uptime() * 1000),
      },
      config_hash: deps.configHash,
    });
  });
  app.get('/metrics', (req, res) => deps.serveMetrics(req, res));
  app.use((_req, res) => {
    res.status(404).json({ status: 404, detail: 'ops endpoints: GET /lifecycle, GET /metrics' });
  });
  return app;
}
