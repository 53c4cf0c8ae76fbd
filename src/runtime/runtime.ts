// Creates the lifecycle actor and wires its subscribers: the HTTP listeners (intake), the
// readiness endpoint, the signal handler, background workers and the telemetry flush. They
// drive the machine only by events; the machine decides, and its named effects are provided
// here with `machine.provide(...)`.
import { createServer, type Server } from 'node:http';
import type { Response, Router } from 'express';
import { type Actor, createActor, fromCallback, fromPromise, type InspectionEvent } from 'xstate';
import {
  type LifecycleContext,
  lifecycleMachine,
  statePath,
  TAGS,
} from '../../machines/lifecycle.machine';
import { buildInfo } from '../build-info';
import type { LoadedConfig } from '../config/load-config';
import { createApp } from '../http/app';
import { clientErrorHandler, connectHandler } from '../http/client-error';
import { createReply } from '../http/problem-reply';
import { createOpsApp } from '../http/ops-app';
import { outsideRequest } from '../http/request-scope';
import type { Logger } from '../telemetry/logger';
import { createServiceLogger } from './service-logger';
import { createTelemetry, type Telemetry } from '../telemetry/telemetry';
import { createLifecycleHistory } from './lifecycle-history';
import { capConnections } from './connection-cap';
import { listen, stopAccepting } from './listeners';
import { RequestTracker } from './request-tracker';
import { installProcessHandlers } from './process-handlers';
import { startInspector, type Inspector } from './inspector';

export type LifecycleActor = Actor<typeof lifecycleMachine>;

/** A background worker (the payments consumer, the outbox relay): stops after its current unit. */
export interface Worker {
  readonly name: string;
  stop(): Promise<void>;
}

/** Something that must answer before the service is ready (the database, later). */
export interface StartupCheck {
  readonly name: string;
  /** Resolves when the dependency is usable; `signal` aborts when startup is abandoned. */
  run(signal: AbortSignal): Promise<void>;
}

class StartupCheckError extends Error {
  readonly errorCode = 'DEPENDENCY_UNAVAILABLE';
}

