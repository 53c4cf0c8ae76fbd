// The two HTTP listeners as the runtime builds them: the main one with every guard against
// slow, malformed and too many clients (timeouts, the connection cap, problem+json for what Node
// would answer bare), and the ops one. Neither listens yet: startup binds them.
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Response } from 'express';
import type { AppConfig } from '../config/schema';
import { clientErrorHandler, connectHandler } from '../http/client-error';
import { createReply } from '../http/problem-reply';
import type { Logger } from '../telemetry/logger';
import type { Telemetry } from '../telemetry/telemetry';
import { capConnections } from './connection-cap';
import { type Connections, trackConnections } from './listeners';

export interface Servers {
  readonly mainServer: Server;
  readonly opsServer: Server;
  /** The main listener's connection cap in force (MAX_CONNECTIONS, lowered to fit). */
  readonly maxConnections: number;
  /** The main listener's open connections, which the drain closes one by one. */
  readonly mainConnections: Connections;
}

export function createServers(deps: {
  readonly config: Pick<AppConfig, 'http'>;
  readonly app: RequestListener;
  readonly opsApp: RequestListener;
  readonly telemetry: Pick<Telemetry, 'metrics'>;
  readonly logger: Logger;
}): Servers {
  const { config, app, telemetry, logger } = deps;
  const mainServer = createServer(
    {
      // Node checks headersTimeout and requestTimeout on this interval (30 s by default): check
      // every second so slow clients are cut off close to their budget.
      connectionsCheckingInterval: 1000,
      // Node would answer a missing Host with a bare 400; the app answers it with problem+json.
      requireHostHeader: false,
    },
    app,
  );
  const reply = createReply(telemetry.metrics);
  mainServer.on(
    'clientError',
    clientErrorHandler(telemetry.metrics, logger, (res, code, detail) => {
      // Only a response Express has taken in hand has the request's locals.
      if (res.headersSent || (res as Partial<Response>).locals === undefined) return false;
      res.setHeader('Connection', 'close');
      reply(res as Response, code, detail);
      return true;
    }),
  );
  // An Expect other than 100-continue: Node would answer a bare 417; the app answers it.
  mainServer.on('checkExpectation', app);
  mainServer.on('connect', connectHandler(telemetry.metrics, logger));
  // Timeouts, deliberately (see README "HTTP server timeouts"): keep-alive above the load
  // balancer's idle timeout, and bounded time for slow clients to send headers and bodies.
  mainServer.keepAliveTimeout = config.http.keepAliveTimeoutMs;
  mainServer.headersTimeout = config.http.headersTimeoutMs;
  mainServer.requestTimeout = config.http.requestTimeoutMs;
  const maxConnections = capConnections(mainServer, config.http.maxConnections, {
    logger,
    metrics: telemetry.metrics,
  });

  const mainConnections = trackConnections(mainServer);

  const opsServer = createServer(deps.opsApp);
  opsServer.on('clientError', clientErrorHandler(telemetry.metrics, logger));
  return { mainServer, opsServer, maxConnections, mainConnections };
}

/** Closes both listeners and every connection still open (the last step before exit). */
export function closeServers({ mainServer, opsServer }: Servers): void {
  for (const server of [mainServer, opsServer]) {
    if (server.listening) server.close();
    server.closeAllConnections();
  }
}
