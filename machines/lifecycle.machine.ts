// The lifecycle of ops-service as one statechart: the single source of truth for "is it healthy,
// what failed, can it stop safely now". Pure: no I/O and no imports from src/. Every effect is a
// named actor or action that the runtime provides with `machine.provide(...)`; tests provide
// fakes. Every deadline is a named delay whose value comes from config through `input`.
//
//   starting -> ready -> draining -> flushing -> stopped
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

export interface LifecycleContext {
  readonly budgets: LifecycleBudgets;
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
  readonly flushStatus: 'ok' | 'timeout' | 'error' | undefined;
}

export type LifecycleEvent =
  /** The process received SIGTERM or SIGINT (the machine knows whether it is the first). */
  | { readonly type: 'SIGNAL'; readonly signal: ShutdownSignal }
  /** An uncaught exception or unhandled rejection: shut down the same way, exit 1. */
  | { readonly type: 'CRASH'; readonly error: unknown }
  | { readonly type: 'DEPENDENCY_DOWN'; readonly name: string; readonly reason: string }
  | { readonly type: 'DEPENDENCY_UP'; readonly name: string }
  /** After intake stopped: no request is in flight any more. */
  | { readonly type: 'IN_FLIGHT_ZERO' }
  /** Background workers finished their current unit and checkpointed. */
  | { readonly type: 'WORKERS_STOPPED' };

