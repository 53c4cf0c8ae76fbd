// The main listener's Express app (no listen: the runtime owns the server). Middleware order:
// request id -> probes (untraced, unlogged: load balancers call them every few seconds) ->
// observe (server span, access log, duration) -> drain gate (fast 503, Connection: close,
// in-flight tracking) -> routes -> not found -> error mapper.
import express, {
  type ErrorRequestHandler,
  type Express,
  type Response,
  type Router,
} from 'express';
import { AppError, ERROR_CATALOGUE, type ErrorCode } from '../errors/catalogue';
import { problemOf, sendProblem } from '../errors/problem';
import type { LifecycleView } from '../runtime/lifecycle-view';
import type { RequestTracker } from '../runtime/request-tracker';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import { observe } from './observe.middleware';
import { drainGate, requestId, type RequestLocals } from './request-context.middleware';
import { currentScope } from './request-scope';
import { probesRouter } from './routes/probes.routes';

export interface AppDeps {
  readonly lifecycle: LifecycleView;
  readonly tracker: RequestTracker;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  /** Routers mounted after the probes (the orders API; drills add test-only routes). */
  readonly routers?: readonly Router[];
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  const reply = problemReplier(deps.telemetry);
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestId());
  app.use(probesRouter(deps.lifecycle));
  app.use(observe(deps.telemetry, deps.logger));
  app.use(drainGate(deps.lifecycle, deps.tracker));
  for (const router of deps.routers ?? []) app.use(router);

  app.use((req, res) => {
    reply(res, 'ROUTE_NOT_FOUND', `No route for ${req.method} ${req.path}`);
  });
  app.use(errorMapper(deps.logger, reply));
  return app;
}

/** Sends a problem with the request's ids and counts it by code. */
type Reply = (res: Response, code: ErrorCode, detail: string) => void;

function problemReplier(telemetry: Telemetry): Reply {
  return (res, code, detail) => {
    const { requestId } = res.locals as RequestLocals;
    const scope = currentScope();
    scope?.span?.setAttribute('error.code', code);
    telemetry.metrics.countError(code, ERROR_CATALOGUE[code].category);
    sendProblem(res, problemOf(code, detail, { requestId, traceId: scope?.fields.trace_id }));
  };
}

function errorMapper(logger: Logger, reply: Reply): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof AppError) {
      reply(res, error.code, error.detail);
      return;
    }
    currentScope()?.span?.recordException(error instanceof Error ? error : String(error));
    logger.error('http.unhandled_error', {
      error_code: 'INTERNAL',
      error_category: 'unexpected',
      error,
    });
    reply(res, 'INTERNAL', 'An unexpected error occurred.');
  };
}
