// The loop shared by the background workers: one run at a time, every `intervalMs` after the
// previous run ended (or, `fixedRate`, every `intervalMs` from the previous run's start), on
// demand (`wake`, coalesced with a run in progress), and a stop that waits for the run in
// progress to finish its unit of work. Runs are the worker's own work, never a request's: they
// run outside any request scope even when a request wakes them (their log lines carry no
// request id).
import { outsideRequest } from '../../telemetry/request-scope';

export interface Periodic<T> {
  /** Runs once at once, then every interval. Idempotent. */
  start(): void;
  /** A run now, or the run in progress. */
  runOnce(): Promise<T>;
  /** Another run as soon as the current one ends (or now); nothing once stopped. */
  wake(): void;
  /** No new runs; resolves when the run in progress has finished. */
  stop(): Promise<void>;
  /**
   * No new runs, and the run in progress is told to give up (its signal aborts): for a shutdown
   * whose drain was cut short, so no unit of work keeps a database connection past it.
   */
  abort(): void;
  /** True once stop() was called: long runs check it between units of work. */
  readonly stopped: boolean;
}

export function periodic<T>(options: {
  readonly intervalMs: number;
  /** One run; `signal` aborts when the worker is aborted (pass it to every database call). */
  readonly run: (signal: AbortSignal) => Promise<T>;
  /** A failed run's result; the loop goes on. */
  readonly onError: (error: unknown) => T;
  /** The next run `intervalMs` after the previous one started: a slow run does not delay it. */
  readonly fixedRate?: boolean;
  /** The first run at start (default), or one interval after it. */
  readonly runAtStart?: boolean;
}): Periodic<T> {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<T> | undefined;
  let again = false;
  let started = false;
  let stopped = false;
  let current: AbortController | undefined;

  const runOnce = (): Promise<T> => {
    if (running !== undefined) return running;
    const controller = new AbortController();
    current = controller;
    running = outsideRequest(() => options.run(controller.signal))
      .catch(options.onError)
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          void runOnce();
        }
      });
    return running;
  };

  const schedule = (delayMs: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      const startedAt = Date.now();
      void runOnce().finally(() => {
        const elapsed = options.fixedRate === true ? Date.now() - startedAt : 0;
        schedule(Math.max(0, options.intervalMs - elapsed));
      });
    }, delayMs);
    // Never what keeps the process alive.
    timer.unref();
  };

  return {
    start() {
      if (started || stopped) return;
      started = true;
      if (options.runAtStart === false) schedule(options.intervalMs);
      else void runOnce().finally(() => schedule(options.intervalMs));
    },
    runOnce,
    wake() {
      if (!started || stopped) return;
      if (running === undefined) void runOnce();
      else again = true;
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
    abort() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      current?.abort(new Error('the worker was aborted: the shutdown drain was cut short'));
    },
    get stopped() {
      return stopped;
    },
  };
}
