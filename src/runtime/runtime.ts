// The composition root: creates the lifecycle actor and wires its subscribers: the HTTP
// listeners (intake), the readiness endpoint, the signal handler, background workers, the
// resources and the telemetry flush. They drive the machine only by events; the machine decides,
// and its named effects are provided here with `machine.provide(...)`, each from a named unit
// of this folder (startup, workers, resources, pending work, hard stop, the lifecycle's log).
import type { Server } from 'node:http';
import type { Router } from 'express';
import { type Actor, createActor, fromCallback, fromPromise, type InspectionEvent } from 'xstate';
import { lifecycleMachine, statePath } from '../../machines/lifecycle.machine';
import { buildInfo } from '../build-info';
import type { LoadedConfig } from '../config/load-config';
import type { ModuleFactory, Resource, StartupCheck, Worker } from '../contracts';
import { createApp } from '../http/app';
import { RedisRateLimitStore } from '../http/edge/redis-rate-limit.store';
import { createOpsApp } from '../http/ops-app';
import { RequestTracker } from '../http/request-tracker';
import type { Logger } from '../telemetry/logger';
import { outsideRequest } from '../telemetry/request-scope';
import { createTelemetry, type Telemetry } from '../telemetry/telemetry';
import { createRuntimeAuth } from './auth';
import { createHardStop } from './hard-stop';
import { type Inspector, startInspector } from './inspector';
import { createLifecycleHistory } from './lifecycle-history';
import { lifecycleLogActions } from './lifecycle-log';
import { IDLE_CLOSE_GRACE_MS, stopAccepting } from './listeners';
import { pendingWork } from './pending-work';
import { installProcessHandlers } from './process-handlers';
import { createResourceCloser } from './resources';
import { createServiceLogger } from './service-logger';
import { closeServers, createServers } from './servers';
import { startup } from './startup';
import { createWorkerStopper } from './workers';

/** How long startup waits for the shared rate limit store before serving without it. */
const STORE_CONNECT_WAIT_MS = 1_000;

export type LifecycleActor = Actor<typeof lifecycleMachine>;

export interface RuntimeOptions {
  readonly modules?: readonly ModuleFactory[];
  readonly startupChecks?: readonly StartupCheck[];
  /** Extra routers on the main listener (the drill entry point adds slow routes here). */
  readonly routers?: readonly Router[];
  readonly workers?: readonly Worker[];
  /** Resources of the entry point itself, closed after the modules' ones. */
  readonly resources?: readonly Resource[];
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
  // The actor is created below; these callbacks run only once it exists.
  const send: LifecycleActor['send'] = (event) => outsideRequest(() => actor.send(event));
  const modules = (options.modules ?? []).map((make) =>
    make({
      loaded,
      logger,
      telemetry,
      reportDependency: (name, up, reason) =>
        send(up ? { type: 'DEPENDENCY_UP', name } : { type: 'DEPENDENCY_DOWN', name, reason }),
    }),
  );
  const workers = createWorkerStopper(
    [...(options.workers ?? []), ...modules.flatMap((m) => m.workers ?? [])],
    logger,
  );
  const auth = createRuntimeAuth(config.auth, logger);
  // With REDIS_URL the rate limit counts are shared by the replicas (closed after the drain).
  const rateLimitStore =
    config.limits.redisUrl === '' || config.limits.rateLimitMax === 0
      ? undefined
      : new RedisRateLimitStore({
          url: config.limits.redisUrl,
          keyPrefix: config.limits.redisKeyPrefix,
          timeoutMs: config.limits.storeTimeoutMs,
          logger,
          metrics: telemetry.metrics,
        });
  const resources = createResourceCloser(
    [
      ...modules.flatMap((m) => m.resources ?? []),
      ...(rateLimitStore === undefined
        ? []
        : [{ name: 'rate-limit-store', close: () => rateLimitStore.close() }]),
      ...(auth === undefined ? [] : [auth.resource]),
      ...(options.resources ?? []),
    ],
    { logger, stepBudgetMs: config.shutdown.closeTimeoutMs },
  );
  const pending = () =>
    pendingWork({
      tracker,
      workers: () => workers.pending(),
      resources: () => resources.pending(),
    });
  const lifecycle = { getSnapshot: () => actor.getSnapshot() };

  const transitionListeners: ((to: string) => void)[] = [];
  const history = createLifecycleHistory((record) => {
    logger.info('lifecycle.transition', { from: record.from, to: record.to, cause: record.cause });
    for (const listener of transitionListeners) listener(record.to);
  });

  const app = createApp({
    config,
    lifecycle,
    tracker,
    logger,
    telemetry,
    routers: [...modules.flatMap((m) => m.routers ?? []), ...(options.routers ?? [])],
    ...(rateLimitStore === undefined ? {} : { rateLimitStore }),
    ...(auth === undefined ? {} : { verifier: auth.verifier }),
  });
  const ops = createOpsApp({
    lifecycle,
    tracker,
    history: history.records,
    pendingWork: pending,
    build,
    configHash: loaded.hash,
    startedAt,
    serveMetrics: (req, res) => telemetry.serveMetrics(req, res),
    readings: () => telemetry.metrics.readings(),
    onTransition: (listener) => transitionListeners.push(listener),
  });
  const servers = createServers({
    config,
    app,
    opsApp: ops.app,
    telemetry,
    logger,
  });
  const { mainServer, opsServer, maxConnections } = servers;
  telemetry.metrics.observe({
    inFlight: () => tracker.inFlight,
    phase: () => statePath(actor.getSnapshot().value).split('.')[0] ?? 'starting',
    dependencies: () => actor.getSnapshot().context.dependencies,
  });