/** Tags other code reads instead of keeping flags of its own. */
export const TAGS = {
  /** Readiness passes: ready, every essential dependency up. */
  ready: 'ready',
  /** The main listener accepts new connections. */
  accepting: 'accepting',
  /** Shutdown has begun (readiness fails; responses carry `Connection: close`). */
  draining: 'draining',
  /** The listener is closed: idle keep-alive sockets are closed as soon as they are idle. */
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
    /** Stops accepting: closes the listener and the sockets idle at that moment. */
    stopIntake: fromPromise<void>(() => notProvided('stopIntake')),
    /** Sends IN_FLIGHT_ZERO once no request is in flight (at once if none is). */
    watchInFlight: fromCallback(() => notProvided('watchInFlight')),
    /** Asks background workers to finish their unit and checkpoint; sends WORKERS_STOPPED. */
    stopWorkers: fromCallback(() => notProvided('stopWorkers')),
    /** Flushes and shuts down the telemetry exporters; `timeout` when an export hit its deadline. */
    flushTelemetry: fromPromise<{ status: 'ok' | 'timeout' }>(() => notProvided('flushTelemetry')),
  },
  actions: {
    // Effects the runtime provides (logging, aborting requests, exiting). No-ops by default so
    // the chart can be exercised on its own.
    logServiceStart: () => undefined,
    logServiceReady: () => undefined,
    logStartFailed: () => undefined,
    logShutdownBegin: () => undefined,
    logIntakeStopped: () => undefined,
    logDrainComplete: () => undefined,
    logDrainTimeout: () => undefined,
    logTelemetryFlush: () => undefined,
    /** Fires every in-flight request's AbortSignal and closes the remaining sockets. */
    abortInFlight: () => undefined,
    /** Writes `service.exit` and exits with `context.exitCode`. */
    exitProcess: () => undefined,

    recordStartup: assign(({ event }) => {
      const output = (event as unknown as { output: StartupOutput }).output;
      return { bind: output.bind, opsBind: output.opsBind };
    }),
    recordStartupError: assign(({ event }) => {
      const error = (event as unknown as { error: unknown }).error;
      return {
        exitCode: 1 as const,
        stopReason: 'startup_failed' as const,
        failure: startupFailureOf(error),
      };
    }),
    recordStartupTimeout: assign(({ context }) => ({
      exitCode: 1 as const,
      stopReason: 'startup_failed' as const,
      failure: {
        errorCode: 'STARTUP_TIMEOUT',
        reason: `startup did not complete within ${context.budgets.startupTimeoutMs} ms`,
      },
    })),
    recordCrashDuringStartup: assign(({ event }) => ({
      exitCode: 1 as const,
      stopReason: 'crash' as const,
      failure: {
        errorCode: 'PROCESS_CRASH',
        reason: event.type === 'CRASH' ? describeError(event.error) : 'crash',
      },
    })),
    recordSignal: assign(({ event }) => ({
      stopReason: 'signal' as const,
      signal: event.type === 'SIGNAL' ? event.signal : undefined,
    })),
    recordCrash: assign({ exitCode: 1 as const, stopReason: 'crash' as const }),
    /** A second signal, or a crash during shutdown: finish as fast as is safe, exit 1. */
    recordExitFailure: assign({ exitCode: 1 as const }),
    recordRequestsDrained: assign({ requestsDrained: true }),
    recordWorkersStopped: assign({ workersStopped: true }),
    recordDrainComplete: assign({ drainOutcome: 'complete' as const }),
    recordDrainTimeout: assign({ drainOutcome: 'timeout' as const, exitCode: 1 as const }),
    recordDrainSkipped: assign({ drainOutcome: 'skipped' as const, exitCode: 1 as const }),
    recordFlushDone: assign(({ event }) => {
      const output = (event as unknown as { output?: { status?: 'ok' | 'timeout' } }).output;
      return { flushStatus: output?.status === 'timeout' ? ('timeout' as const) : ('ok' as const) };
    }),
    recordFlushError: assign({ flushStatus: 'error' as const }),
    recordFlushTimeout: assign({ flushStatus: 'timeout' as const }),
    recordDependencyDown: assign(({ context, event }) => {
      if (event.type !== 'DEPENDENCY_DOWN') return {};
      const previous = context.dependencies[event.name];
      return {
        dependencies: {
          ...context.dependencies,
          [event.name]: {
            essential: previous?.essential ?? false,
            status: 'down' as const,
            reason: event.reason,
          },
        },
      };
    }),
    recordDependencyUp: assign(({ context, event }) => {
      if (event.type !== 'DEPENDENCY_UP') return {};
      const previous = context.dependencies[event.name];
      return {
        dependencies: {
          ...context.dependencies,
          [event.name]: { essential: previous?.essential ?? false, status: 'up' as const },
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
    FLUSH_TIMEOUT: ({ context }) => context.budgets.flushTimeoutMs,
  },
}).createMachine({
  id: 'lifecycle',
  context: ({ input }) => ({
    budgets: input.budgets,
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
    DEPENDENCY_DOWN: { actions: 'recordDependencyDown' },
    DEPENDENCY_UP: { actions: 'recordDependencyUp' },
  },
  initial: 'starting',
  states: {
    starting: {
      entry: 'logServiceStart',
      invoke: {
        id: 'startup',
        src: 'startup',
        onDone: { target: 'ready', actions: 'recordStartup' },
        onError: { target: 'flushing', actions: ['recordStartupError', 'logStartFailed'] },
      },
      after: {
        STARTUP_TIMEOUT: {
          target: 'flushing',
          actions: ['recordStartupTimeout', 'logStartFailed'],
        },
      },
      on: {
        // Never ready, so no load balancer routes here: skip the delay and stop at once.
        SIGNAL: { target: 'draining.drain', actions: ['recordSignal', 'logShutdownBegin'] },
        CRASH: { target: 'flushing', actions: ['recordCrashDuringStartup', 'logStartFailed'] },
      },
    },
    ready: {
      entry: 'logServiceReady',
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
        SIGNAL: { target: 'draining', actions: ['recordSignal', 'logShutdownBegin'] },
        CRASH: { target: 'draining', actions: ['recordCrash', 'logShutdownBegin'] },
      },
    },
    draining: {
      tags: [TAGS.draining],
      initial: 'delaying',
      states: {
        // Readiness already fails; keep serving while load balancers stop routing here.
        delaying: {
          tags: [TAGS.accepting],
          after: { SHUTDOWN_DELAY: 'drain' },
        },
        drain: {
          tags: [TAGS.intakeClosed],
          initial: 'closingIntake',
          invoke: { id: 'stopWorkers', src: 'stopWorkers' },
          on: { WORKERS_STOPPED: { actions: 'recordWorkersStopped' } },
          after: {
            DRAIN_TIMEOUT: {
              target: '#lifecycle.flushing',
              actions: ['recordDrainTimeout', 'logDrainTimeout', 'abortInFlight'],
            },
          },
          states: {
            closingIntake: {
              invoke: {
                id: 'stopIntake',
                src: 'stopIntake',
                onDone: { target: 'waiting', actions: 'logIntakeStopped' },
                // A listener that fails to close is still not accepting: carry on draining.
                onError: { target: 'waiting', actions: 'logIntakeStopped' },
              },
            },
            waiting: {
              invoke: { id: 'watchInFlight', src: 'watchInFlight' },
              on: { IN_FLIGHT_ZERO: { actions: 'recordRequestsDrained' } },
              always: {
                guard: 'drainComplete',
                target: '#lifecycle.flushing',
                actions: ['recordDrainComplete', 'logDrainComplete'],
              },
            },
          },
        },
      },
      on: {
        // A second signal skips what is left of the drain; telemetry is still flushed.
        SIGNAL: {
          target: 'flushing',
          actions: ['recordDrainSkipped', 'logDrainTimeout', 'abortInFlight'],
        },
        CRASH: { actions: 'recordExitFailure' },
      },
    },
    flushing: {
      tags: [TAGS.stopping, TAGS.intakeClosed],
      invoke: {
        id: 'flushTelemetry',
        src: 'flushTelemetry',
        onDone: { target: 'stopped', actions: ['recordFlushDone', 'logTelemetryFlush'] },
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
      entry: 'exitProcess',
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
  if (snapshot.matches('draining')) return 'draining';
  return 'stopping';
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

/** `ready.serving`, `draining.drain.waiting`: the active state as a dotted path. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const [first] = entries;
  if (first === undefined) return '';
  const rest = statePath(first[1]);
  return rest === '' ? first[0] : `${first[0]}.${rest}`;
}
