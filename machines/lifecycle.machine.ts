// The lifecycle of ops-service as one statechart: the single source of truth for "is it healthy,
// what failed, can it stop safely now". Pure: no I/O and no imports from src/. Every effect is a
// named actor or action that the runtime provides with `machine.provide(...)`; tests provide
// fakes. Every deadline is a named delay whose value comes from config through `input`.
//
//   starting -> ready -> draining -> flushing -> stopped
//
// `draining` holds every step the process takes before the flush, in order: a delay while load
// balancers stop routing here, the drain (intake closed, requests answered, workers stopped),
// then closing the resources (database pool, broker) one by one. `flushing` then has its whole
// budget for telemetry. The moments each step began are in the context, so the runtime and the
// ops endpoints read them from the machine, never from variables of their own.
//
// Other code never keeps its own lifecycle flags: it reads `snapshot.hasTag(...)` (see TAGS) or
// subscribes.
import { assign, fromCallback, fromPromise, setup } from 'xstate';

export type ShutdownSignal = 'SIGTERM' | 'SIGINT';

/** Budgets in milliseconds, from config (`lifecycle.*`, `shutdown.*`). */
export interface LifecycleBudgets {
  readonly startupTimeoutMs: number;
  readonly delayMs: number;
  readonly drainTimeoutMs: number;
  /** The whole resource-closing step (each resource has its own share, see the runtime). */
  readonly closeTimeoutMs: number;
  readonly flushTimeoutMs: number;
}

export interface LifecycleInput {
  readonly budgets: LifecycleBudgets;
  /** Dependencies whose loss makes the service unready (`ready.degraded`). */
  readonly essentialDependencies: readonly string[];
}

export type DependencyStatus = 'unknown' | 'up' | 'down';

export interface DependencyState {
  readonly essential: boolean;
  readonly status: DependencyStatus;
  readonly reason?: string;
}

export interface StartupOutput {
  /** host:port the main listener is bound to. */
  readonly bind: string;
  /** host:port of the ops listener. */
  readonly opsBind: string;
}

export interface StartupFailure {
  readonly errorCode: string;
  readonly reason: string;
}

/** Why the service stopped or is stopping. Drives the exit code. */
export type StopReason = 'signal' | 'crash' | 'startup_failed';

/** Epoch milliseconds at which each step began (undefined until it has). */
export interface LifecycleClock {
  readonly shutdownStartedAt: number | undefined;
  readonly intakeStoppedAt: number | undefined;
  readonly closeStartedAt: number | undefined;
  readonly flushStartedAt: number | undefined;
  readonly stoppedAt: number | undefined;
}

export type FlushStatus = 'ok' | 'timeout' | 'error';

/** What the telemetry flush reports (exporters' real outcome). */
export interface FlushOutput {
  readonly status: FlushStatus;
}

export interface LifecycleContext {
  readonly budgets: LifecycleBudgets;
  readonly clock: LifecycleClock;
  readonly dependencies: Readonly<Record<string, DependencyState>>;
  readonly bind: string | undefined;
  readonly opsBind: string | undefined;
  /** The process exit code, decided by the machine: 0, or 1 for anything short of a clean stop. */
  readonly exitCode: 0 | 1;
  readonly stopReason: StopReason | undefined;
  readonly signal: ShutdownSignal | undefined;
  readonly failure: StartupFailure | undefined;
  readonly requestsDrained: boolean;
  readonly workersStopped: boolean;
  readonly drainOutcome: 'complete' | 'timeout' | 'skipped' | undefined;
  readonly flushStatus: FlushStatus | undefined;
}

export type LifecycleEvent =
  /** The process received SIGTERM or SIGINT (the machine knows whether it is the first). */
  | { readonly type: 'SIGNAL'; readonly signal: ShutdownSignal }
  /** An uncaught exception or unhandled rejection: shut down the same way, exit 1. */
  | { readonly type: 'CRASH'; readonly error: unknown }
  | { readonly type: 'DEPENDENCY_DOWN'; readonly name: string; readonly reason: string }
  | { readonly type: 'DEPENDENCY_UP'; readonly name: string }
  /** After intake stopped: no request is in flight and no connection is open any more. */
  | { readonly type: 'IN_FLIGHT_ZERO' }
  /** Background workers finished their current unit and checkpointed. */
  | { readonly type: 'WORKERS_STOPPED' };

