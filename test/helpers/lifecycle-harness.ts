// The lifecycle machine with fake effects a test controls: no I/O, a log of the named actions.
import { createActor, fromCallback, fromPromise, type AnyEventObject } from 'xstate';
import {
  type LifecycleEvent,
  type LifecycleInput,
  lifecycleMachine,
  statePath,
} from '../../machines/lifecycle.machine';

export const BUDGETS = {
  startupTimeoutMs: 1_000,
  delayMs: 500,
  drainTimeoutMs: 2_000,
  closeTimeoutMs: 400,
  flushTimeoutMs: 300,
};
const INPUT: LifecycleInput = { budgets: BUDGETS, essentialDependencies: ['database'] };

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}
export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The machine with fake effects the test controls, and a log of the named actions run. */
export function harness(
  options: {
    workersStopAtOnce?: boolean;
    resourcesCloseAtOnce?: boolean;
    inFlight?: number;
    essential?: string[];
  } = {},
) {
  const startup = deferred<{ bind: string; opsBind: string }>();
  const flush = deferred<{ status: 'ok' | 'timeout' | 'error' }>();
  const close = deferred<void>();
  if (options.resourcesCloseAtOnce !== false) close.resolve(undefined);
  const actions: string[] = [];
  let inFlight = options.inFlight ?? 0;
  let sendToMachine: ((event: AnyEventObject) => void) | undefined;
  const record = (name: string) => (): void => {
    actions.push(name);
  };
  const machine = lifecycleMachine.provide({
    actors: {
      startup: fromPromise(() => startup.promise),
      stopIntake: fromPromise(async () => {
        actions.push('stopIntake');
        return Promise.resolve();
      }),
      watchInFlight: fromCallback(({ sendBack }) => {
        sendToMachine = sendBack;
        if (inFlight === 0) sendBack({ type: 'IN_FLIGHT_ZERO' });
      }),
      stopWorkers: fromCallback(({ sendBack }) => {
        actions.push('stopWorkers');
        if (options.workersStopAtOnce !== false) sendBack({ type: 'WORKERS_STOPPED' });
      }),
      closeResources: fromPromise(() => {
        actions.push('closeResources');
        return close.promise;
      }),
      flushTelemetry: fromPromise(() => {
        actions.push('flushTelemetry');
        return flush.promise;
      }),
    },
    actions: Object.fromEntries(
      [
        'logServiceStart',
        'logServiceReady',
        'startServingWindow',
        'logStartFailed',
        'logShutdownBegin',
        'armHardStop',
        'watchConnections',
        'logIntakeStopped',
        'logDrainComplete',
        'logDrainTimeout',
        'logPendingWork',
        'logCloseTimeout',
        'logTelemetryFlush',
        'abortInFlight',
        'exitProcess',
      ].map((name) => [name, record(name)]),
    ),
  });
  const actor = createActor(machine, {
    input: { ...INPUT, essentialDependencies: options.essential ?? INPUT.essentialDependencies },
  });
  actor.start();
  const state = (): string => statePath(actor.getSnapshot().value);
  const send = (event: LifecycleEvent): void => actor.send(event);
  return {
    actor,
    actions,
    startup,
    close,
    flush,
    state,
    send,
    context: () => actor.getSnapshot().context,
    requestsFinish: () => {
      inFlight = 0;
      sendToMachine?.({ type: 'IN_FLIGHT_ZERO' });
    },
  };
}

/** Lets promise callbacks (fake effects settling) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
}

export async function toReady(h: ReturnType<typeof harness>): Promise<void> {
  h.send({ type: 'DEPENDENCY_UP', name: 'database' });
  h.startup.resolve({ bind: '127.0.0.1:8080', opsBind: '127.0.0.1:9464' });
  await settle();
}

export type Harness = ReturnType<typeof harness>;