async function runStartupCheck(check: StartupCheck, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  try {
    await check.run(signal);
  } catch (error) {
    if (signal.aborted) throw error;
    throw new StartupCheckError(
      `${check.name}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
}

/** Something to close after the drain and before the telemetry flush (a database pool). */
export interface Resource {
  readonly name: string;
  close(): Promise<void>;
}

/** What a module (the orders API, ...) is given to build itself. */
export interface ModuleContext {
  readonly loaded: LoadedConfig;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  /** Reports a dependency's state to the lifecycle machine (readiness follows for essentials). */
  reportDependency(name: string, up: boolean, reason: string): void;
}

/** A feature plugged into the runtime: its routes, startup checks, workers and resources. */
export interface RuntimeModule {
  readonly routers?: readonly Router[];
  readonly startupChecks?: readonly StartupCheck[];
  readonly workers?: readonly Worker[];
  readonly resources?: readonly Resource[];
  /** Dependencies whose loss makes the service unready. */
  readonly essentialDependencies?: readonly string[];
}

export interface RuntimeOptions {
  readonly modules?: readonly ((context: ModuleContext) => RuntimeModule)[];
  readonly startupChecks?: readonly StartupCheck[];
  /** Extra routers on the main listener (the drill entry point adds slow routes here). */
  readonly routers?: readonly Router[];
  readonly workers?: readonly Worker[];
  /** How the process ends; `process.exit` by default. Tests pass their own. */
  readonly exit?: (code: number) => void;
  readonly logger?: Logger;
  /** Traces and metrics; made from config when not given (main makes it before Express loads). */
  readonly telemetry?: Telemetry;
  /** Install SIGTERM/SIGINT and crash handlers (default true). */
  readonly handleProcessEvents?: boolean;
}

export interface Runtime {
  readonly actor: LifecycleActor;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly tracker: RequestTracker;
  readonly mainServer: Server;
  readonly opsServer: Server;
  /** Resolves with the exit code once the machine reaches `stopped`. */
  readonly stopped: Promise<number>;
}

export async function startRuntime(
  loaded: LoadedConfig,
  options: RuntimeOptions = {},
): Promise<Runtime> {
  const { config } = loaded;
  const build = buildInfo();
  const startedAt = new Date();
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const logger = options.logger ?? createServiceLogger(loaded);
  const telemetry = options.telemetry ?? createTelemetry(config, build, logger);
  const tracker = new RequestTracker();
  const modules = (options.modules ?? []).map((make) =>
    make({
      loaded,
      logger,
      telemetry,
      reportDependency: (name, up, reason) => {
        outsideRequest(() =>
          actor.send(
            up ? { type: 'DEPENDENCY_UP', name } : { type: 'DEPENDENCY_DOWN', name, reason },
          ),
        );
      },
    }),
  );
  const workers = [...(options.workers ?? []), ...modules.flatMap((m) => m.workers ?? [])];
  const startupChecks = [
    ...modules.flatMap((m) => m.startupChecks ?? []),
    ...(options.startupChecks ?? []),
  ];
  const resources = modules.flatMap((m) => m.resources ?? []);
  const routers = [...modules.flatMap((m) => m.routers ?? []), ...(options.routers ?? [])];
  // Subscribers below read the actor created at the end of this function; none runs before it.
  let shutdownStartedAt: number | undefined;
  let intakeStoppedAt: number | undefined;
  let flushStartedAt: number | undefined;
  const view = {
    getSnapshot: () => actor.getSnapshot(),
    drainDeadline: () =>
      intakeStoppedAt === undefined ? undefined : intakeStoppedAt + config.shutdown.drainTimeoutMs,
  };

  const history = createLifecycleHistory((record) => {
    logger.info('lifecycle.transition', { from: record.from, to: record.to, cause: record.cause });
  });

  const app = createApp({
    config,
    lifecycle: view,
    tracker,
    logger,
    telemetry,
    routers,
  });
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
  const opsServer = createServer(
    createOpsApp({
      lifecycle: view,
      tracker,
      history: history.records,
      build,
      configHash: loaded.hash,
      startedAt,
      serveMetrics: (req, res) => telemetry.serveMetrics(req, res),
    }),
  );
  opsServer.on('clientError', clientErrorHandler(telemetry.metrics, logger));
  telemetry.metrics.observe({
    inFlight: () => tracker.inFlight,
    phase: () => statePath(actor.getSnapshot().value).split('.')[0] ?? 'starting',
    dependencies: () => actor.getSnapshot().context.dependencies,
  });

  // After intake stops, close keep-alive sockets as soon as they go idle.
  tracker.onRequestEnd(() => {
    if (actor.getSnapshot().hasTag(TAGS.intakeClosed)) mainServer.closeIdleConnections();
  });

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  const sinceShutdown = (): number =>
    shutdownStartedAt === undefined ? 0 : Date.now() - shutdownStartedAt;

  const inspector: Inspector | undefined =
    config.inspect === '' ? undefined : await startInspector(config.inspect, logger);

  const machine = lifecycleMachine.provide({
    actors: {
      // Ops listener first (so /lifecycle shows startup), then the essential dependencies, then
      // the main listener last: nothing is routed here before the service can serve.
      startup: fromPromise(async ({ signal }) => {
        const opsBind = await listen(opsServer, 'ops', config.ops.host, config.ops.port);
        for (const check of startupChecks) {
          await runStartupCheck(check, signal);
        }
        signal.throwIfAborted();
        const bind = await listen(mainServer, 'main', config.http.host, config.http.port);
        return { bind, opsBind };
      }),
      stopIntake: fromPromise(async () => {
        stopAccepting(mainServer);
        intakeStoppedAt = Date.now();
        return Promise.resolve();
      }),
      watchInFlight: fromCallback(({ sendBack }) => {
        if (tracker.inFlight === 0) sendBack({ type: 'IN_FLIGHT_ZERO' });
        return tracker.onRequestEnd((count) => {
          // The last request's end runs in its async scope: lifecycle lines are not its lines.
          if (count === 0) outsideRequest(() => sendBack({ type: 'IN_FLIGHT_ZERO' }));
        });
      }),
      stopWorkers: fromCallback(({ sendBack }) => {
        void Promise.allSettled(workers.map((worker) => worker.stop())).then((results) => {
          results.forEach((result, index) => {
            if (result.status === 'rejected') {
              logger.error('worker.stop_failed', {
                error_code: 'WORKER_STOP_FAILED',
                error_category: 'unexpected',
                worker: workers[index]?.name,
                error: result.reason,
              });
            }
          });
          sendBack({ type: 'WORKERS_STOPPED' });
        });
      }),
      // Traces, metrics, then the log stream; each bounded by the flush budget. The machine's
      // FLUSH_TIMEOUT is the outer bound, and the process exits explicitly after it.
      flushTelemetry: fromPromise(async () => {
        // Resources (the database pool) close after the drain and before the flush, so their last
        // spans and log lines are flushed too.
        await closeResources(resources, logger);
        flushStartedAt = Date.now();
        const status = await telemetry.flush();
        await logger.flush();
        return { status };
      }),
    },
    actions: {
      logServiceStart: () => {
        logger.info('service.start', {
          version: build.version,
          env: config.env,
          bind: `${config.http.host}:${config.http.port}`,
          ops_bind: `${config.ops.host}:${config.ops.port}`,
          config_hash: loaded.hash,
        });
      },
      logServiceReady: ({ context }) => {
        logger.info('service.ready', {
          ready: true,
          startup_ms: Date.now() - startedAt.getTime(),
          bind: context.bind,
          ops_bind: context.opsBind,
          max_connections: maxConnections,
        });
      },
      logStartFailed: ({ context }) => {
        logger.error('service.start_failed', {
          error_code: context.failure?.errorCode ?? 'STARTUP_FAILED',
          error_category: 'unexpected',
          reason: context.failure?.reason ?? 'unknown',
        });
      },
      logShutdownBegin: ({ context }) => {
        shutdownStartedAt = Date.now();
        armHardStop();
        tracker.closeConnectionsAfterResponse();
        logger.info('shutdown.begin', {
          signal: context.signal ?? null,
          cause: context.stopReason,
          in_flight: tracker.inFlight,
          delay_ms: config.shutdown.delayMs,
          drain_timeout_ms: config.shutdown.drainTimeoutMs,
        });
      },
      logIntakeStopped: () => {
        logger.info('shutdown.intake_stopped', {
          in_flight: tracker.inFlight,
          since_shutdown_ms: sinceShutdown(),
        });
      },
      logDrainComplete: () => {
        logger.info('shutdown.drain_complete', {
          in_flight: 0,
          drain_ms: Date.now() - (intakeStoppedAt ?? Date.now()),
        });
      },
      logDrainTimeout: ({ context }) => {
        const inFlight = tracker.inFlight;
        logger.warn('shutdown.drain_timeout', {
          in_flight: inFlight,
          aborted: inFlight,
          cause: context.drainOutcome === 'skipped' ? 'second_signal' : 'drain_timeout',
          drain_ms: intakeStoppedAt === undefined ? 0 : Date.now() - intakeStoppedAt,
        });
      },
      abortInFlight: () => {
        tracker.abortAll(new Error('shutdown: the drain deadline passed'));
        mainServer.closeAllConnections();
      },
      logTelemetryFlush: ({ context }) => {
        const status = context.flushStatus ?? 'error';
        logger[status === 'ok' ? 'info' : 'warn']('telemetry.flush', {
          status,
          flush_ms: Date.now() - (flushStartedAt ?? Date.now()),
        });
      },
      exitProcess: ({ context }) => {
        void finish(context);
      },
    },
  });

  let hardStop: NodeJS.Timeout | undefined;
  // The last deadline lives outside the machine on purpose: it must fire even if the machine or
  // an effect it waits on is wedged. unref'd, so it never keeps a finished process alive.
  function armHardStop(): void {
    if (hardStop !== undefined) return;
    hardStop = setTimeout(() => {
      logger.error('shutdown.hard_stop', {
        error_code: 'HARD_STOP',
        error_category: 'unexpected',
        hard_stop_ms: config.shutdown.hardStopMs,
        state: JSON.stringify(actor.getSnapshot().value),
        in_flight: tracker.inFlight,
      });
      logger.info('service.exit', { code: 1 });
      exit(1);
    }, config.shutdown.hardStopMs);
    hardStop.unref();
  }

  let finishing = false;
  async function finish(context: LifecycleContext): Promise<void> {
    if (finishing) return;
    finishing = true;
    if (hardStop !== undefined) clearTimeout(hardStop);
    for (const server of [mainServer, opsServer]) {
      if (server.listening) server.close();
      server.closeAllConnections();
    }
    await inspector?.stop();
    logger.info('service.exit', {
      code: context.exitCode,
      cause: context.stopReason ?? 'unknown',
      since_shutdown_ms: sinceShutdown(),
    });
    await logger.flush();
    resolveStopped(context.exitCode);
    exit(context.exitCode);
  }

  const inspect = (event: InspectionEvent): void => {
    history.inspect(event);
    inspector?.inspect(event);
  };
  const actor: LifecycleActor = createActor(machine, {
    input: {
      budgets: {
        startupTimeoutMs: config.lifecycle.startupTimeoutMs,
        delayMs: config.shutdown.delayMs,
        drainTimeoutMs: config.shutdown.drainTimeoutMs,
        flushTimeoutMs: config.shutdown.flushTimeoutMs,
      },
      essentialDependencies: modules.flatMap((m) => m.essentialDependencies ?? []),
    },
    inspect,
  });
  if (options.handleProcessEvents !== false) installProcessHandlers(actor, logger);
  actor.start();
  return { actor, logger, telemetry, tracker, mainServer, opsServer, stopped };
}

async function closeResources(resources: readonly Resource[], logger: Logger): Promise<void> {
  const results = await Promise.allSettled(resources.map((resource) => resource.close()));
  results.forEach((result, index) => {
    const name = resources[index]?.name;
    if (result.status === 'fulfilled') logger.info('resource.closed', { resource: name });
    else {
      logger.error('resource.close_failed', {
        error_code: 'RESOURCE_CLOSE_FAILED',
        error_category: 'unexpected',
        resource: name,
        error: result.reason,
      });
    }
  });
}