/** Tags other code reads instead of keeping flags of its own. */
export const TAGS = {
  /** Readiness passes: ready, every essential dependency up. */
  ready: 'ready',
  /** The main listener accepts new connections. */
  accepting: 'accepting',
  /** Shutdown has begun (readiness fails; requests are still served until the drain). */
  draining: 'draining',
  /**
   * The listener is closed: every response says `Connection: close`, and a keep-alive socket is
   * closed once it has stayed idle for a short grace period.
   */
  intakeClosed: 'intake-closed',
  /** Past the drain: no new work can finish in time (fast 503 SHUTTING_DOWN). */
  stopping: 'stopping',
} as const;

/** What the readiness endpoint reports for each part of the chart. */
export type ReadinessStatus = 'starting' | 'ready' | 'degraded' | 'draining' | 'stopping';

function notProvided(name: string): never {
  throw new Error(`lifecycle actor "${name}" was not provided: use machine.provide()`);
}

export const lifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as LifecycleInput,
  },
  actors: {
    /** Binds the listeners and waits for essential dependencies. */
    startup: fromPromise<StartupOutput>(() => notProvided('startup')),
    /**
     * Stops accepting: closes the listener; the open connections then end with their next
     * response, or once idle (the drain waits for them, see watchInFlight).
     */
    stopIntake: fromPromise<void>(() => notProvided('stopIntake')),
    /**
     * Sends IN_FLIGHT_ZERO once no request is in flight and no connection is left open on the
     * main listener (at once if none is).
     */
    watchInFlight: fromCallback(() => notProvided('watchInFlight')),
    /** Asks background workers to finish their unit and checkpoint; sends WORKERS_STOPPED. */
    stopWorkers: fromCallback(() => notProvided('stopWorkers')),
    /** Closes the resources in their declared order, each within its own budget. */
    closeResources: fromPromise<void>(() => notProvided('closeResources')),
    /** Flushes and shuts down the telemetry exporters; says how the exports really ended. */
    flushTelemetry: fromPromise<FlushOutput>(() => notProvided('flushTelemetry')),
  },
  actions: {
    // Effects the runtime provides (logging, aborting requests, exiting). No-ops by default so
    // the chart can be exercised on its own.
    logServiceStart: () => undefined,
    logServiceReady: () => undefined,
    /**
     * Load shedding judges the event loop over windows that start now: a window that contains
     * startup work never sheds the first requests readiness lets in.
     */
    startServingWindow: () => undefined,
    logStartFailed: () => undefined,
    logShutdownBegin: () => undefined,
    /** Starts the last-resort deadline (SHUTDOWN_HARD_STOP_MS) that exits even if this chart hangs. */
    armHardStop: () => undefined,
    /**
     * Through the delay, notes since when each open connection has been quiet, so that one quiet
     * long enough is closed as soon as intake stops.
     */
    watchConnections: () => undefined,
    logIntakeStopped: () => undefined,
    logDrainComplete: () => undefined,
    logDrainTimeout: () => undefined,
    /** `shutdown.pending_work`: what is still running when the drain is cut short. */
    logPendingWork: () => undefined,
    logCloseTimeout: () => undefined,
    logTelemetryFlush: () => undefined,
    /** Fires every in-flight request's AbortSignal and closes the remaining sockets. */
    abortInFlight: () => undefined,
    /** Writes `service.exit` and exits with `context.exitCode`. */
    exitProcess: () => undefined,

    recordStartup: assign((_, output: StartupOutput) => ({
      bind: output.bind,
      opsBind: output.opsBind,
    })),
    recordStartupError: assign((_, error: unknown) => ({
      exitCode: 1 as const,
      stopReason: 'startup_failed' as const,
      failure: startupFailureOf(error),
    })),
    recordStartupTimeout: assign(({ context }) => ({
      exitCode: 1 as const,
      stopReason: 'startup_failed' as const,
      failure: {
        errorCode: 'STARTUP_TIMEOUT',
        reason: `startup did not complete within ${context.budgets.startupTimeoutMs} ms`,
      },
    })),
    recordCrashDuringStartup: assign((_, error: unknown) => ({
      exitCode: 1 as const,
      stopReason: 'crash' as const,
      failure: { errorCode: 'PROCESS_CRASH', reason: describeError(error) },
    })),
    recordSignal: assign((_, signal: ShutdownSignal) => ({
      stopReason: 'signal' as const,
      signal,
    })),
    recordCrash: assign({ exitCode: 1 as const, stopReason: 'crash' as const }),
    /** A second signal, or a crash during shutdown: finish as fast as is safe, exit 1. */
    recordExitFailure: assign({ exitCode: 1 as const }),
    recordRequestsDrained: assign({ requestsDrained: true }),
    recordWorkersStopped: assign({ workersStopped: true }),
    recordDrainComplete: assign({ drainOutcome: 'complete' as const }),
    recordDrainTimeout: assign({ drainOutcome: 'timeout' as const, exitCode: 1 as const }),
    recordDrainSkipped: assign({ drainOutcome: 'skipped' as const, exitCode: 1 as const }),
    recordFlushDone: assign((_, output: FlushOutput) => ({ flushStatus: output.status })),
    recordFlushError: assign({ flushStatus: 'error' as const }),
    recordFlushTimeout: assign({ flushStatus: 'timeout' as const }),
    // The moments the steps begin. The clock is read here, in the chart, so every reader agrees.
    stampShutdownStart: assign(({ context }) => ({
      clock: { ...context.clock, shutdownStartedAt: Date.now() },
    })),
    stampIntakeStopped: assign(({ context }) => ({
      clock: { ...context.clock, intakeStoppedAt: Date.now() },
    })),
    stampCloseStart: assign(({ context }) => ({
      clock: { ...context.clock, closeStartedAt: Date.now() },
    })),
    stampFlushStart: assign(({ context }) => ({
      clock: { ...context.clock, flushStartedAt: Date.now() },
    })),
    stampStopped: assign(({ context }) => ({
      clock: { ...context.clock, stoppedAt: Date.now() },
    })),
    recordDependencyDown: assign(({ context }, params: { name: string; reason: string }) => {
      const previous = context.dependencies[params.name];
      return {
        dependencies: {
          ...context.dependencies,
          [params.name]: {
            essential: previous?.essential ?? false,
            status: 'down' as const,
            reason: params.reason,
          },
        },
      };
    }),
    recordDependencyUp: assign(({ context }, params: { name: string }) => {
      const previous = context.dependencies[params.name];
      return {
        dependencies: {
          ...context.dependencies,
          [params.name]: { essential: previous?.essential ?? false, status: 'up' as const },
        },
      };
    }),
  },
  guards: {
    essentialDependencyDown: ({ context }) =>
      Object.values(context.dependencies).some((d) => d.essential && d.status !== 'up'),
    essentialDependenciesUp: ({ context }) =>
      Object.values(context.dependencies).every((d) => !d.essential || d.status === 'up'),
    drainComplete: ({ context }) => context.requestsDrained && context.workersStopped,
  },
  delays: {
    STARTUP_TIMEOUT: ({ context }) => context.budgets.startupTimeoutMs,
    SHUTDOWN_DELAY: ({ context }) => context.budgets.delayMs,
    DRAIN_TIMEOUT: ({ context }) => context.budgets.drainTimeoutMs,
    CLOSE_TIMEOUT: ({ context }) => context.budgets.closeTimeoutMs,
    FLUSH_TIMEOUT: ({ context }) => context.budgets.flushTimeoutMs,
  },
}).createMachine({
  id: 'lifecycle',
  context: ({ input }) => ({
    budgets: input.budgets,
    clock: {
      shutdownStartedAt: undefined,
      intakeStoppedAt: undefined,
      closeStartedAt: undefined,
      flushStartedAt: undefined,
      stoppedAt: undefined,
    },
    dependencies: Object.fromEntries(
      input.essentialDependencies.map((name) => [
        name,
        { essential: true, status: 'unknown' as const },
      ]),
    ),
    bind: undefined,
    opsBind: undefined,
    exitCode: 0,
    stopReason: undefined,
    signal: undefined,
    failure: undefined,
    requestsDrained: false,
    workersStopped: false,
    drainOutcome: undefined,
    flushStatus: undefined,
  }),
  on: {
    DEPENDENCY_DOWN: {
      actions: {
        type: 'recordDependencyDown',
        params: ({ event }) => ({ name: event.name, reason: event.reason }),
      },
    },
    DEPENDENCY_UP: {
      actions: { type: 'recordDependencyUp', params: ({ event }) => ({ name: event.name }) },
    },
  },
  initial: 'starting',
  states: {
    starting: {
      entry: 'logServiceStart',
      invoke: {
        id: 'startup',
        src: 'startup',
        onDone: {
          target: 'ready',
          actions: { type: 'recordStartup', params: ({ event }) => event.output },
        },
        // What startup opened (a database pool) is closed before the exit.
        onError: {
          target: '#lifecycle.draining.closing',
          actions: [
            {
              type: 'recordStartupError',
              params: ({ event }: { event: { error: unknown } }) => event.error,
            },
            'logStartFailed',
          ],
        },
      },
      after: {
        STARTUP_TIMEOUT: {
          target: '#lifecycle.draining.closing',
          actions: ['recordStartupTimeout', 'logStartFailed'],
        },
      },
      on: {
        // Never ready, so no load balancer routes here: skip the delay and stop at once.
        SIGNAL: {
          target: '#lifecycle.draining.drain',
          actions: [
            { type: 'recordSignal', params: ({ event }) => event.signal },
            'stampShutdownStart',
            'armHardStop',
            'logShutdownBegin',
          ],
        },
        CRASH: {
          target: '#lifecycle.draining.closing',
          actions: [
            {
              type: 'recordCrashDuringStartup',
              params: ({ event }: { event: { error: unknown } }) => event.error,
            },
            'logStartFailed',
          ],
        },
      },
    },
    ready: {
      entry: ['startServingWindow', 'logServiceReady'],
      initial: 'serving',
      states: {
        serving: {
          tags: [TAGS.ready, TAGS.accepting],
          always: { guard: 'essentialDependencyDown', target: 'degraded' },
        },
        degraded: {
          tags: [TAGS.accepting],
          always: { guard: 'essentialDependenciesUp', target: 'serving' },
        },
      },
      on: {
        SIGNAL: {
          target: 'draining',
          actions: [
            { type: 'recordSignal', params: ({ event }) => event.signal },
            'stampShutdownStart',
            'armHardStop',
            'logShutdownBegin',
          ],
        },
        CRASH: {
          target: 'draining',
          actions: ['recordCrash', 'stampShutdownStart', 'armHardStop', 'logShutdownBegin'],
        },
      },
    },
    draining: {
      tags: [TAGS.draining],
      initial: 'delaying',
      on: { CRASH: { actions: 'recordExitFailure' } },
      states: {
        // Readiness already fails; keep serving while load balancers stop routing here.
        delaying: {
          tags: [TAGS.accepting],
          entry: 'watchConnections',
          after: { SHUTDOWN_DELAY: 'drain' },
          on: {
            // A second signal skips what is left of the drain; resources still close and
            // telemetry is still flushed.
            SIGNAL: {
              target: 'closing',
              actions: ['recordDrainSkipped', 'logDrainTimeout', 'logPendingWork', 'abortInFlight'],
            },
          },
        },
        drain: {
          tags: [TAGS.intakeClosed],
          initial: 'closingIntake',
          invoke: { id: 'stopWorkers', src: 'stopWorkers' },
          on: {
            WORKERS_STOPPED: { actions: 'recordWorkersStopped' },
            SIGNAL: {
              target: 'closing',
              actions: ['recordDrainSkipped', 'logDrainTimeout', 'logPendingWork', 'abortInFlight'],
            },
          },
          after: {
            DRAIN_TIMEOUT: {
              target: 'closing',
              actions: ['recordDrainTimeout', 'logDrainTimeout', 'logPendingWork', 'abortInFlight'],
            },
          },
          states: {
            closingIntake: {
              invoke: {
                id: 'stopIntake',
                src: 'stopIntake',
                onDone: { target: 'waiting', actions: ['stampIntakeStopped', 'logIntakeStopped'] },
                // A listener that fails to close is still not accepting: carry on draining.
                onError: { target: 'waiting', actions: ['stampIntakeStopped', 'logIntakeStopped'] },
              },
            },
            waiting: {
              invoke: { id: 'watchInFlight', src: 'watchInFlight' },
              on: { IN_FLIGHT_ZERO: { actions: 'recordRequestsDrained' } },
              always: {
                guard: 'drainComplete',
                target: '#lifecycle.draining.closing',
                actions: ['recordDrainComplete', 'logDrainComplete'],
              },
            },
          },
        },
        // After the drain, before the flush: the resources (database pool, broker) close in their
        // declared order, each within its own budget, so a hung one cannot eat the flush's.
        closing: {
          tags: [TAGS.intakeClosed, TAGS.stopping],
          entry: 'stampCloseStart',
          invoke: {
            id: 'closeResources',
            src: 'closeResources',
            onDone: '#lifecycle.flushing',
            onError: '#lifecycle.flushing',
          },
          after: {
            CLOSE_TIMEOUT: { target: '#lifecycle.flushing', actions: 'logCloseTimeout' },
          },
          on: { SIGNAL: { actions: 'recordExitFailure' } },
        },
      },
    },
    flushing: {
      tags: [TAGS.stopping, TAGS.intakeClosed],
      entry: 'stampFlushStart',
      invoke: {
        id: 'flushTelemetry',
        src: 'flushTelemetry',
        onDone: {
          target: 'stopped',
          actions: [
            { type: 'recordFlushDone', params: ({ event }) => event.output },
            'logTelemetryFlush',
          ],
        },
        onError: { target: 'stopped', actions: ['recordFlushError', 'logTelemetryFlush'] },
      },
      after: {
        FLUSH_TIMEOUT: { target: 'stopped', actions: ['recordFlushTimeout', 'logTelemetryFlush'] },
      },
      on: {
        SIGNAL: { actions: 'recordExitFailure' },
        CRASH: { actions: 'recordExitFailure' },
      },
    },
    stopped: {
      tags: [TAGS.stopping, TAGS.intakeClosed],
      type: 'final',
      entry: ['stampStopped', 'exitProcess'],
    },
  },
});