  // Resolves once the main listener's last connection has closed after intake stopped.
  let connectionsClosed: Promise<void> | undefined;

  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });

  const inspector: Inspector | undefined =
    config.inspect === '' ? undefined : await startInspector(config.inspect, logger);

  const hardStop = createHardStop(config.shutdown.hardStopMs, () => {
    logger.error('shutdown.hard_stop', {
      error_code: 'HARD_STOP',
      error_category: 'unexpected',
      hard_stop_ms: config.shutdown.hardStopMs,
      state: statePath(actor.getSnapshot().value),
    });
    logger.warn('shutdown.pending_work', { cause: 'hard_stop', ...pending() });
    logger.info('service.exit', { code: 1, cause: 'hard_stop' });
    exit(1);
  });

  const machine = lifecycleMachine.provide({
    actors: {
      startup: fromPromise(({ signal }) =>
        startup(
          {
            config,
            mainServer,
            opsServer,
            checks: [
              // Run together (startup.ts); ready only once all have passed. The first key set: no
              // token is refused for want of keys once the service is ready.
              ...(auth === undefined ? [] : [auth.startupCheck]),
              ...startupChecksOf(modules, options),
              // Give Redis a moment so the first requests are counted in it; never fails startup
              // (without Redis each replica counts alone, see redis-rate-limit.store.ts).
              ...(rateLimitStore === undefined
                ? []
                : [
                    {
                      name: 'rate-limit-store',
                      run: async () => {
                        await rateLimitStore.connected(STORE_CONNECT_WAIT_MS);
                      },
                    },
                  ]),
            ],
          },
          signal,
        ),
      ),
      stopIntake: fromPromise(async () => {
        tracker.closeConnectionsAfterResponse();
        connectionsClosed = stopAccepting(mainServer, {
          connections: servers.mainConnections,
          socketsInUse: () => tracker.socketsInUse(),
        });
        return Promise.resolve();
      }),
      watchInFlight: fromCallback(({ sendBack }) => {
        let connectionsOpen = connectionsClosed !== undefined;
        let watching = true;
        // The last request's end runs in its async scope: lifecycle lines are not its lines.
        const settle = (): void => {
          if (watching && !connectionsOpen && tracker.inFlight === 0) {
            outsideRequest(() => sendBack({ type: 'IN_FLIGHT_ZERO' }));
          }
        };
        void connectionsClosed?.then(() => {
          connectionsOpen = false;
          settle();
        });
        const stopWatching = tracker.onRequestEnd((count) => {
          if (count === 0) settle();
        });
        settle();
        return () => {
          watching = false;
          stopWatching();
        };
      }),
      stopWorkers: fromCallback(({ sendBack }) => {
        void workers.stopAll().then(() => sendBack({ type: 'WORKERS_STOPPED' }));
      }),
      closeResources: fromPromise(() => resources.closeAll()),
      // Traces and metrics, then the log stream; bounded by the flush budget. The machine's
      // FLUSH_TIMEOUT is the outer bound, and the process exits explicitly after it.
      flushTelemetry: fromPromise(async () => {
        const { status } = await telemetry.flush();
        await logger.flush();
        return { status };
      }),
    },
    actions: {
      ...lifecycleLogActions({
        logger,
        loaded,
        build,
        startedAt,
        tracker,
        telemetry,
        pendingWork: pending,
        maxConnections: () => maxConnections,
        rateLimitCounting:
          config.limits.rateLimitMax === 0 ? 'off' : rateLimitStore ? 'redis' : 'memory',
      }),
      armHardStop: () => hardStop.arm(),
      // Nothing read or written is looked for every fifth of the idle-close grace.
      watchConnections: () => servers.mainConnections.watch(IDLE_CLOSE_GRACE_MS / 5),
      startServingWindow: () => telemetry.eventLoop.restart(),
      abortInFlight: () => {
        tracker.abortAll(new Error('shutdown: the drain deadline passed'));
        mainServer.closeAllConnections();
        workers.abortAll();
      },
      exitProcess: ({ context }) => {
        void (async () => {
          hardStop.disarm();
          ops.announceExit(context.exitCode);
          closeServers(servers);
          await inspector?.stop();
          logger.info('service.exit', {
            code: context.exitCode,
            cause: context.stopReason ?? 'unknown',
            since_shutdown_ms:
              context.clock.shutdownStartedAt === undefined
                ? 0
                : Date.now() - context.clock.shutdownStartedAt,
          });
          await logger.flush();
          resolveStopped(context.exitCode);
          exit(context.exitCode);
        })();
      },
    },
  });

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
        closeTimeoutMs: config.shutdown.closeTimeoutMs,
        flushTimeoutMs: config.shutdown.flushTimeoutMs,
      },
      essentialDependencies: modules.flatMap((m) => m.essentialDependencies ?? []),
    },
    inspect,
  });
  if (options.handleProcessEvents !== false) installProcessHandlers(actor, logger);
  outsideRequest(() => actor.start());
  return { actor, logger, telemetry, tracker, mainServer, opsServer, stopped };
}

function startupChecksOf(
  modules: readonly { readonly startupChecks?: readonly StartupCheck[] }[],
  options: RuntimeOptions,
): StartupCheck[] {
  return [...modules.flatMap((m) => m.startupChecks ?? []), ...(options.startupChecks ?? [])];
}
