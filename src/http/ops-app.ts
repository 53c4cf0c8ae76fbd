// The ops listener (never public): GET /lifecycle and GET /metrics. Its errors are problem+json
// from the catalogue too, with a fresh request id and trace id (nothing here is traced).
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type Express, type Response } from 'express';
import type { ErrorCode } from '../errors/catalogue';
import { problemOf, sendProblem } from '../errors/problem';
import { mapError } from '../errors/to-problem';
import type { BuildInfo } from '../build-info';
import type { LifecycleSnapshot, LifecycleView, TransitionRecord } from './lifecycle-view';
import type { RequestTracker } from './request-tracker';
import { toGraph } from '../../machines/lifecycle.diagram';
import type { MetricReadings } from '../telemetry/metrics';
import { lifecyclePage } from './lifecycle-page/page';
import {
  drainDeadlineOf,
  lifecycleMachine,
  type LifecycleContext,
  readinessOf,
  statePath,
  TAGS,
} from '../../machines/lifecycle.machine';

export interface OpsAppDeps {
  readonly lifecycle: LifecycleView;
  readonly tracker: RequestTracker;
  readonly history: () => readonly TransitionRecord[];
  /** What is still running (shown while the service shuts down). */
  readonly pendingWork?: () => unknown;
  readonly build: BuildInfo;
  readonly configHash: string;
  readonly startedAt: Date;
  /** Prometheus text format for GET /metrics. */
  readonly serveMetrics: (req: IncomingMessage, res: ServerResponse) => void;
  /** Breaker states and outbox backlog as the gauges read them now. */
  readonly readings: () => MetricReadings;
  /** Calls `listener` with the new state on each transition (the live page follows it). */
  readonly onTransition: (listener: (to: string) => void) => void;
}

export interface OpsApp {
  readonly app: Express;
  /** Tells the live page's open streams the process is exiting, and ends them. */
  announceExit(exitCode: number): void;
}

const OPS_ROUTES = new Set(['/lifecycle', '/metrics', '/', '/lifecycle/view', '/lifecycle/stream']);

const shuttingDown = (snapshot: LifecycleSnapshot): boolean =>
  snapshot.hasTag(TAGS.draining) || snapshot.hasTag(TAGS.stopping);

const iso = (at: number | undefined): string | undefined =>
  at === undefined ? undefined : new Date(at).toISOString();

/** The shutdown's steps so far, from the machine's clock, and the drain deadline. */
function shutdownOf(context: LifecycleContext) {
  const { clock, budgets } = context;
  const deadline = drainDeadlineOf(context);
  return {
    started_at: iso(clock.shutdownStartedAt),
    intake_stopped_at: iso(clock.intakeStoppedAt),
    drain_deadline: iso(deadline),
    drain_remaining_ms: deadline === undefined ? undefined : Math.max(0, deadline - Date.now()),
    close_started_at: iso(clock.closeStartedAt),
    flush_started_at: iso(clock.flushStartedAt),
    budgets_ms: {
      delay: budgets.delayMs,
      drain: budgets.drainTimeoutMs,
      close: budgets.closeTimeoutMs,
      flush: budgets.flushTimeoutMs,
    },
  };
}

function opsProblem(res: Response, code: ErrorCode, detail: string): void {
  const requestId = randomUUID();
  res.setHeader('X-Request-Id', requestId);
  sendProblem(
    res,
    problemOf(code, detail, { requestId, traceId: randomBytes(16).toString('hex') }),
  );
}

export function createOpsApp(deps: OpsAppDeps): OpsApp {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  /** The /lifecycle document: what the machine says now, with the gauges operators read with it. */
  const lifecycleDocument = () => {
    const snapshot = deps.lifecycle.getSnapshot();
    const history = deps.history();
    const readings = deps.readings();
    return {
      state: statePath(snapshot.value),
      readiness: readinessOf(snapshot),
      since: history[history.length - 1]?.at ?? deps.startedAt.toISOString(),
      history,
      in_flight: deps.tracker.inFlight,
      dependencies: snapshot.context.dependencies,
      breakers: readings.breakers,
      outbox_backlog: readings.outboxBacklog,
      exit_code: snapshot.context.exitCode,
      ...(shuttingDown(snapshot)
        ? { shutdown: shutdownOf(snapshot.context), pending: deps.pendingWork?.() }
        : {}),
      build: {
        ...deps.build,
        started_at: deps.startedAt.toISOString(),
        uptime_ms: Math.round(process.uptime() * 1000),
      },
      config_hash: deps.configHash,
    };
  };
  app.get('/lifecycle', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(lifecycleDocument());
  });
  app.get('/metrics', (req, res) => deps.serveMetrics(req, res));
  const page = lifecyclePage({
    graph: toGraph(lifecycleMachine),
    view: lifecycleDocument,
    onTransition: deps.onTransition,
    title: `${deps.build.name} ${deps.build.version}`,
  });
  app.use(page.router);
  app.use((req, res) => {
    if (OPS_ROUTES.has(req.path)) {
      res.setHeader('Allow', 'GET, HEAD');
      opsProblem(res, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed; use GET.`);
      return;
    }
    opsProblem(
      res,
      'ROUTE_NOT_FOUND',
      'The ops endpoints are GET / (the live lifecycle page), GET /lifecycle and GET /metrics.',
    );
  });
  const errors: ErrorRequestHandler = (error, _req, res, _next) => {
    if (res.headersSent) return;
    const mapped = mapError(error);
    opsProblem(res, mapped.code, mapped.detail);
  };
  app.use(errors);
  return { app, announceExit: (code) => page.announceExit(code) };
}
