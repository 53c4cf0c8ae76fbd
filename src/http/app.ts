// The main listener's Express app (no listen: the runtime owns the server). Middleware order,
// each step cheaper than the next and able to answer before it:
//   request id -> probes (untraced, unlogged: load balancers call them every few seconds)
//   -> observe (server span, access log, duration) -> drain gate (fast 503, Connection: close,
//   in-flight tracking) -> protocol checks (Host, Expect) -> authentication (bearer JWT on
//   /v1/..., 401/403) -> rate limit (per tenant once authenticated) -> JSON body (media
//   type, size, body timeout, UTF-8, syntax, duplicates) -> load shedding (a handler slot, taken
//   only once the body is in) -> request deadline -> OPTIONS -> routes -> 405 / 404 -> errors.
import express, {
  type ErrorRequestHandler,
  type Express,
  type RequestHandler,
  type Router,
} from 'express';
import type { AppConfig } from '../config/schema';
import { mapError } from '../errors/to-problem';
import type { LifecycleView } from './lifecycle-view';
import type { RequestTracker } from './request-tracker';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import { authenticate, type TokenVerifier } from './edge/auth.middleware';
import { compose } from './edge/compose';
import { requestDeadline } from './edge/deadline.middleware';
import { jsonBody } from './edge/json-body.middleware';
import { loadShedding, shedCheck } from './edge/load-shedding.middleware';
import { protocolChecks } from './edge/protocol.middleware';
import { type RateLimitStore, rateLimitMiddleware } from './edge/rate-limit.middleware';
import { allowedMethods } from './method-not-allowed';
import { observe } from './observe.middleware';
import { createReply, type Reply } from './problem-reply';
import { drainGate, requestId } from './request-context.middleware';
import { currentScope } from '../telemetry/request-scope';
import { PROBE_METHODS, probes } from './routes/probes.routes';
import { keepShapes } from './stable-shapes';

export interface AppDeps {
  readonly config: Pick<AppConfig, 'http' | 'limits'>;
  readonly lifecycle: LifecycleView;
  readonly tracker: RequestTracker;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  /** Routers mounted after the edge policies (the orders API; drills add test-only routes). */
  readonly routers?: readonly Router[];
  /** Where rate limit counts live; this process's memory when not given (no REDIS_URL). */
  readonly rateLimitStore?: RateLimitStore;
  /** Bearer tokens on /v1/... (AUTH_MODE=jwt); none: every call is the anonymous caller. */
  readonly verifier?: TokenVerifier;
}

export function createApp(deps: AppDeps): Express {
  const { config, lifecycle, tracker, logger, telemetry } = deps;
  const app = express();
  keepShapes(app);
  const reply = createReply(telemetry.metrics);
  const methodsOf = (path: string): string[] => {
    const probe = PROBE_METHODS.get(path);
    return probe === undefined ? allowedMethods(app, path) : [...probe];
  };
  const wouldShed = shedCheck(config.limits, tracker, telemetry.eventLoop);
  app.disable('x-powered-by');
  app.set('etag', false);
  // Behind N trusted proxies the client is N hops back in X-Forwarded-For (Express `trust proxy`).
  app.set('trust proxy', config.http.trustProxyHops);
  // The edge policies, in order, as one layer (see edge/compose.ts).
  app.use(
    compose([
      requestId(),
      probes(lifecycle, wouldShed),
      observe(telemetry, logger, tracker),
      drainGate(lifecycle, tracker, config.http.handlerTimeoutMs, reply),
      protocolChecks(reply),
      authenticate(deps.verifier, telemetry.metrics, reply),
      rateLimitMiddleware(config.limits, config.http.trustProxyHops, reply, deps.rateLimitStore),
      jsonBody(
        { limitBytes: config.http.bodyLimitBytes, timeoutMs: config.http.bodyTimeoutMs },
        reply,
      ),
      loadShedding(wouldShed, tracker, reply),
      requestDeadline(config.http.handlerTimeoutMs, tracker, reply),
      options((path) => methodsOf(path), reply),
    ]),
  );
  for (const router of deps.routers ?? []) app.use(router);

  app.use((req, res) => {
    const allowed = methodsOf(req.path);
    if (allowed.length > 0) {
      res.setHeader('Allow', allowed.join(', '));
      reply(
        res,
        'METHOD_NOT_ALLOWED',
        `${req.method} is not allowed on ${shownPath(req.path)}; use ${allowed.join(', ')}.`,
      );
      return;
    }
    reply(res, 'ROUTE_NOT_FOUND', `No route for ${req.method} ${shownPath(req.path)}.`);
  });
  app.use(errorMapper(logger, reply));
  return app;
}

/**
 * OPTIONS (RFC 9110 section 9.3.7): the path's methods in Allow, no body (Express would answer
 * 200 text/plain); an unknown path is 404.
 */
function options(methodsOf: (path: string) => string[], reply: Reply): RequestHandler {
  return (req, res, next) => {
    if (req.method !== 'OPTIONS') {
      next();
      return;
    }
    const allowed = methodsOf(req.path);
    if (allowed.length === 0) {
      reply(res, 'ROUTE_NOT_FOUND', `No route for OPTIONS ${shownPath(req.path)}.`);
      return;
    }
    res.setHeader('Allow', [...allowed, 'OPTIONS'].join(', '));
    res.status(204).end();
  };
}

const PATH_SHOWN = 64;

/**
 * A request path as it may appear in an answer: at most PATH_SHOWN characters (the raw path can
 * be ~16 KB), printable ASCII only, markup and quotes percent-encoded.
 */
export function shownPath(path: string): string {
  const head = path.length > PATH_SHOWN ? path.slice(0, PATH_SHOWN) : path;
  const plain = head.replace(/[^\x21-\x7e]|[<>"'`\\]/g, (char) => {
    const code = char.charCodeAt(0);
    return code <= 0xff ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : '?';
  });
  return path.length > PATH_SHOWN
    ? `${plain}... (path cut to ${PATH_SHOWN} of ${path.length} characters)`
    : plain;
}

function errorMapper(logger: Logger, reply: Reply): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const mapped = mapError(error);
    if (mapped.unexpected) {
      currentScope()?.span?.recordException(error instanceof Error ? error : String(error));
      logger.error('http.unhandled_error', {
        error_code: mapped.code,
        error_category: 'unexpected',
        method: req.method,
        path: req.path,
        error,
      });
    }
    if (res.headersSent) {
      // An answer already went out (a deadline answered first, say): nothing more to send.
      logger.warn('http.late_error', {
        error_code: mapped.code,
        error_category: mapped.unexpected ? 'unexpected' : 'expected',
      });
      return;
    }
    reply(res, mapped.code, mapped.detail, {
      extensions: mapped.extensions,
      retryAfterSeconds: mapped.retryAfterSeconds,
    });
  };
}
