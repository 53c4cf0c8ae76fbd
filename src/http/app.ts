// The main listener's Express app (no listen: the runtime owns the server). Middleware order:
// request id -> probes -> drain gate (fast 503, Connection: close, in-flight tracking, scope)
// -> routes -> not found -> error mapper.
import express, { type ErrorRequestHandler, type Express, type Router } from 'express';
import { AppError } from '../errors/catalogue';
import { problemOf, sendProblem } from '../errors/problem';
import type { LifecycleView } from '../runtime/lifecycle-view';
import type { RequestTracker } from '../runtime/request-tracker';
import type { Logger } from '../telemetry/logger';
import { drainGate, requestId, type RequestLocals } from './request-context.middleware';
import { currentScope } from './request-scope';
import { probesRouter } from './routes/probes.routes';

export interface AppDeps {
  readonly lifecycle: LifecycleView;
  readonly tracker: RequestTracker;
  readonly logger: Logger;
  /** Routers mounted after the probes (the orders API; drills add test-only routes). */
  readonly routers?: readonly Router[];
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestId());
  app.use(probesRouter(deps.lifecycle));
  app.use(drainGate(deps.lifecycle, deps.tracker));
  for (const router of deps.routers ?? []) app.use(router);

  app.use((req, res) => {
    const { requestId } = res.locals as RequestLocals;
    sendProblem(
      res,
      problemOf('ROUTE_NOT_FOUND', `No route for ${req.method} ${req.path}`, {
        requestId,
        traceId: currentScope()?.trace_id,
      }),
    );
  });
  app.use(errorMapper(deps.logger));
  return app;
}

function errorMapper(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const { requestId } = res.locals as RequestLocals;
    const scope = { requestId, traceId: currentScope()?.trace_id };
    if (error instanceof AppError) {
      sendProblem(res, problemOf(error.code, error.detail, scope));
      return;
    }
    logger.error('http.unhandled_error', {
      error_code: 'INTERNAL',
      error_category: 'unexpected',
      error,
    });
    sendProblem(res, problemOf('INTERNAL', 'An unexpected error occurred.', scope));
  };
}