export type LifecycleMachine = typeof lifecycleMachine;

/** The readiness answer for a snapshot of the machine. */
export function readinessOf(snapshot: {
  matches(value: 'starting' | 'ready' | 'draining'): boolean;
  hasTag(tag: string): boolean;
}): ReadinessStatus {
  if (snapshot.hasTag(TAGS.ready)) return 'ready';
  if (snapshot.matches('starting')) return 'starting';
  if (snapshot.matches('ready')) return 'degraded';
  if (snapshot.hasTag(TAGS.stopping)) return 'stopping';
  return 'draining';
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Startup errors may carry a stable `code` (e.g. PORT_IN_USE); anything else is STARTUP_FAILED. */
function startupFailureOf(error: unknown): StartupFailure {
  const code = (error as { errorCode?: unknown } | null)?.errorCode;
  return {
    errorCode: typeof code === 'string' ? code : 'STARTUP_FAILED',
    reason: describeError(error),
  };
}

/** When the drain must be over (intake stopped + drain budget), once intake has stopped. */
export function drainDeadlineOf(context: LifecycleContext): number | undefined {
  const { intakeStoppedAt } = context.clock;
  return intakeStoppedAt === undefined
    ? undefined
    : intakeStoppedAt + context.budgets.drainTimeoutMs;
}

/** `ready.serving`, `draining.drain.waiting`: the active state as a dotted path. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const [first] = entries;
  if (first === undefined) return '';
  const rest = statePath(first[1]);
  return rest === '' ? first[0] : `${first[0]}.${rest}`;
}
